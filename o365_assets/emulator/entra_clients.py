"""Who is calling the token endpoint: client authentication as Entra v2.0 does it.

A confidential client proves itself with its secret (in the body or by HTTP Basic) or with a
JWT it signed with its certificate's key. A public client (a desktop app, a CLI) sends only
its id, which Entra accepts for user flows on apps that allow public client flows.
"""

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from o365_assets.emulator.entra_protocol import EntraError, is_guid, missing_parameter, shown
from o365_assets.emulator.state import AppRegistration, EmulatorState

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGORITHMS = ("PS256", "RS256")
# Entra tolerates some clock skew between the client and itself.
CLOCK_SKEW_S = 300

# The `azpacr` claim: how the client authenticated.
_ACR = {"none": "0", "secret": "1", "certificate": "2"}


@dataclass(frozen=True)
class ClientAuth:
    app: AppRegistration
    method: str  # "none", "secret" or "certificate"

    @property
    def acr(self) -> str:
        return _ACR[self.method]

    def require_confidential(self) -> None:
        """Raise unless the client proved itself, or may act as a public client."""
        if self.method == "none" and not self.app.public_client:
            raise credential_required()


def credential_required() -> EntraError:
    return EntraError(
        401,
        "invalid_client",
        7000218,
        "The request body must contain the following parameter: "
        "'client_assertion' or 'client_secret'.",
    )


def find_app(state: EmulatorState, client_id: str | None) -> AppRegistration:
    """The registration for `client_id`, or the error Entra gives an unknown application."""
    if not client_id:
        raise missing_parameter("client_id")
    app = state.apps.get(client_id.lower())
    if app is None:
        # Echo the id only when it has the shape of one: a secret pasted in the wrong field
        # must not come back in an error.
        named = f"'{client_id}'" if is_guid(client_id) else "given"
        raise EntraError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier {named} was not found in the directory "
            f"'{state.config.tenant_domain}'. The application may not be registered in this "
            "tenant, or the request may have been sent to the wrong tenant.",
        )
    return app


def authenticate_client(
    state: EmulatorState,
    form: Mapping[str, str],
    authorization: str | None,
    token_endpoints: Iterable[str],
) -> ClientAuth:
    """Identify and authenticate the client of a token request."""
    client_id = form.get("client_id")
    secret = form.get("client_secret")
    if authorization and authorization.lower().startswith("basic "):
        basic_id, basic_secret = _parse_basic(authorization)
        if client_id and client_id.lower() != basic_id.lower():
            raise EntraError(
                400,
                "invalid_request",
                9002313,
                "Invalid request. The client_id in the body differs from the one in the "
                "Authorization header.",
            )
        client_id, secret = basic_id, basic_secret
    app = find_app(state, client_id)

    assertion = form.get("client_assertion")
    if secret is not None and assertion is not None:
        raise EntraError(
            400,
            "invalid_request",
            9002313,
            "Invalid request. Send either a client secret or a client assertion, not both.",
        )
    if secret is not None:
        _check_secret(app, secret)
        return ClientAuth(app, "secret")
    if assertion is not None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: "
                f"'client_assertion_type' with the value '{ASSERTION_TYPE}'.",
            )
        verify_assertion(app, assertion, token_endpoints)
        return ClientAuth(app, "certificate")
    return ClientAuth(app, "none")


def _parse_basic(authorization: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(authorization.split(None, 1)[1], validate=True).decode()
        client_id, _, secret = decoded.partition(":")
    except (ValueError, IndexError, UnicodeDecodeError) as exc:
        raise EntraError(
            400, "invalid_request", 9002313, "Invalid request. Malformed Authorization header."
        ) from exc
    # RFC 6749 section 2.3.1: both parts are form-urlencoded before joining.
    return unquote(client_id), unquote(secret)


def _check_secret(app: AppRegistration, secret: str) -> None:
    if app.secret is None or not hmac.compare_digest(secret.encode(), app.secret.encode()):
        raise EntraError(
            401,
            "invalid_client",
            7000215,
            f"Invalid client secret provided for app '{app.client_id}'. Send the value of a "
            "current client secret, not its secret ID.",
        )


def _thumbprints(cert_pem: bytes) -> dict[str, str]:
    """The certificate's thumbprints as JWT headers carry them (base64url, unpadded)."""
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)

    def encode(digest: bytes) -> str:
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    return {
        "x5t#S256": encode(hashlib.sha256(der).digest()),
        # SHA-1 only names the certificate here; msal still sends it when given a SHA-1
        # thumbprint.
        "x5t": encode(hashlib.sha1(der, usedforsecurity=False).digest()),
    }


def _invalid_assertion(reason: str) -> EntraError:
    return EntraError(401, "invalid_client", 700027, f"Client assertion {reason}")


def verify_assertion(app: AppRegistration, assertion: str, token_endpoints: Iterable[str]) -> None:
    """Check a certificate assertion: signed by the registered certificate's key, meant for
    this token endpoint, issued by and about the client, and within its lifetime."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError as exc:
        raise _invalid_assertion("is not a well-formed JWT.") from exc

    algorithm = header.get("alg")
    if algorithm not in ASSERTION_ALGORITHMS:
        raise _invalid_assertion(
            f"is signed with an unsupported algorithm; use one of {list(ASSERTION_ALGORITHMS)}."
        )
    if app.certificate_pem is None:
        raise _invalid_assertion(
            "contains an invalid signature. [Reason - No certificate is registered "
            "for this application.]"
        )

    expected = _thumbprints(app.certificate_pem)
    presented = {name: str(header[name]) for name in expected if name in header}
    if not presented:
        raise _invalid_assertion(
            "contains no certificate thumbprint: send the 'x5t#S256' (or 'x5t') header."
        )
    for name, value in presented.items():
        if value.rstrip("=") != expected[name]:
            raise _invalid_assertion(
                "contains an invalid signature. [Reason - The key was not found., "
                f"Thumbprint of key used by client: '{shown(value, 64)}']"
            )

    public_key = x509.load_pem_x509_certificate(app.certificate_pem).public_key()
    try:
        claims = jwt.decode(
            assertion,
            public_key,  # type: ignore[arg-type]
            algorithms=[algorithm],
            leeway=CLOCK_SKEW_S,
            options={"require": ["exp", "aud", "iss", "sub"], "verify_aud": False},
        )
    except (jwt.ExpiredSignatureError, jwt.ImmatureSignatureError) as exc:
        raise EntraError(
            401,
            "invalid_client",
            700024,
            "Client assertion is not within its valid time range.",
        ) from exc
    except jwt.InvalidSignatureError as exc:
        raise _invalid_assertion("failed signature validation.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise _invalid_assertion(f"is missing the required claim '{exc.claim}'.") from exc
    except jwt.PyJWTError as exc:
        raise _invalid_assertion("could not be validated.") from exc

    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    endpoints = {endpoint.lower() for endpoint in token_endpoints}
    if not any(str(audience).rstrip("/").lower() in endpoints for audience in audiences):
        raise _invalid_assertion("audience claim does not name this token endpoint.")

    if {str(claims["iss"]).lower(), str(claims["sub"]).lower()} != {app.client_id.lower()}:
        raise EntraError(
            401,
            "invalid_client",
            700021,
            "Client assertion application identifier doesn't match the 'client_id' parameter: "
            "'iss' and 'sub' must both be the client id.",
        )
