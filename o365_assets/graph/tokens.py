"""An access token that does not show itself, and reading a token's claims for reporting."""

import time
from dataclasses import dataclass, field
from typing import Any

import jwt


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops working.

    The value is left out of `repr` and `str`, so a token cannot reach a log by accident.
    """

    value: str = field(repr=False)
    expires_at: float

    def __str__(self) -> str:
        return repr(self)

    def expires_in(self, now: float | None = None) -> float:
        return self.expires_at - (time.time() if now is None else now)


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token, read without checking its signature.

    Good only for reporting what was granted (the resource checks the token); returns an
    empty dict for a token that is not a readable JWT.
    """
    try:
        claims: dict[str, Any] = jwt.decode(
            token, options={"verify_signature": False, "verify_exp": False, "verify_aud": False}
        )
    except jwt.PyJWTError:
        return {}
    return claims
