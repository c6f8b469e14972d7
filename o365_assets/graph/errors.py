"""What can go wrong talking to Entra and Graph, said so that a person knows what to do.

Every message passes through `scrub`, so a bearer token that slipped into a service's text
cannot reach a log or a traceback. Secrets are never put into a message to begin with.
"""

import re

# A JWT (access, id or assertion token): three base64url segments, the first `{"` encoded.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")


def scrub(text: str) -> str:
    """Mask anything shaped like a token in a message."""
    text = _JWT.sub("[token]", text)
    return _BEARER.sub(r"\1[token]", text)


class GraphError(Exception):
    """A request to Graph or Entra that could not be completed.

    `status` is the HTTP status when there was a reply, `code` the service's error code
    (Graph's `error.code`, or Entra's `AADSTS…` code), `request_id` the id to quote to support.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = scrub(message)
        self.status = status
        self.code = code
        self.request_id = request_id
        super().__init__(self.message)

    def __str__(self) -> str:
        if self.request_id:
            return f"{self.message} (request-id {self.request_id})"
        return self.message


class ConfigurationError(GraphError):
    """The settings are missing something or point at something unusable."""


class AuthError(GraphError):
    """Entra refused to issue a token."""


class LoginRequired(AuthError):
    """Delegated mode has no usable sign-in: a person must run `o365-assets login`."""


class PermissionProblem(GraphError):
    """The credential works but lacks a grant: an admin must give `permission`."""

    def __init__(
        self,
        message: str,
        *,
        permission: str,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.permission = permission
        super().__init__(message, status=status, code=code, request_id=request_id)


class MailboxNotFound(GraphError):
    """Graph knows no mailbox (or folder) by the configured name."""


class ThrottledTooLong(GraphError):
    """Graph kept answering 429/503/504 (or dropping the connection) past the retry budget."""


class SyncStateLost(GraphError):
    """A delta link is no longer valid; the sync must start over (handled inside the client)."""


class ResponseShapeError(GraphError):
    """A reply lacked a field the pipeline needs, or had it in an unusable form."""


class NotDownloadable(GraphError):
    """The attachment has no bytes to fetch (a reference attachment is only a link)."""
