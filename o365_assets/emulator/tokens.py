"""Signing and checking the emulator's access and id tokens (RS256 JWTs, as Entra issues)."""

import base64
import hashlib
import time
import uuid
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

GRAPH_AUDIENCES = ("https://graph.microsoft.com", "00000003-0000-0000-c000-000000000000")


class TokenError(Exception):
    """A bearer token that is malformed, forged, expired, or meant for someone else."""


class TokenIssuer:
    """Holds the tenant's signing key and issues tokens the Graph side can check."""

    def __init__(self, tenant_id: str, issuer_host: str) -> None:
        self.tenant_id = tenant_id
        self.issuer = f"{issuer_host}/{tenant_id}/v2.0"
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public_der = self._key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = hashlib.sha256(public_der).digest()[:20]
        self.key_id = base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def issue(self, claims: dict[str, Any], lifetime_seconds: int) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "tid": self.tenant_id,
            "iat": now,
            "nbf": now,
            "exp": now + lifetime_seconds,
            "uti": uuid.uuid4().hex,
            "ver": "2.0",
            **claims,
        }
        return jwt.encode(body, self._key, algorithm="RS256", headers={"kid": self.key_id})

    def verify(self, token: str, audiences: tuple[str, ...] = GRAPH_AUDIENCES) -> dict[str, Any]:
        """Return the claims of a token this issuer signed, or raise TokenError saying why not."""
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._key.public_key(),
                algorithms=["RS256"],
                audience=list(audiences),
                issuer=self.issuer,
                options={"require": ["exp", "aud", "tid"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenError("Lifetime validation failed, the token is expired.") from exc
        except jwt.PyJWTError as exc:
            raise TokenError(f"Access token validation failure: {exc}") from exc
        return claims

    def jwks(self) -> dict[str, Any]:
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}
