"""Entra v2.0 vocabulary shared by the emulator's endpoints: errors, tenants, and scopes.

A request names its tenant in the path (an id, a verified domain, `common` or `organizations`)
and asks for permissions in `scope`, either as OpenID scopes or as permissions on a resource.
The only resource this tenant knows is Microsoft Graph.
"""

import json
import re
import uuid
from dataclasses import dataclass

from starlette.responses import JSONResponse

from o365_assets.emulator.errors import entra_error
from o365_assets.emulator.state import EmulatorState

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
DEFAULT_SCOPE = ".default"
MULTI_TENANT = frozenset({"common", "organizations"})

# The headers RFC 6749 asks of every reply that may carry a token.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class EntraError(Exception):
    """A protocol error, answered in Entra's JSON shape (or, from /authorize, as a redirect)."""

    def __init__(
        self,
        status: int,
        error: str,
        code: int,
        description: str,
        *,
        suberror: str | None = None,
    ) -> None:
        super().__init__(f"AADSTS{code}: {description}")
        self.status = status
        self.error = error
        self.code = code
        self.description = description
        self.suberror = suberror

    def response(self) -> JSONResponse:
        reply = entra_error(self.status, self.error, self.code, self.description, NO_STORE)
        if self.suberror is None:
            return reply
        body = json.loads(bytes(reply.body))
        body["suberror"] = self.suberror
        return JSONResponse(body, status_code=self.status, headers=NO_STORE)


def missing_parameter(name: str) -> EntraError:
    return EntraError(
        400,
        "invalid_request",
        900144,
        f"The request body must contain the following parameter: '{name}'.",
    )


def shown(value: str, limit: int = 80) -> str:
    """A caller's value as it may appear in an error: shortened, one line."""
    value = value.replace("\r", " ").replace("\n", " ")
    return value if len(value) <= limit else value[:limit] + "…"


def is_guid(value: str) -> bool:
    try:
        return len(value) == 36 and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


@dataclass(frozen=True)
class Tenant:
    """The tenant a request names in its path."""

    segment: str
    tenant_id: str

    @property
    def specific(self) -> bool:
        """False for `common` and `organizations`, which name no tenant in particular."""
        return self.segment.lower() not in MULTI_TENANT


def resolve_tenant(state: EmulatorState, segment: str, error: str = "invalid_request") -> Tenant:
    """The tenant behind a path segment, or the AADSTS90002 error a real unknown tenant gets."""
    lowered = segment.lower()
    known = {state.config.tenant_id.lower(), state.config.tenant_domain.lower(), *MULTI_TENANT}
    if lowered in known:
        return Tenant(segment=segment, tenant_id=state.config.tenant_id)

    if not is_guid(segment) and not _DNS_NAME.match(lowered):
        raise EntraError(
            400,
            error,
            900023,
            f"Specified tenant identifier '{shown(segment)}' is neither a valid DNS name, "
            "nor a valid external domain.",
        )
    raise EntraError(
        400,
        error,
        90002,
        f"Tenant '{shown(segment)}' not found. Check that the tenant id or domain is right "
        "and that you are signing in to the right cloud.",
    )


@dataclass(frozen=True)
class ScopeRequest:
    """A parsed `scope` parameter.

    `graph` keeps the Graph scopes as the client wrote them, so that the reply's `scope` names
    them the same way and msal finds its cached token under the name it asked for.
    `permissions` holds the bare permission names (`Mail.Read`, or `.default`).
    """

    oidc: frozenset[str]
    graph: tuple[str, ...]
    permissions: tuple[str, ...]

    @property
    def offline(self) -> bool:
        return "offline_access" in self.oidc

    @property
    def openid(self) -> bool:
        return "openid" in self.oidc

    def reply_scope(self) -> str:
        """The `scope` of a token reply: the Graph scopes, then the OpenID ones (Entra never
        lists offline_access there)."""
        oidc = sorted(self.oidc - {"offline_access"})
        return " ".join([*self.graph, *oidc])


def parse_scopes(raw: str | None, tenant_domain: str) -> ScopeRequest:
    """Split a `scope` parameter into OpenID scopes and permissions on Graph."""
    if raw is None or not raw.strip():
        raise missing_parameter("scope")

    oidc: set[str] = set()
    graph: list[str] = []
    permissions: list[str] = []
    for item in raw.split():
        if item.lower() in OIDC_SCOPES:
            oidc.add(item.lower())
            continue
        resource, _, permission = item.rpartition("/")
        if resource and resource.rstrip("/").lower() not in (GRAPH_RESOURCE, GRAPH_APP_ID):
            raise EntraError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {shown(resource)} was not found in the tenant "
                f"named {tenant_domain}. The app may not be consented in this tenant, or the "
                "request may be aimed at the wrong tenant.",
            )
        if not permission:
            raise invalid_scope(item)
        graph.append(item)
        permissions.append(permission)

    if DEFAULT_SCOPE in permissions and len(permissions) > 1:
        raise EntraError(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid: "
            "'.default' cannot be combined with other permissions on the same resource.",
        )
    return ScopeRequest(oidc=frozenset(oidc), graph=tuple(graph), permissions=tuple(permissions))


def invalid_scope(item: str) -> EntraError:
    return EntraError(
        400,
        "invalid_scope",
        70011,
        f"The provided value for the input parameter 'scope' is not valid. "
        f"The scope {shown(item)} is not valid.",
    )


def grant_permissions(
    request: ScopeRequest, consented: list[str], client_id: str, app_name: str
) -> list[str]:
    """The Graph permissions a delegated token carries, in their registered spelling.

    The tenant's admin consented `consented` for every user; anything else needs consent that
    nobody gave, which Entra reports as AADSTS65001.
    """
    if request.permissions == (DEFAULT_SCOPE,):
        return list(consented)

    by_name = {name.lower(): name for name in consented}
    granted: list[str] = []
    for permission in request.permissions:
        name = by_name.get(permission.lower())
        if name is None:
            raise EntraError(
                400,
                "invalid_grant",
                65001,
                f"The user or administrator has not consented to use the application with ID "
                f"'{client_id}' named '{app_name}' for the permission "
                f"'{shown(permission)}'. Send an interactive authorization request for this "
                "user and resource.",
                suberror="consent_required",
            )
        if name not in granted:
            granted.append(name)
    return granted
