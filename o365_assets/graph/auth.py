"""Tokens from Microsoft Entra through msal: app-only with a client secret or a certificate,
or delegated from a one-time sign-in whose refresh token lives in a persisted cache.

No password ever passes through here. Tokens are handed to the transport as `AccessToken`
objects that do not print themselves; `Credential.facts()` says what a token grants without
returning it.
"""

import datetime
import logging
import re
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import msal_extensions
import portalocker
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from msal.authority import WELL_KNOWN_AUTHORITY_HOSTS
from msal.oauth2cli.authcode import AuthCodeReceiver
from msal_extensions.persistence import PersistenceNotFound
from pydantic import BaseModel, ConfigDict

from o365_assets.graph.errors import (
    AuthError,
    ConfigurationError,
    GraphError,
    LoginRequired,
    PermissionProblem,
)
from o365_assets.graph.settings import AuthMode, GraphSettings
from o365_assets.graph.tokens import AccessToken, unverified_claims
from o365_assets.graph.transport import MsalHttpClient, Transport

log = logging.getLogger(__name__)

LOGIN_HINT = "run `o365-assets login` to sign in again"

# Entra error codes that a person can act on, and what to tell them.
_SECRET_REFUSED = {7000215, 7000222, 7000216}
_CERT_REFUSED = {700027, 700024, 700023, 50012, 500212}
_APP_UNKNOWN = {700016}
_TENANT_UNKNOWN = {90002, 900023, 90019}
_CONSENT_MISSING = {65001}
_DECLINED = {65004}
_PUBLIC_CLIENT_DISABLED = {7000218}
# A refresh token that expired, was revoked, or now needs the user (MFA, password change).
_SIGN_IN_AGAIN = {70008, 700082, 50173, 50078, 50076, 50079, 50133, 70043, 700084, 54005}


class CredentialFacts(BaseModel):
    """What a working credential is, for the `token` asset and `o365-assets doctor`.

    Read from the token's claims without verifying them (Graph does that); never the token.
    """

    model_config = ConfigDict(frozen=True)

    auth_mode: str
    tenant_id: str
    client_id: str
    authority: str
    scopes_requested: list[str]
    granted: list[str]
    expires_at: datetime.datetime
    audience: str | None = None
    user: str | None = None
    token_cache: str

    def as_metadata(self) -> dict[str, str | int | list[str]]:
        """Plain values fit for Dagster metadata or a printed report."""
        return {
            "auth_mode": self.auth_mode,
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "authority": self.authority,
            "scopes_requested": list(self.scopes_requested),
            "granted": list(self.granted),
            "expires_at": self.expires_at.isoformat(),
            "audience": self.audience or "",
            "user": self.user or "",
            "token_cache": self.token_cache,
        }


def instance_discovery_for(authority_host: str) -> bool | None:
    """msal's `instance_discovery`: its default for Microsoft's own hosts, off for any other
    (msal would otherwise ask login.microsoftonline.com about a host it cannot know)."""
    host = urlsplit(authority_host).hostname or ""
    return None if host in WELL_KNOWN_AUTHORITY_HOSTS else False


class Credential(ABC):
    """Hands out access tokens for Graph; one per process is enough, and it is thread-safe.

    A token is reused until shortly before it expires; a token Graph refused (401) is dropped
    and a new one asked for. Call the object (or `acquire_token`) to get a token.
    """

    cache_storage = "memory"

    def __init__(self, settings: GraphSettings, transport: Transport | None = None) -> None:
        self.settings = settings
        self._owns_transport = transport is None
        self.transport = transport or Transport(settings)
        self._lock = threading.Lock()
        self._current: AccessToken | None = None
        self._renew_at = 0.0
        self._app: Any = None

    @property
    def mode(self) -> AuthMode:
        return self.settings.auth_mode

    def __call__(self, refused: AccessToken | None = None) -> AccessToken:
        return self.acquire_token(refused)

    def acquire_token(self, refused: AccessToken | None = None) -> AccessToken:
        """A token for Graph. Pass the token Graph just refused to force a new one."""
        with self._lock:
            current = self._current
            # A token Graph refused is replaced, unless another thread has replaced it already.
            if (
                current is not None
                and time.time() < self._renew_at
                and (refused is None or refused.value != current.value)
            ):
                return current

            if self._app is None:
                self._app = self._build_application()
            token = self._fetch(self._app, refused)

            # Renew a little before expiry: a tenth of the lifetime, at most a minute.
            lifetime = token.expires_in()
            self._renew_at = token.expires_at - min(60.0, max(0.0, lifetime) * 0.1)
            self._current = token
            return token

    def facts(self) -> CredentialFacts:
        """Mode, tenant, client, granted roles or scopes, expiry: never the token itself."""
        token = self.acquire_token()
        claims = unverified_claims(token.value)
        granted = claims.get("roles") or str(claims.get("scp", "")).split()
        user = claims.get("upn") or claims.get("preferred_username") or self._user()
        audience = claims.get("aud")
        return CredentialFacts(
            auth_mode=self.mode.value,
            tenant_id=str(claims.get("tid") or self.settings.tenant_id),
            client_id=str(claims.get("appid") or claims.get("azp") or self.settings.client_id),
            authority=self.settings.authority,
            scopes_requested=self.settings.scopes,
            granted=sorted(str(g) for g in granted if g),
            expires_at=datetime.datetime.fromtimestamp(token.expires_at, datetime.UTC),
            audience=str(audience) if audience else None,
            user=str(user) if user else None,
            token_cache=self.cache_storage,
        )

    def close(self) -> None:
        if self._owns_transport:
            self.transport.close()

    def __enter__(self) -> "Credential":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _user(self) -> str | None:
        return None

    @abstractmethod
    def _build_application(self) -> Any:
        """The msal application object (built once, on first use: it talks to Entra)."""

    @abstractmethod
    def _fetch(self, app: Any, refused: AccessToken | None) -> AccessToken:
        """Get a token from msal, forcing a new one when `refused` is given."""

    def _msal_kwargs(self) -> dict[str, Any]:
        return {
            "authority": self.settings.authority,
            "http_client": MsalHttpClient(self.transport),
            "instance_discovery": instance_discovery_for(self.settings.authority_host),
        }

    def _guard_discovery(self, build: Callable[[], Any]) -> Any:
        """Build an msal application, saying plainly when the tenant or host is wrong."""
        return _described(self.settings, build)


class AppCredential(Credential):
    """App-only tokens (client credentials) with a client secret or a certificate.

    Tokens stay in msal's in-memory cache for the life of the process.
    """

    def _build_application(self) -> Any:
        credential = self._client_credential()
        return self._guard_discovery(
            lambda: msal.ConfidentialClientApplication(
                self.settings.client_id,
                client_credential=credential,
                token_cache=msal.TokenCache(),
                **self._msal_kwargs(),
            )
        )

    def _client_credential(self) -> str | dict[str, str]:
        if self.mode is AuthMode.CLIENT_SECRET:
            assert self.settings.client_secret is not None
            return self.settings.client_secret.get_secret_value()
        assert self.settings.cert_path is not None
        passphrase = self.settings.cert_passphrase
        return load_certificate_credential(
            self.settings.cert_path, passphrase.get_secret_value() if passphrase else None
        )

    def _fetch(self, app: Any, refused: AccessToken | None) -> AccessToken:
        if refused is not None:
            # msal would hand back the cached token Graph just refused: drop it first.
            cache = app.token_cache
            for entry in list(
                cache.search(
                    msal.TokenCache.CredentialType.ACCESS_TOKEN, query={"secret": refused.value}
                )
            ):
                cache.remove_at(entry)
        result = app.acquire_token_for_client(scopes=self.settings.scopes)
        return token_from_result(result, self.settings)


def load_certificate_credential(path: Path, passphrase: str | None) -> dict[str, str]:
    """msal's certificate credential from a PEM holding a private key and its certificate.

    The certificate goes in as `public_certificate`, from which msal takes the SHA-256
    thumbprint and signs the assertion PS256 with an `x5t#S256` header.
    """
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"O365_CLIENT_CERT_PATH {path} cannot be read ({type(exc).__name__})"
        ) from None

    try:
        certificates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigurationError(
            f"O365_CLIENT_CERT_PATH {path} holds no PEM certificate; it must hold the private "
            f"key and the certificate registered on the app"
        ) from None
    try:
        key = serialization.load_pem_private_key(
            pem, password=passphrase.encode() if passphrase else None
        )
    except TypeError:
        raise ConfigurationError(
            f"the private key in {path} is encrypted: set O365_CLIENT_CERT_PASSPHRASE"
        ) from None
    except ValueError:
        raise ConfigurationError(
            f"O365_CLIENT_CERT_PATH {path} holds no usable private key (or the passphrase is wrong)"
        ) from None

    leaf = next(
        (
            cert
            for cert in certificates
            if cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ),
        None,
    )
    if leaf is None:
        raise ConfigurationError(
            f"the private key in {path} does not belong to any certificate in that file"
        )

    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    log.debug(
        "certificate credential %s, SHA-256 thumbprint %s",
        leaf.subject.rfc4514_string(),
        leaf.fingerprint(hashes.SHA256()).hex(),
    )
    return {
        "private_key": key_pem.decode(),
        "public_certificate": leaf.public_bytes(serialization.Encoding.PEM).decode(),
    }


class DelegatedCredential(Credential):
    """Tokens for a signed-in user (`Mail.Read.Shared`), refreshed silently from the
    persisted cache that `login` filled.

    A refresh runs under a lock shared by every process using the cache: a refresh token is
    spent when used, so two processes must not redeem the same one.
    """

    def __init__(
        self,
        settings: GraphSettings,
        transport: Transport | None = None,
        store: "TokenCacheStore | None" = None,
    ) -> None:
        super().__init__(settings, transport)
        self.store = store or open_token_cache(settings.token_cache_path)
        self.cache_storage = self.store.storage
        self._username: str | None = None

    def _build_application(self) -> Any:
        return build_public_application(self.settings, self.transport, self.store.cache)

    def _fetch(self, app: Any, refused: AccessToken | None) -> AccessToken:
        with self.store.refresh_lock():
            # Another process may have just refreshed: read what it wrote before redeeming.
            self.store.reload()
            account = self._account(app)
            result = app.acquire_token_silent_with_error(
                self.settings.scopes, account, force_refresh=refused is not None
            )
        if result is None:
            raise LoginRequired(
                f"the saved sign-in of {self._username} has no token for "
                f"{' '.join(self.settings.scopes)}: {LOGIN_HINT}"
            )
        return token_from_result(result, self.settings, delegated=True)

    def _account(self, app: Any) -> dict[str, Any]:
        accounts = app.get_accounts()
        if not accounts:
            raise LoginRequired(f"no saved sign-in in {self.store.path}: {LOGIN_HINT}")
        if len(accounts) > 1:
            names = ", ".join(sorted(str(a.get("username")) for a in accounts))
            raise LoginRequired(
                f"the token cache holds several sign-ins ({names}); {LOGIN_HINT}, which keeps "
                f"only the one account"
            )
        account: dict[str, Any] = accounts[0]
        self._username = account.get("username")
        return account

    def _user(self) -> str | None:
        return self._username


def build_public_application(
    settings: GraphSettings, transport: Transport, cache: msal.TokenCache
) -> Any:
    """msal's public client application for delegated sign-in and silent refresh."""
    kwargs: dict[str, Any] = {
        "authority": settings.authority,
        "http_client": MsalHttpClient(transport),
        "instance_discovery": instance_discovery_for(settings.authority_host),
        "token_cache": cache,
    }
    return _described(settings, lambda: msal.PublicClientApplication(settings.client_id, **kwargs))


def _described(settings: GraphSettings, build: Callable[[], Any]) -> Any:
    # msal reads the tenant's discovery document when the application is made; an unknown
    # tenant, or a host that is not Entra, fails there with msal's own wording.
    try:
        return build()
    except GraphError:
        raise
    except (ValueError, RuntimeError, requests.HTTPError):
        pass
    raise ConfigurationError(
        f"Entra at {settings.authority_host} has no configuration for tenant "
        f"{settings.tenant_id!r}: check O365_TENANT_ID and O365_AUTHORITY_HOST"
    )


def build_credential(settings: GraphSettings, transport: Transport | None = None) -> Credential:
    """The credential for `settings.auth_mode`; no network until the first token."""
    if settings.auth_mode is AuthMode.DELEGATED:
        return DelegatedCredential(settings, transport)
    return AppCredential(settings, transport)


_warned_paths: set[str] = set()
_warned_lock = threading.Lock()
REFRESH_LOCK_TIMEOUT_S = 120.0


@dataclass
class TokenCacheStore:
    """msal's persisted token cache, where it is kept, and the lock for refreshing it."""

    path: Path
    cache: msal_extensions.PersistedTokenCache
    persistence: Any
    storage: str

    def reload(self) -> None:
        """Read the cache as it is on disk now."""
        try:
            self.cache.deserialize(self.persistence.load())
        except PersistenceNotFound:
            return

    @contextmanager
    def refresh_lock(self) -> Iterator[None]:
        """Held across read, redeem and write of a refresh token, by every process."""
        lock = portalocker.Lock(
            f"{self.path}.refresh.lock",
            mode="a",
            timeout=REFRESH_LOCK_TIMEOUT_S,
            check_interval=0.05,
            flags=portalocker.LockFlags.EXCLUSIVE | portalocker.LockFlags.NON_BLOCKING,
        )
        try:
            lock.acquire()
        except portalocker.exceptions.LockException:
            raise AuthError(
                f"another process kept the token cache {self.path} locked for "
                f"{REFRESH_LOCK_TIMEOUT_S:.0f} s; is a sign-in stuck?"
            ) from None
        try:
            yield
        finally:
            lock.release()


def open_token_cache(path: Path) -> TokenCacheStore:
    """The persisted msal cache for delegated sign-in, safe for several processes at once.

    Encrypted by the platform (DPAPI, Keychain, libsecret) where it can be; otherwise a file
    readable only by its owner, with one warning per process and path.
    """
    path = path.expanduser().absolute()
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700)

    try:
        persistence: Any = msal_extensions.build_encrypted_persistence(str(path))
        storage = "encrypted"
    except Exception as exc:  # each platform's keyring fails in its own way
        persistence = msal_extensions.FilePersistence(str(path))
        storage = "file (owner only)"
        if path.exists():
            path.chmod(0o600)
        with _warned_lock:
            if str(path) not in _warned_paths:
                _warned_paths.add(str(path))
                log.warning(
                    "no encrypted store for the token cache on this platform (%s); keeping it "
                    "in %s, readable only by its owner",
                    type(exc).__name__,
                    path,
                )
    cache = msal_extensions.PersistedTokenCache(persistence)
    return TokenCacheStore(path=path, cache=cache, persistence=persistence, storage=storage)


def token_from_result(
    result: Mapping[str, Any], settings: GraphSettings, *, delegated: bool = False
) -> AccessToken:
    """An `AccessToken` from an msal result, or the plain error it stands for."""
    if "access_token" in result:
        expires_in = float(result.get("expires_in") or 0)
        return AccessToken(str(result["access_token"]), time.time() + expires_in)
    raise auth_failure(result, settings, delegated=delegated)


def auth_failure(
    result: Mapping[str, Any], settings: GraphSettings, *, delegated: bool = False
) -> GraphError:
    """Turn an Entra error reply into an exception that says what to do."""
    error = str(result.get("error") or "unknown_error")
    description = str(result.get("error_description") or "")
    codes = [int(c) for c in result.get("error_codes") or [] if str(c).isdigit()]
    if not codes:
        found = re.match(r"AADSTS(\d+)", description)
        codes = [int(found.group(1))] if found else []
    code = f"AADSTS{codes[0]}" if codes else error
    summary = _summary(description) or error
    request_id = result.get("correlation_id")
    rid = str(request_id) if request_id else None
    app = settings.client_id
    failed = set(codes)

    if failed & _CONSENT_MISSING:
        permission = (
            "Mail.Read.Shared (delegated)" if delegated else "Mail.Read (application permission)"
        )
        return PermissionProblem(
            f"app {app} lacks consent for {permission}: an admin must grant it and give admin "
            f"consent in Entra ({summary})",
            permission=permission,
            code=code,
            request_id=rid,
        )
    if failed & _DECLINED:
        return AuthError(
            f"the sign-in was declined or cancelled ({summary}); run `o365-assets login` again",
            code=code,
            request_id=rid,
        )
    if failed & _SECRET_REFUSED:
        return AuthError(
            f"Entra refused the client secret of app {app} ({summary}): check "
            f"O365_CLIENT_SECRET holds the secret's value (not its id) and has not expired",
            code=code,
            request_id=rid,
        )
    if failed & _CERT_REFUSED:
        return AuthError(
            f"Entra refused the certificate of app {app} ({summary}): upload the certificate "
            f"in O365_CLIENT_CERT_PATH to the app registration, and check the clock",
            code=code,
            request_id=rid,
        )
    if failed & _APP_UNKNOWN:
        return ConfigurationError(
            f"tenant {settings.tenant_id} has no app {app} ({summary}): check O365_CLIENT_ID "
            f"and O365_TENANT_ID",
            code=code,
            request_id=rid,
        )
    if failed & _TENANT_UNKNOWN:
        return ConfigurationError(
            f"Entra knows no tenant {settings.tenant_id!r} ({summary}): check O365_TENANT_ID",
            code=code,
            request_id=rid,
        )
    if failed & _PUBLIC_CLIENT_DISABLED:
        return ConfigurationError(
            f"app {app} does not allow public client flows ({summary}): turn on 'Allow public "
            f"client flows' in its registration for delegated sign-in",
            code=code,
            request_id=rid,
        )
    if delegated and (
        failed & _SIGN_IN_AGAIN or error in {"invalid_grant", "interaction_required"}
    ):
        return LoginRequired(
            f"the saved sign-in no longer works ({summary}): {LOGIN_HINT}",
            code=code,
            request_id=rid,
        )
    return AuthError(f"Entra refused a token for app {app}: {summary}", code=code, request_id=rid)


def _summary(description: str) -> str:
    """The first line of an Entra error description, without its trace and timestamp."""
    text = description.split("\r\n")[0].split("\n")[0]
    return re.split(r"\s+Trace ID:", text)[0].strip()


def login(
    settings: GraphSettings,
    *,
    device_code: bool = False,
    open_browser: bool = True,
    show: Callable[[str], None] | None = None,
    timeout_s: float = 300.0,
) -> CredentialFacts:
    """Sign a person in once for delegated mode and keep the refresh token in the cache.

    With `device_code`, `show` gets the code and the page to enter it on (for machines
    without a browser). Otherwise an authorization code with PKCE comes back to a loopback
    listener: msal opens the browser, or with `open_browser=False` `show` gets the address.
    Returns the facts of the new sign-in; other sign-ins in the cache are forgotten.
    """
    if settings.auth_mode is not AuthMode.DELEGATED:
        raise ConfigurationError(
            f"`o365-assets login` is for O365_AUTH_MODE=delegated; this configuration uses "
            f"{settings.auth_mode.value}, which needs no sign-in"
        )
    tell = show or _tell

    transport = Transport(settings)
    try:
        store = open_token_cache(settings.token_cache_path)
        app = build_public_application(settings, transport, store.cache)
        if device_code:
            result = _device_code_flow(app, settings, tell, timeout_s)
        elif open_browser:
            result = app.acquire_token_interactive(
                settings.scopes,
                prompt=msal.Prompt.SELECT_ACCOUNT,
                timeout=int(timeout_s),
                auth_uri_callback=tell,
            )
        else:
            result = _loopback_flow(app, settings, tell, timeout_s)
        token_from_result(result, settings, delegated=True)

        signed_in = (result.get("id_token_claims") or {}).get("oid")
        for account in app.get_accounts():
            if signed_in and account.get("local_account_id") != signed_in:
                app.remove_account(account)

        credential = DelegatedCredential(settings, transport, store)
        return credential.facts()
    finally:
        transport.close()


def _device_code_flow(
    app: Any, settings: GraphSettings, tell: Callable[[str], None], timeout_s: float
) -> Mapping[str, Any]:
    flow = app.initiate_device_flow(scopes=settings.scopes)
    if "user_code" not in flow:
        raise auth_failure(flow, settings, delegated=True)
    tell(str(flow.get("message") or f"enter {flow['user_code']} at {flow['verification_uri']}"))
    flow["expires_at"] = min(float(flow["expires_at"]), time.time() + timeout_s)
    result: Mapping[str, Any] = app.acquire_token_by_device_flow(flow)
    return result


def _loopback_flow(
    app: Any, settings: GraphSettings, tell: Callable[[str], None], timeout_s: float
) -> Mapping[str, Any]:
    """Authorization code with PKCE to a loopback listener, with the address shown rather
    than opened (for a browser on another screen, or a scripted sign-in)."""
    with AuthCodeReceiver(port=0) as receiver:
        flow = app.initiate_auth_code_flow(
            settings.scopes,
            redirect_uri=f"http://localhost:{receiver.get_port()}",
            prompt=msal.Prompt.SELECT_ACCOUNT,
            response_mode="form_post",
        )
        tell(f"To sign in, open this address in a browser: {flow['auth_uri']}")
        response = receiver.get_auth_response(state=flow["state"], timeout=int(timeout_s))
    if not response:
        raise LoginRequired("the sign-in was not completed in time; run `o365-assets login` again")
    result: Mapping[str, Any] = app.acquire_token_by_auth_code_flow(flow, response)
    return result


def _tell(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
