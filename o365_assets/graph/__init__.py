"""The Graph + Entra client layer: msal credentials, HTTP with retries and limits, delta sync,
listings, attachment batches and streamed downloads. Knows nothing of Dagster or DuckDB.

    from o365_assets.graph import GraphClient, GraphSettings

    settings = GraphSettings.from_env()
    with GraphClient(settings) as client:
        client.check_access(settings.mailbox)
        folder = client.resolve_folder(settings.mailbox, "inbox")
        for page in client.iter_delta(settings.mailbox, folder.id, stored_delta_link):
            ...
"""

from o365_assets.graph.auth import (
    AppCredential,
    Credential,
    CredentialFacts,
    DelegatedCredential,
    build_credential,
    login,
    open_token_cache,
)
from o365_assets.graph.client import GraphClient
from o365_assets.graph.errors import (
    AuthError,
    ConfigurationError,
    GraphError,
    LoginRequired,
    MailboxNotFound,
    NotDownloadable,
    PermissionProblem,
    ResponseShapeError,
    SyncStateLost,
    ThrottledTooLong,
)
from o365_assets.graph.models import (
    AnyAttachment,
    Attachment,
    DeltaPage,
    FileAttachment,
    ItemAttachment,
    ItemBody,
    MailboxAccess,
    MailFolder,
    Message,
    MessageStamp,
    NewMail,
    ReferenceAttachment,
    RemovedMessage,
)
from o365_assets.graph.settings import AuthMode, GraphSettings
from o365_assets.graph.tokens import AccessToken
from o365_assets.graph.transport import Transport

__all__ = [
    "AccessToken",
    "AnyAttachment",
    "AppCredential",
    "Attachment",
    "AuthError",
    "AuthMode",
    "ConfigurationError",
    "Credential",
    "CredentialFacts",
    "DelegatedCredential",
    "DeltaPage",
    "FileAttachment",
    "GraphClient",
    "GraphError",
    "GraphSettings",
    "ItemAttachment",
    "ItemBody",
    "LoginRequired",
    "MailFolder",
    "MailboxAccess",
    "MailboxNotFound",
    "Message",
    "MessageStamp",
    "NewMail",
    "NotDownloadable",
    "PermissionProblem",
    "ReferenceAttachment",
    "RemovedMessage",
    "ResponseShapeError",
    "SyncStateLost",
    "ThrottledTooLong",
    "Transport",
    "build_credential",
    "login",
    "open_token_cache",
]
