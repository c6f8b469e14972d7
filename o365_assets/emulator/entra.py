"""Entra ID v2.0 endpoints: discovery, sign-in, and the token endpoint's grants.

Served at the emulator's root, as `login.microsoftonline.com` serves them:

    /common/discovery/instance                        instance discovery (what msal asks)
    /{tenant}/v2.0/.well-known/openid-configuration   OpenID discovery
    /{tenant}/discovery/v2.0/keys                     signing keys (JWKS)
    /{tenant}/oauth2/v2.0/authorize                   authorization code, PKCE S256 or plain
    /{tenant}/login                                   where the sign-in page posts
    /{tenant}/oauth2/v2.0/token                       authorization_code, refresh_token,
                                                      client_credentials, device_code
    /{tenant}/oauth2/v2.0/devicecode                  device authorization
    /{tenant}/oauth2/v2.0/logout                      ends the browser session
    /devicelogin                                      where a user enters a device code
    /oidc/userinfo                                    the OpenID userinfo endpoint

`{tenant}` is the tenant id, its domain, `common` or `organizations`.

Signing in needs no password: the sign-in page offers the tenant's users as buttons
("Sign in as Megan Demo"), and a script completes it the way a browser would, by posting
that form (see `entra_browser`). After one interactive sign-in the browser holds a session
cookie, with which `prompt=none` signs in silently, as Entra's single sign-on does.
"""

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from o365_assets.emulator import entra_grants
from o365_assets.emulator.entra_clients import (
    ClientAuth,
    authenticate_client,
    credential_required,
    find_app,
)
from o365_assets.emulator.entra_grants import (
    CodeGrant,
    DeviceGrant,
    EntraStore,
    SignIn,
    TokenMint,
    client_info,
    digest,
    new_user_code,
)
from o365_assets.emulator.entra_pages import (
    device_code_page,
    error_page,
    form_post_page,
    message_page,
    sign_in_page,
)
from o365_assets.emulator.entra_protocol import (
    NO_STORE,
    EntraError,
    Tenant,
    grant_permissions,
    missing_parameter,
    parse_scopes,
    resolve_tenant,
    shown,
)
from o365_assets.emulator.errors import graph_error
from o365_assets.emulator.state import AppRegistration, EmulatorState, User
from o365_assets.emulator.tokens import TokenError

log = logging.getLogger(__name__)

SESSION_COOKIE = "emulator_session"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
RESPONSE_MODES = ("query", "fragment", "form_post")
PROMPTS = ("login", "none", "consent", "select_account")
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
# RFC 7636: a verifier or a plain challenge is 43 to 128 unreserved characters.
_PKCE_VALUE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")

Grant = Callable[[Tenant, ClientAuth, Mapping[str, str]], dict[str, Any]]


def routes(state: EmulatorState) -> list[BaseRoute]:
    """The Entra endpoints, to be mounted at the root of the emulator's application."""
    return EntraEndpoints(state).routes()


def _loopback_path(uri: str) -> str | None:
    """The path of an `http://localhost[:port]` or `http://127.0.0.1[:port]` address, else None."""
    try:
        parts = urlsplit(uri)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:  # a port that is not a number, or out of range
        return None
    if (
        not port_ok
        or parts.scheme != "http"
        or parts.hostname not in LOOPBACK_NAMES
        or parts.username is not None
        or parts.fragment
    ):
        return None
    return parts.path or "/"


def redirect_allowed(app: AppRegistration, uri: str) -> bool:
    """Whether /authorize may send a reply to `uri` for `app`.

    Registered addresses match exactly. A public client that registered a loopback address
    may use it on any port, on `localhost` or `127.0.0.1`, since a desktop app listens on
    whatever port is free.
    """
    if uri in app.redirect_uris:
        return True
    path = _loopback_path(uri)
    if not app.public_client or path is None:
        return False
    return any(_loopback_path(registered) == path for registered in app.redirect_uris)


def pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if not _PKCE_VALUE.fullmatch(verifier):
        return False
    if method == "S256":
        hashed = hashlib.sha256(verifier.encode("ascii")).digest()
        verifier = base64.urlsafe_b64encode(hashed).decode().rstrip("=")
    return hmac.compare_digest(verifier, challenge)


def _redirect(redirect_uri: str, response_mode: str, params: Mapping[str, str | None]) -> Response:
    """Send an authorization reply back to the app in the response mode it asked for."""
    present = {name: value for name, value in params.items() if value is not None}
    if response_mode == "form_post":
        return form_post_page(redirect_uri, present)

    encoded = urlencode(present)
    if response_mode == "fragment":
        location = f"{redirect_uri}#{encoded}"
    else:
        location = f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{encoded}"
    return RedirectResponse(location, status_code=302, headers=NO_STORE)


def _error_reply(
    redirect_uri: str, response_mode: str, state: str | None, exc: EntraError
) -> Response:
    """An /authorize error, reported to the app's redirect URI as OAuth 2.0 says."""
    now = time.gmtime()
    description = (
        f"AADSTS{exc.code}: {exc.description} Trace ID: {uuid.uuid4()} "
        f"Correlation ID: {uuid.uuid4()} Timestamp: {time.strftime('%Y-%m-%d %H:%M:%SZ', now)}"
    )
    params = {
        "error": exc.suberror or exc.error,
        "error_description": description,
        "state": state,
    }
    return _redirect(redirect_uri, response_mode, params)


class EntraEndpoints:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state
        self.store = EntraStore.of(state)
        self.mint = TokenMint(state, self.store)
        self.grants: dict[str, Grant] = {
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
            "client_credentials": self._client_credentials,
            DEVICE_CODE_GRANT: self._device_code,
        }

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/common/discovery/instance", self.instance_discovery, methods=["GET"]),
            Route("/oidc/userinfo", self.userinfo, methods=["GET", "POST"]),
            Route("/devicelogin", self.device_login, methods=["GET", "POST"]),
            Route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                self.openid_configuration,
                methods=["GET"],
            ),
            Route("/{tenant}/discovery/v2.0/keys", self.keys, methods=["GET"]),
            Route("/{tenant}/oauth2/v2.0/authorize", self.authorize, methods=["GET", "POST"]),
            Route("/{tenant}/login", self.sign_in, methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["GET", "POST"]),
            Route("/{tenant}/oauth2/v2.0/devicecode", self.device_authorization, methods=["POST"]),
            Route("/{tenant}/oauth2/v2.0/logout", self.logout, methods=["GET", "POST"]),
        ]

    # -- helpers -----------------------------------------------------------------------------

    def _hosts(self) -> set[str]:
        """The host:port names this emulator answers to."""
        port = urlsplit(self.state.base_url).port
        return {f"{name}:{port}" for name in LOOPBACK_NAMES}

    def _token_endpoints(self) -> set[str]:
        """Every spelling of this tenant's token endpoint, the audiences an assertion may name."""
        config = self.state.config
        segments = (config.tenant_id, config.tenant_domain, "common", "organizations")
        return {
            f"https://{host}/{segment}/oauth2/v2.0/token"
            for host in self._hosts()
            for segment in segments
        }

    def _find_user(self, upn: str | None) -> User | None:
        if not upn:
            return None
        for user in self.state.users.values():
            if user.upn.lower() == upn.strip().lower():
                return user
        return None

    def _session_user(self, request: Request) -> User | None:
        session = request.cookies.get(SESSION_COOKIE)
        with self.state.lock:
            upn = self.store.sessions.get(session) if session else None
        return self._find_user(upn)

    def _start_session(self, response: Response, user: User) -> Response:
        session = secrets.token_urlsafe(32)
        with self.state.lock:
            self.store.sessions[session] = user.upn
        response.set_cookie(
            SESSION_COOKIE, session, secure=True, httponly=True, samesite="lax", path="/"
        )
        return response

    def _accounts(self, login_hint: str | None) -> tuple[list[User], str | None]:
        """The accounts the sign-in page offers, narrowed by `login_hint` when it names one."""
        users = list(self.state.users.values())
        if not login_hint:
            return users, None
        hinted = self._find_user(login_hint)
        if hinted is not None:
            return [hinted], None
        return users, f"We couldn't find an account named {shown(login_hint)}."

    # -- discovery ---------------------------------------------------------------------------

    async def instance_discovery(self, request: Request) -> Response:
        """Tell msal whether an authority host is a known Entra instance, and where its
        tenant's OpenID configuration lives."""
        endpoint = request.query_params.get("authorization_endpoint")
        if not endpoint:
            return missing_parameter("authorization_endpoint").response()

        parts = urlsplit(endpoint)
        try:
            port = parts.port
        except ValueError:
            port = -1
        emulator_port = urlsplit(self.state.base_url).port
        # msal sends the authority's host name without its port.
        if (
            parts.scheme != "https"
            or parts.hostname not in LOOPBACK_NAMES
            or port not in (None, emulator_port)
        ):
            return EntraError(
                400, "invalid_instance", 50049, "Unknown or invalid instance."
            ).response()

        segment = parts.path.strip("/").split("/")[0] or "common"
        host = parts.hostname
        return JSONResponse(
            {
                "tenant_discovery_endpoint": (
                    f"https://{host}:{emulator_port}/{quote(segment, safe='')}"
                    "/v2.0/.well-known/openid-configuration"
                ),
                "api-version": "1.1",
                "metadata": [
                    {"preferred_network": host, "preferred_cache": host, "aliases": [host]}
                ],
            }
        )

    async def openid_configuration(self, request: Request) -> Response:
        try:
            tenant = resolve_tenant(self.state, request.path_params["tenant"], "invalid_tenant")
        except EntraError as exc:
            return exc.response()

        base = self.state.base_url
        # Entra names a tenant by its id in the endpoints, whichever name the request used.
        segment = tenant.tenant_id if tenant.specific else tenant.segment.lower()
        issuer = self.state.issuer.issuer if tenant.specific else f"{base}/{{tenantid}}/v2.0"
        authority = f"{base}/{segment}"
        host = urlsplit(base).netloc
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
                "token_endpoint": f"{authority}/oauth2/v2.0/token",
                "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
                "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
                "jwks_uri": f"{authority}/discovery/v2.0/keys",
                "userinfo_endpoint": f"{base}/oidc/userinfo",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_modes_supported": list(RESPONSE_MODES),
                "response_types_supported": ["code"],
                "grant_types_supported": [
                    "authorization_code",
                    "refresh_token",
                    "client_credentials",
                    DEVICE_CODE_GRANT,
                ],
                "code_challenge_methods_supported": ["S256", "plain"],
                "subject_types_supported": ["pairwise"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "profile", "email", "offline_access"],
                "claims_supported": [
                    "sub",
                    "iss",
                    "aud",
                    "exp",
                    "iat",
                    "nonce",
                    "preferred_username",
                    "name",
                    "tid",
                    "oid",
                    "ver",
                    "email",
                ],
                "request_uri_parameter_supported": False,
                "http_logout_supported": True,
                "frontchannel_logout_supported": True,
                "tenant_region_scope": "EU",
                "cloud_instance_name": "microsoftonline.com",
                "msgraph_host": host,
            }
        )

    async def keys(self, request: Request) -> Response:
        try:
            resolve_tenant(self.state, request.path_params["tenant"], "invalid_tenant")
        except EntraError as exc:
            return exc.response()
        return JSONResponse(self.state.issuer.jwks())

    # -- authorization code: /authorize, the sign-in page, /logout ---------------------------

    async def authorize(self, request: Request) -> Response:
        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})

        # Until the client and its redirect URI are known good, errors go on a page:
        # sending them to an unchecked address would make the emulator an open redirector.
        try:
            tenant = resolve_tenant(self.state, request.path_params["tenant"])
            app = find_app(self.state, params.get("client_id"))
        except EntraError as exc:
            return error_page(exc.code, exc.description)
        redirect_uri = params.get("redirect_uri")
        if not redirect_uri:
            return error_page(900144, "The request must contain the parameter 'redirect_uri'.")
        if not redirect_allowed(app, redirect_uri):
            return error_page(
                50011,
                f"The redirect URI '{shown(redirect_uri)}' specified in the request does not "
                f"match the redirect URIs configured for the application '{app.client_id}'.",
            )

        response_mode = params.get("response_mode") or "query"
        state = params.get("state")
        if response_mode not in RESPONSE_MODES:
            return _error_reply(
                redirect_uri,
                "query",
                state,
                EntraError(
                    400,
                    "invalid_request",
                    900144,
                    f"The response_mode '{shown(response_mode)}' is not supported.",
                ),
            )
        try:
            sign_in = self._sign_in_request(app, params, redirect_uri, response_mode)
        except EntraError as exc:
            return _error_reply(redirect_uri, response_mode, state, exc)

        if params.get("prompt") == "none":
            return self._silent_sign_in(request, sign_in)

        handle = secrets.token_urlsafe(24)
        now = time.time()
        with self.state.lock:
            self.store.forget_expired(now)
            self.store.sign_ins[handle] = sign_in
        users, notice = self._accounts(sign_in.login_hint)
        return sign_in_page(
            action=f"/{quote(tenant.segment, safe='')}/login",
            handle=handle,
            app_name=app.display_name,
            permissions=sign_in.permissions,
            users=users,
            notice=notice,
        )

    def _sign_in_request(
        self,
        app: AppRegistration,
        params: Mapping[str, str],
        redirect_uri: str,
        response_mode: str,
    ) -> SignIn:
        """Check an /authorize request whose client and redirect URI are already trusted."""
        response_type = params.get("response_type")
        if not response_type:
            raise missing_parameter("response_type")
        if response_type != "code":
            raise EntraError(
                400,
                "unsupported_response_type",
                700054,
                f"response_type '{shown(response_type)}' is not enabled for the application.",
            )

        prompt = params.get("prompt")
        if prompt is not None and prompt not in PROMPTS:
            raise EntraError(
                400,
                "invalid_request",
                90023,
                f"Invalid prompt value '{shown(prompt)}'; use one of {list(PROMPTS)}.",
            )

        scopes = parse_scopes(params.get("scope"), self.state.config.tenant_domain)
        permissions = grant_permissions(
            scopes, app.delegated_scopes, app.client_id, app.display_name
        )
        challenge, method = self._pkce_challenge(params)
        return SignIn(
            client_id=app.client_id,
            redirect_uri=redirect_uri,
            response_mode=response_mode,
            state=params.get("state"),
            nonce=params.get("nonce"),
            scopes=scopes,
            permissions=permissions,
            code_challenge=challenge,
            code_challenge_method=method,
            login_hint=params.get("login_hint"),
            client_info=params.get("client_info") == "1",
            expires_at=time.time() + entra_grants.SIGN_IN_LIFETIME_S,
        )

    @staticmethod
    def _pkce_challenge(params: Mapping[str, str]) -> tuple[str | None, str | None]:
        challenge = params.get("code_challenge")
        method = params.get("code_challenge_method")
        if challenge is None:
            if method is not None:
                raise missing_parameter("code_challenge")
            return None, None

        # RFC 7636: without a method the challenge is the verifier itself.
        method = method or "plain"
        if method not in ("S256", "plain"):
            raise EntraError(
                400,
                "invalid_request",
                90023,
                f"Unsupported code_challenge_method '{shown(method)}'; use 'S256' or 'plain'.",
            )
        if not _PKCE_VALUE.fullmatch(challenge):
            raise EntraError(
                400,
                "invalid_request",
                90023,
                "The code_challenge is malformed: 43 to 128 characters of A-Z, a-z, 0-9, "
                "'-', '.', '_' or '~' are expected.",
            )
        return challenge, method

    def _silent_sign_in(self, request: Request, sign_in: SignIn) -> Response:
        user = self._session_user(request)
        hinted = self._find_user(sign_in.login_hint) if sign_in.login_hint else user
        if user is None or hinted is not user:
            return _error_reply(
                sign_in.redirect_uri,
                sign_in.response_mode,
                sign_in.state,
                EntraError(
                    400,
                    "login_required",
                    50058,
                    "A silent sign-in request was sent but no user is signed in.",
                ),
            )
        return self._issue_code(sign_in, user)

    def _issue_code(self, sign_in: SignIn, user: User) -> Response:
        code = secrets.token_urlsafe(64)
        now = time.time()
        grant = CodeGrant(
            client_id=sign_in.client_id,
            redirect_uri=sign_in.redirect_uri,
            upn=user.upn,
            scopes=sign_in.scopes,
            permissions=sign_in.permissions,
            nonce=sign_in.nonce,
            code_challenge=sign_in.code_challenge,
            code_challenge_method=sign_in.code_challenge_method,
            expires_at=now + entra_grants.AUTHORIZATION_CODE_LIFETIME_S,
        )
        with self.state.lock:
            self.store.forget_expired(now)
            self.store.codes[digest(code)] = grant

        params = {
            "code": code,
            "client_info": (
                client_info(user, self.state.config.tenant_id) if sign_in.client_info else None
            ),
            "state": sign_in.state,
            "session_state": str(uuid.uuid4()),
        }
        log.info("signed in %s for client %s", user.upn, sign_in.client_id)
        return _redirect(sign_in.redirect_uri, sign_in.response_mode, params)

    async def sign_in(self, request: Request) -> Response:
        """The sign-in page's form: the user chose an account, or cancelled."""
        form = await request.form()
        handle = form.get("flow")
        now = time.time()
        with self.state.lock:
            pending = self.store.sign_ins.pop(handle, None) if isinstance(handle, str) else None
        if pending is None or pending.expires_at <= now:
            return error_page(
                None,
                "This sign-in request has expired or was already completed. "
                "Go back to the application and sign in again.",
            )

        if form.get("decline"):
            return _error_reply(
                pending.redirect_uri,
                pending.response_mode,
                pending.state,
                EntraError(
                    400, "access_denied", 65004, "User declined to consent to access the app."
                ),
            )
        login = form.get("login")
        user = self._find_user(login if isinstance(login, str) else None)
        if user is None:
            return error_page(
                50034,
                f"The user account {shown(str(login or ''))} does not exist in the "
                f"'{self.state.config.tenant_domain}' directory.",
            )
        return self._start_session(self._issue_code(pending, user), user)

    async def logout(self, request: Request) -> Response:
        try:
            resolve_tenant(self.state, request.path_params["tenant"])
        except EntraError as exc:
            return error_page(exc.code, exc.description)

        params: dict[str, str] = dict(request.query_params)
        if request.method == "POST":
            form = await request.form()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
        session = request.cookies.get(SESSION_COOKIE)
        if session:
            with self.state.lock:
                self.store.sessions.pop(session, None)

        target = params.get("post_logout_redirect_uri")
        response: Response
        if target and any(redirect_allowed(app, target) for app in self.state.apps.values()):
            response = RedirectResponse(target, status_code=302)
        else:
            response = message_page("Signed out", "You signed out of your account.")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- the token endpoint ------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        if request.method != "POST":
            return EntraError(
                400,
                "invalid_request",
                900561,
                "The endpoint only accepts POST requests. Received a GET request.",
            ).response()

        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        grant_type = fields.get("grant_type")
        try:
            tenant = resolve_tenant(self.state, request.path_params["tenant"])
            if not grant_type:
                raise missing_parameter("grant_type")
            grant = self.grants.get(grant_type)
            if grant is None:
                raise EntraError(
                    400,
                    "unsupported_grant_type",
                    70003,
                    f"The app requested an unsupported grant type '{shown(grant_type)}'."
                    + (
                        " The emulator never accepts passwords: use the authorization code "
                        "or device code flow."
                        if grant_type == "password"
                        else ""
                    ),
                )
            auth = authenticate_client(
                self.state,
                fields,
                request.headers.get("authorization"),
                self._token_endpoints(),
            )
            reply = grant(tenant, auth, fields)
        except EntraError as exc:
            log.info("token request refused: AADSTS%s %s (%s)", exc.code, exc.error, grant_type)
            return exc.response()
        return JSONResponse(reply, headers=NO_STORE)

    def _client_credentials(
        self, tenant: Tenant, auth: ClientAuth, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        if auth.method == "none":
            raise credential_required()
        if not tenant.specific:
            raise EntraError(
                400,
                "invalid_request",
                50059,
                "No tenant-identifying information found in either the request or implied by "
                "any provided credentials. Use the tenant's id or domain in the authority.",
            )

        raw = fields.get("scope")
        if not raw:
            raise missing_parameter("scope")
        items = raw.split()
        if len(items) != 1 or not items[0].endswith("/.default"):
            raise EntraError(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {shown(raw)} is not valid. Client credential "
                "flows must have a scope value with /.default suffixed to the resource "
                "identifier (application ID URI).",
            )
        parse_scopes(raw, self.state.config.tenant_domain)
        return self.mint.app_only(auth, items[0])

    def _authorization_code(
        self, tenant: Tenant, auth: ClientAuth, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        auth.require_confidential()
        code = fields.get("code")
        if not code:
            raise missing_parameter("code")
        redirect_uri = fields.get("redirect_uri")
        if not redirect_uri:
            raise missing_parameter("redirect_uri")

        now = time.time()
        with self.state.lock:
            grant = self.store.codes.get(digest(code))
            if grant is None:
                raise EntraError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. The authorization code is malformed or unknown.",
                )
            if grant.redeemed:
                raise EntraError(
                    400,
                    "invalid_grant",
                    54005,
                    "OAuth2 Authorization code was already redeemed, please retry with a new "
                    "valid code or use an existing refresh token.",
                )
            # A code is spent by its first redemption attempt, good or bad.
            grant.redeemed = True
        self._check_code(grant, auth, redirect_uri, fields.get("code_verifier"), now)

        user = self.state.users[grant.upn]
        return self.mint.delegated(
            auth,
            user,
            grant.scopes,
            grant.permissions,
            nonce=grant.nonce,
            with_client_info=fields.get("client_info") == "1",
            with_refresh_token=grant.scopes.offline,
        )

    @staticmethod
    def _check_code(
        grant: CodeGrant,
        auth: ClientAuth,
        redirect_uri: str,
        verifier: str | None,
        now: float,
    ) -> None:
        if grant.expires_at <= now:
            raise EntraError(
                400,
                "invalid_grant",
                70008,
                "The provided authorization code has expired. Send a new interactive "
                "authorization request for this user and resource.",
            )
        if grant.client_id != auth.app.client_id:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided grant is not valid: the authorization code was issued to "
                "another client.",
            )
        if grant.redirect_uri != redirect_uri:
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided grant is not valid: the redirect_uri differs from the one of "
                "the authorization request.",
            )
        if grant.code_challenge is None:
            return
        if not verifier:
            raise missing_parameter("code_verifier")
        assert grant.code_challenge_method is not None
        if not pkce_matches(verifier, grant.code_challenge, grant.code_challenge_method):
            raise EntraError(
                400,
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
            )

    def _refresh_token(
        self, tenant: Tenant, auth: ClientAuth, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        auth.require_confidential()
        token = fields.get("refresh_token")
        if not token:
            raise missing_parameter("refresh_token")
        scopes = parse_scopes(fields.get("scope"), self.state.config.tenant_domain)
        app = auth.app
        # Consent first: a refused scope must not burn the caller's refresh token.
        permissions = grant_permissions(
            scopes, app.delegated_scopes, app.client_id, app.display_name
        )

        grant = self.mint.redeem_refresh_token(token, app.client_id)
        user = self.state.users[grant.upn]
        return self.mint.delegated(
            auth,
            user,
            scopes,
            permissions,
            with_client_info=fields.get("client_info") == "1",
            with_refresh_token=True,
        )

    def _device_code(
        self, tenant: Tenant, auth: ClientAuth, fields: Mapping[str, str]
    ) -> dict[str, Any]:
        auth.require_confidential()
        device_code = fields.get("device_code")
        if not device_code:
            raise missing_parameter("device_code")

        now = time.time()
        with self.state.lock:
            grant = self.store.device_codes.get(digest(device_code))
            if grant is None or grant.client_id != auth.app.client_id:
                raise EntraError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. The device_code is malformed, unknown, or was issued to "
                    "another client.",
                )
            self._check_device_grant(grant, now)
            grant.status = "redeemed"
            assert grant.upn is not None
            user = self.state.users[grant.upn]
        return self.mint.delegated(
            auth,
            user,
            grant.scopes,
            grant.permissions,
            with_client_info=fields.get("client_info") == "1",
            with_refresh_token=grant.scopes.offline,
        )

    @staticmethod
    def _check_device_grant(grant: DeviceGrant, now: float) -> None:
        if grant.status == "redeemed":
            raise EntraError(
                400,
                "invalid_grant",
                70000,
                "The provided grant is not valid: this device code was already redeemed.",
            )
        if grant.expires_at <= now:
            raise EntraError(
                400,
                "expired_token",
                70019,
                "The device code has expired. Start a new device code request.",
            )
        if grant.status == "declined":
            raise EntraError(
                400,
                "authorization_declined",
                65004,
                "The user declined to sign in to the app.",
            )
        if grant.status == "pending":
            raise EntraError(
                400,
                "authorization_pending",
                70016,
                "The user has not yet signed in with this device code. Keep polling.",
            )

    # -- device code: /devicecode and the page where the user enters the code ----------------

    async def device_authorization(self, request: Request) -> Response:
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            resolve_tenant(self.state, request.path_params["tenant"])
            app = find_app(self.state, fields.get("client_id"))
            scopes = parse_scopes(fields.get("scope"), self.state.config.tenant_domain)
            permissions = grant_permissions(
                scopes, app.delegated_scopes, app.client_id, app.display_name
            )
        except EntraError as exc:
            return exc.response()

        device_code = secrets.token_urlsafe(48)
        now = time.time()
        lifetime = entra_grants.DEVICE_CODE_LIFETIME_S
        with self.state.lock:
            self.store.forget_expired(now)
            user_code = new_user_code()
            while user_code in self.store.user_codes:
                user_code = new_user_code()
            key = digest(device_code)
            self.store.device_codes[key] = DeviceGrant(
                client_id=app.client_id,
                user_code=user_code,
                scopes=scopes,
                permissions=permissions,
                expires_at=now + lifetime,
            )
            self.store.user_codes[user_code] = key

        verification_uri = f"{self.state.base_url}/devicelogin"
        return JSONResponse(
            {
                "user_code": user_code,
                "device_code": device_code,
                "verification_uri": verification_uri,
                "expires_in": lifetime,
                "interval": entra_grants.DEVICE_CODE_INTERVAL_S,
                "message": (
                    f"To sign in, use a web browser to open the page {verification_uri} "
                    f"and enter the code {user_code} to authenticate."
                ),
            },
            headers=NO_STORE,
        )

    async def device_login(self, request: Request) -> Response:
        """The page behind `verification_uri`: enter the code, choose an account."""
        users = list(self.state.users.values())
        if request.method == "GET":
            prefill = request.query_params.get("otc", "")
            return device_code_page(action="/devicelogin", users=users, user_code=prefill)

        form = await request.form()
        entered = str(form.get("otc") or "")
        user_code = re.sub(r"[\s-]", "", entered).upper()
        now = time.time()
        with self.state.lock:
            key = self.store.user_codes.get(user_code)
            grant = self.store.device_codes.get(key) if key else None
            if grant is None or grant.expires_at <= now or grant.status != "pending":
                notice = (
                    "That code didn't work. Check the code and try again."
                    if grant is None
                    else "That code has expired or was already used. Start again on your "
                    "device to get a new code."
                )
                return device_code_page(
                    action="/devicelogin", users=users, user_code=entered, notice=notice
                )
            app_name = self.state.apps[grant.client_id].display_name
            if form.get("decline"):
                grant.status = "declined"
                return message_page("Sign-in cancelled", f"You declined to sign in to {app_name}.")
            login = form.get("login")
            user = self._find_user(login if isinstance(login, str) else None)
            if user is None:
                return device_code_page(
                    action="/devicelogin",
                    users=users,
                    user_code=entered,
                    notice="Choose one of the accounts below.",
                )
            grant.status = "approved"
            grant.upn = user.upn
        log.info("device code approved by %s for client %s", user.upn, grant.client_id)
        page = message_page(
            "You're signed in",
            f"You have signed in to {app_name} on your device as {user.upn}. "
            "You may now close this window.",
        )
        return self._start_session(page, user)

    # -- userinfo ----------------------------------------------------------------------------

    async def userinfo(self, request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        challenge = {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'}
        if scheme.lower() != "bearer" or not token.strip():
            return graph_error(
                401, "InvalidAuthenticationToken", "Access token is empty.", challenge
            )
        try:
            claims = self.state.issuer.verify(token.strip())
        except TokenError as exc:
            return graph_error(401, "InvalidAuthenticationToken", str(exc), challenge)

        user = self._find_user(claims.get("upn"))
        if claims.get("idtyp") != "user" or user is None:
            return graph_error(
                403, "Authorization_RequestDenied", "userinfo needs a token for a signed-in user."
            )
        given, _, family = user.display_name.partition(" ")
        return JSONResponse(
            {
                "sub": claims["sub"],
                "name": user.display_name,
                "given_name": given,
                "family_name": family,
                "email": user.upn,
            }
        )
