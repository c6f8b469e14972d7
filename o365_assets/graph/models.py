"""The shapes of the Graph replies the pipeline reads.

Graph adds fields over time, so unknown fields are kept, never refused. A field the pipeline
needs must be present (it may be null where Graph allows null): its absence is an error that
names it, raised by `parse` as `ResponseShapeError`.
"""

import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from o365_assets.graph.errors import ResponseShapeError

# What the pipeline asks Graph for, so that every listing carries what the models require.
MESSAGE_FIELDS = (
    "id",
    "receivedDateTime",
    "lastModifiedDateTime",
    "subject",
    "from",
    "hasAttachments",
    "internetMessageId",
    "parentFolderId",
)
STAMP_FIELDS = ("id", "receivedDateTime", "lastModifiedDateTime")
# Properties of the attachment base type only: asking for a derived type's property
# (`contentId`) on the collection is refused by Graph, and without `$select` a file
# attachment comes with all its bytes base64-encoded.
ATTACHMENT_FIELDS = ("id", "name", "contentType", "size", "isInline", "lastModifiedDateTime")
FOLDER_FIELDS = ("id", "displayName", "parentFolderId", "totalItemCount", "childFolderCount")


class GraphModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)


class EmailAddress(GraphModel):
    name: str | None = None
    address: str | None = None


class Recipient(GraphModel):
    email_address: EmailAddress | None = Field(default=None, alias="emailAddress")


class ItemBody(GraphModel):
    """A message body: `content_type` is `html` or `text`."""

    content_type: str | None = Field(default=None, alias="contentType")
    content: str | None = None


class MailFolder(GraphModel):
    id: str
    display_name: str = Field(alias="displayName")
    parent_folder_id: str | None = Field(default=None, alias="parentFolderId")
    total_item_count: int | None = Field(default=None, alias="totalItemCount")
    child_folder_count: int | None = Field(default=None, alias="childFolderCount")


class _AttachmentBase(GraphModel):
    id: str
    name: str | None
    content_type: str | None = Field(alias="contentType")
    size: int
    is_inline: bool = Field(alias="isInline")
    last_modified: datetime.datetime | None = Field(default=None, alias="lastModifiedDateTime")


class FileAttachment(_AttachmentBase):
    """A file; its bytes come from `$value` (never from base64 `contentBytes` in a listing)."""

    odata_type: Literal["#microsoft.graph.fileAttachment"] = Field(alias="@odata.type")
    # Never in a listing (Graph refuses a derived type's property in a collection's
    # $select): `GraphClient.get_attachment` reads it one attachment at a time.
    content_id: str | None = Field(default=None, alias="contentId")

    @property
    def kind(self) -> Literal["file"]:
        return "file"


class ItemAttachment(_AttachmentBase):
    """An attached message, event or contact; `$value` gives it as MIME."""

    odata_type: Literal["#microsoft.graph.itemAttachment"] = Field(alias="@odata.type")

    @property
    def kind(self) -> Literal["item"]:
        return "item"


class ReferenceAttachment(_AttachmentBase):
    """A link to a file elsewhere (OneDrive, SharePoint): recorded, never fetched."""

    odata_type: Literal["#microsoft.graph.referenceAttachment"] = Field(alias="@odata.type")
    source_url: str | None = Field(default=None, alias="sourceUrl")

    @property
    def kind(self) -> Literal["reference"]:
        return "reference"


Attachment = Annotated[
    FileAttachment | ItemAttachment | ReferenceAttachment, Field(discriminator="odata_type")
]


class Message(GraphModel):
    """A message as the index keeps it: `subject`, `from` and `internetMessageId` may be null
    (drafts, odd mail) but must be present, since the pipeline selected them."""

    id: str
    received_at: datetime.datetime = Field(alias="receivedDateTime")
    last_modified: datetime.datetime | None = Field(default=None, alias="lastModifiedDateTime")
    subject: str | None
    sender: Recipient | None = Field(alias="from")
    has_attachments: bool = Field(alias="hasAttachments")
    internet_message_id: str | None = Field(alias="internetMessageId")
    parent_folder_id: str = Field(alias="parentFolderId")
    body: ItemBody | None = None
    # Filled when the listing expanded `attachments`.
    attachments: list[Attachment] | None = None


class MessageStamp(GraphModel):
    """The least the new-mail check needs: which message, received and changed when."""

    id: str
    received_at: datetime.datetime = Field(alias="receivedDateTime")
    last_modified: datetime.datetime | None = Field(default=None, alias="lastModifiedDateTime")


class Removed(GraphModel):
    reason: str | None = None


class RemovedMessage(GraphModel):
    """A delta entry for a message that left the folder (deleted or moved away)."""

    id: str
    removed: Removed = Field(alias="@removed")


class DeltaPage(BaseModel):
    """One page of a folder's delta sync.

    `messages` are new or changed, `removed` left the folder. `delta_link` is set on the last
    page only: store it to continue next time. `full_sync` says the pages come from a sync
    started from scratch (all current messages are listed: anything not listed is gone);
    `resynced` says that happened because Graph no longer knew the stored state.
    """

    model_config = ConfigDict(frozen=True)

    messages: list[Message]
    removed: list[RemovedMessage]
    delta_link: str | None
    full_sync: bool
    resynced: bool
    page_number: int


class MailboxAccess(BaseModel):
    """The cheap access check's result: the folder opened and how much it holds."""

    model_config = ConfigDict(frozen=True)

    mailbox: str
    folder_id: str
    folder_name: str
    total_items: int | None


class NewMail(BaseModel):
    """Messages received since a cursor, newest first; `more` is true when there were more
    than the check fetched (the caller should sync rather than trust the list)."""

    model_config = ConfigDict(frozen=True)

    messages: list[MessageStamp]
    more: bool

    @property
    def newest(self) -> datetime.datetime | None:
        return max((m.received_at for m in self.messages), default=None)


ModelT = TypeVar("ModelT", bound=BaseModel)
AnyAttachment = FileAttachment | ItemAttachment | ReferenceAttachment
_ATTACHMENT: TypeAdapter[AnyAttachment] = TypeAdapter(Attachment)


def parse_model(model: type[ModelT], data: Any, where: str) -> ModelT:
    """Validate `data` as `model`, or raise `ResponseShapeError` naming the missing or
    malformed fields (never their values, which may have come from an email)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ResponseShapeError(f"{where}: {describe(exc)}") from None


def parse_attachment(data: Any, where: str) -> AnyAttachment:
    """One attachment of any kind, told apart by its `@odata.type`."""
    try:
        return _ATTACHMENT.validate_python(data)
    except ValidationError as exc:
        raise ResponseShapeError(f"{where}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    problems = []
    for error in errors[:5]:
        field = ".".join(str(part) for part in error["loc"])
        problems.append(f"{field or 'reply'}: {error['msg']}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(problems) + more
