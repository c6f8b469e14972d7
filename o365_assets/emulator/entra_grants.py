"""What Entra remembers between requests, and the tokens it mints.

Pending sign-ins, authorization codes, refresh tokens and device codes live in an
`EntraStore` on the emulator state. Codes and tokens are stored under their SHA-256, never as
themselves, so that nothing that could be replayed sits in memory longer than needed.
"""

import base64
import hashlib
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from o365_assets.emulator.entra_clients import ClientAuth
from o365_assets.emulator.entra_protocol import (
    GRAPH_RESOURCE,
    EntraError,
    ScopeRequest,
)
from o365_assets.emulator.state import EmulatorState, User

log = logging.getLogger(__name__)

AUTHORIZATION_CODE_LIFETIME_S = 600
SIGN_IN_LIFETIME_S = 900
DEVICE_CODE_LIFETIME_S = 900
DEVICE_CODE_INTERVAL_S = 5
ID_TOKEN_LIFETIME_S = 3600
# How long an expired or redeemed code is remembered, so that a late client hears "expired"
# or "already redeemed" rather than "unknown".
FORGET_AFTER_S = 3600
# Letters and digits a person can read back without confusing O with 0 or I with 1.
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

DeviceStatus = Literal["pending", "approved", "declined", "redeemed"]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class SignIn:
    """An /authorize request waiting for the user on the sign-in page."""

    client_id: str
    redirect_uri: str
    response_mode: str
    state: str | None
    nonce: str | None
    scopes: ScopeRequest
    permissions: list[str]
    code_challenge: str | None
    code_challenge_method: str | None
    login_hint: str | None
    client_info: bool
    expires_at: float


@dataclass
class CodeGrant:
    client_id: str
    redirect_uri: str
    upn: str
    scopes: ScopeRequest
    permissions: list[str]
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    upn: str
    expires_at: float
    redeemed: bool = False


@dataclass
class DeviceGrant:
    client_id: str
    user_code: str
    scopes: ScopeRequest
    permissions: list[str]
    expires_at: float
    status: DeviceStatus = "pending"
    upn: str | None = None


@dataclass
class EntraStore:
    sign_ins: dict[str, SignIn] = field(default_factory=dict)
    codes: dict[str, CodeGrant] = field(default_factory=dict)
    refresh_tokens: dict[str, RefreshGrant] = field(default_factory=dict)
    device_codes: dict[str, DeviceGrant] = field(default_factory=dict)
    # user code -> digest of its device code
    user_codes: dict[str, str] = field(default_factory=dict)
    # browser session cookie -> signed-in user
    sessions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, state: EmulatorState) -> "EntraStore":
        with state.lock:
            store = state.extras.setdefault("entra", cls())
        assert isinstance(store, cls)
        return store

    def forget_expired(self, now: float) -> None:
        """Drop what expired a while ago, so a long-running emulator does not grow.

        Callers hold the state lock.
        """
        horizon = now - FORGET_AFTER_S
        for table in (self.sign_ins, self.codes, self.refresh_tokens, self.device_codes):
            for key in [key for key, item in table.items() if item.expires_at < horizon]:
                del table[key]
        live = set(self.device_codes)
        for user_code in [code for code, key in self.user_codes.items() if key not in live]:
            del self.user_codes[user_code]


def new_user_code() -> str:
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))


def service_principal_id(client_id: str) -> str:
    """A stable object id for the app's service principal in this tenant."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"service-principal:{client_id}"))


def pairwise_subject(client_id: str, object_id: str) -> str:
    """The `sub` of a user token: per user and per app, as Entra makes it."""
    raw = hashlib.sha256(f"{client_id}:{object_id}".encode()).digest()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def client_info(user: User, tenant_id: str) -> str:
    """What msal builds its account id from: base64url JSON with the user's and tenant's ids."""
    raw = json.dumps({"uid": user.object_id, "utid": tenant_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TokenMint:
    """Issues the token replies of every grant, with claims Graph checks and msal reads."""

    def __init__(self, state: EmulatorState, store: EntraStore) -> None:
        self.state = state
        self.store = store

    def _lifetime(self) -> int:
        # Read per token: the fault knob can change while the emulator runs.
        return self.state.faults.token_lifetime_s

    def app_only(self, auth: ClientAuth, scope: str) -> dict[str, Any]:
        """The reply to a client credentials grant."""
        app = auth.app
        lifetime = self._lifetime()
        principal = service_principal_id(app.client_id)
        claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE,
            "sub": principal,
            "oid": principal,
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": auth.acr,
            "azpacr": auth.acr,
            "app_displayname": app.display_name,
            "idtyp": "app",
        }
        if app.application_roles:
            claims["roles"] = list(app.application_roles)
        log.info("issued an app-only token to client %s", app.client_id)
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "scope": scope,
            "access_token": self.state.issuer.issue(claims, lifetime),
        }

    def delegated(
        self,
        auth: ClientAuth,
        user: User,
        scopes: ScopeRequest,
        permissions: list[str],
        *,
        nonce: str | None = None,
        with_client_info: bool = False,
        with_refresh_token: bool = False,
    ) -> dict[str, Any]:
        """The reply to a user grant: an access token for Graph, an id token when `openid`
        was asked for, and a refresh token when the grant allows one."""
        app = auth.app
        tenant_id = self.state.config.tenant_id
        lifetime = self._lifetime()
        # With no Graph permission asked for, Entra still returns a Graph token that only
        # reaches the user's profile.
        scp = permissions or sorted(scopes.oidc - {"offline_access"})
        access_claims: dict[str, Any] = {
            "aud": GRAPH_RESOURCE,
            "sub": pairwise_subject(app.client_id, user.object_id),
            "oid": user.object_id,
            "upn": user.upn,
            "unique_name": user.upn,
            "preferred_username": user.upn,
            "name": user.display_name,
            "scp": " ".join(scp),
            "appid": app.client_id,
            "azp": app.client_id,
            "appidacr": auth.acr,
            "azpacr": auth.acr,
            "app_displayname": app.display_name,
            "idtyp": "user",
        }
        reply: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": scopes.reply_scope(),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.state.issuer.issue(access_claims, lifetime),
        }

        if scopes.openid:
            id_claims: dict[str, Any] = {
                "aud": app.client_id,
                "sub": access_claims["sub"],
                "oid": user.object_id,
                "preferred_username": user.upn,
                "name": user.display_name,
            }
            if "email" in scopes.oidc:
                id_claims["email"] = user.upn
            if nonce is not None:
                id_claims["nonce"] = nonce
            reply["id_token"] = self.state.issuer.issue(id_claims, ID_TOKEN_LIFETIME_S)
        if with_refresh_token:
            reply["refresh_token"] = self.new_refresh_token(app.client_id, user.upn)
        if with_client_info:
            reply["client_info"] = client_info(user, tenant_id)
        log.info("issued a delegated token for %s to client %s", user.upn, app.client_id)
        return reply

    def new_refresh_token(self, client_id: str, upn: str) -> str:
        token = secrets.token_urlsafe(48)
        now = time.time()
        grant = RefreshGrant(
            client_id=client_id,
            upn=upn,
            expires_at=now + self.state.faults.refresh_token_lifetime_s,
        )
        with self.state.lock:
            self.store.forget_expired(now)
            self.store.refresh_tokens[digest(token)] = grant
        return token

    def redeem_refresh_token(self, token: str, client_id: str) -> RefreshGrant:
        """Take a refresh token for one use: it rotates, so a second use is refused."""
        now = time.time()
        with self.state.lock:
            grant = self.store.refresh_tokens.get(digest(token))
            if grant is None:
                raise EntraError(
                    400,
                    "invalid_grant",
                    9002313,
                    "Invalid request. The refresh token is malformed or unknown.",
                )
            if grant.expires_at <= now:
                raise EntraError(
                    400,
                    "invalid_grant",
                    700082,
                    "The refresh token has expired due to inactivity. Sign in again.",
                )
            if grant.redeemed:
                raise EntraError(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided grant is not valid: this refresh token was already redeemed "
                    "for a newer one. Use the latest refresh token.",
                )
            if grant.client_id != client_id:
                raise EntraError(
                    400,
                    "invalid_grant",
                    70000,
                    "The provided grant is not valid: the refresh token was issued to another "
                    "client.",
                )
            grant.redeemed = True
        return grant
