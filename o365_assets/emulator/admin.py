"""Admin endpoints for tests and demos, under `/_emulator`: add, move, change and remove mail
while running, turn the fault knobs, make delta tokens stale, and read what the emulator holds
and how it was used. Every call needs the header `X-Emulator-Admin: <admin_key>`.

    GET    /_emulator/records              every attachment with its size and sha256
    GET    /_emulator/stats                request counters per app, 429s, drops
    POST   /_emulator/stats/reset          zero the counters
    GET    /_emulator/faults               the fault knobs in force
    PUT    /_emulator/faults               change some knobs (a partial FaultSettings)
    POST   /_emulator/messages             add a message (fields, or raw MIME as `eml_base64`)
    PATCH  /_emulator/messages/{id}        change subject, isRead, importance, categories, body
    POST   /_emulator/messages/{id}/move   move to another folder: {"folder": "archive"}
    DELETE /_emulator/messages/{id}        remove a message
    POST   /_emulator/reset-delta          make every delta token stale (410 on next use)
    GET    /_emulator/seed-problems        what could not be read while seeding from .eml
"""

import base64
import binascii
import datetime
import hmac
import json
import logging
from email.utils import parseaddr
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from o365_assets.emulator.eml_seed import message_from_mime
from o365_assets.emulator.errors import graph_error
from o365_assets.emulator.faults import controller_for
from o365_assets.emulator.generator import attachment_from_kind, build_mail_store
from o365_assets.emulator.mailbox import (
    Address,
    Attachment,
    BytesContent,
    Mailbox,
    MailStore,
    Message,
    attachment_id,
    digest,
    rest_id,
)
from o365_assets.emulator.state import EmulatorState

log = logging.getLogger(__name__)

UTC = datetime.UTC
ADMIN_HEADER = "x-emulator-admin"


class AttachmentSpec(BaseModel):
    """One attachment of a message added through the admin API."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["file", "item", "reference"] = "file"
    name: str | None = None
    content_type: str | None = None
    content_base64: str | None = None
    # A file made by the generator instead of given bytes; `size` is for "large".
    generate: Literal["csv", "tsv", "xlsx", "docx", "pdf", "json", "png", "exe", "large"] | None = (
        None
    )
    size: int | None = Field(default=None, ge=0)
    is_inline: bool = False
    content_id: str | None = None
    source_url: str | None = None
    # An attached message, as raw MIME.
    eml_base64: str | None = None


class MessageSpec(BaseModel):
    """A message added through the admin API: fields, or raw MIME in `eml_base64`."""

    model_config = ConfigDict(extra="forbid")

    mailbox: str | None = None
    folder: str = "inbox"
    subject: str = ""
    sender: str = "Sender <sender@example.com>"
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    received: datetime.datetime | None = None
    body: str = ""
    body_type: Literal["html", "text"] = "html"
    is_read: bool = False
    importance: Literal["low", "normal", "high"] = "normal"
    attachments: list[AttachmentSpec] = Field(default_factory=list)
    eml_base64: str | None = None


class MessageChanges(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str | None = None
    is_read: bool | None = None
    importance: Literal["low", "normal", "high"] | None = None
    categories: list[str] | None = None
    body: str | None = None


class MoveSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    folder: str


class ResetDeltaSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: Literal["SyncStateNotFound", "resyncRequired", "syncStateNotFound"] = "SyncStateNotFound"


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _RequireAdminKey:
    """Refuses every request that does not carry the emulator's admin key."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers", [])).get(ADMIN_HEADER.encode(), b"")
            if not hmac.compare_digest(given, self.key):
                response = graph_error(
                    401, "Unauthorized", "The admin API needs the X-Emulator-Admin header."
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _address(text: str) -> Address:
    name, address = parseaddr(text)
    if not address:
        raise AdminError(400, f"not an e-mail address: {text!r}")
    return Address(name, address)


def _decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AdminError(400, f"{what} is not valid base64") from exc


class Admin:
    """The admin operations over one emulator's state."""

    def __init__(self, state: EmulatorState, store: MailStore) -> None:
        self.state = state
        self.store = store
        self.faults = controller_for(state)

    def _mailbox(self, ref: str | None) -> Mailbox:
        mailbox = self.store.mailbox(ref or self.state.config.mailbox)
        if mailbox is None:
            raise AdminError(404, f"no mailbox {ref!r}")
        return mailbox

    def _message(self, message_id: str) -> tuple[Mailbox, Message]:
        found = self.store.find_anywhere(message_id)
        if found is None:
            raise AdminError(404, f"no message with id {message_id!r}")
        return found

    def _summary(self, mailbox: Mailbox, message: Message) -> dict[str, Any]:
        return {
            "id": message.immutable_id,
            "rest_id": rest_id(message.folder_id, message.key),
            "mailbox": mailbox.address,
            "folder_id": message.folder_id,
            "folder": mailbox.folder_label(message.folder_id),
            "internet_message_id": message.internet_message_id,
            "change_key": message.change_key,
        }

    def add(self, spec: MessageSpec) -> dict[str, Any]:
        with self.store.lock:
            mailbox = self._mailbox(spec.mailbox)
            folder = mailbox.folder(spec.folder)
            if folder is None:
                raise AdminError(404, f"no folder {spec.folder!r} in {mailbox.address}")
            key = self.store.next_admin_key(mailbox, self.state.config.mail.seed)
        received = (spec.received or datetime.datetime.now(UTC)).astimezone(UTC)
        received = received.replace(microsecond=0)
        problems: list[str] = []

        if spec.eml_base64 is not None:
            raw = _decode(spec.eml_base64, "eml_base64")
            message = message_from_mime(raw, key, received, "admin", problems)
        else:
            sender = _address(spec.sender)
            message = Message(
                key=key,
                subject=spec.subject,
                sender=sender,
                to=[_address(item) for item in spec.to]
                or [Address(mailbox.display_name, mailbox.address)],
                cc=[_address(item) for item in spec.cc],
                received=received,
                sent=received,
                body=spec.body,
                body_type=spec.body_type,
                importance=spec.importance,
                is_read=spec.is_read,
                internet_message_id=f"<{key.hex()[:32]}@{sender.address.split('@')[-1]}>",
                conversation_id=base64.urlsafe_b64encode(digest(key.hex(), "conv")).decode(),
                attachments=[
                    self._attachment(key, index, item, problems)
                    for index, item in enumerate(spec.attachments)
                ],
                source="admin",
            )
        with self.store.lock:
            self.store.add_message(mailbox, message, folder)
            records = [r for r in self.store.records() if r["message_id"] == message.immutable_id]
        log.info("admin added message %s to %s", message.immutable_id, mailbox.address)
        return {**self._summary(mailbox, message), "attachments": records, "problems": problems}

    def _attachment(
        self, key: bytes, index: int, spec: AttachmentSpec, problems: list[str]
    ) -> Attachment:
        now = datetime.datetime.now(UTC).replace(microsecond=0)
        if spec.kind == "reference":
            return Attachment(
                id=attachment_id(key.hex(), index),
                kind="reference",
                name=spec.name or "link",
                content_type=spec.content_type,
                last_modified=now,
                source_url=spec.source_url or "https://contoso.sharepoint.com/shared",
                reference_size=spec.size or 0,
                expected_type="reference",
            )
        if spec.kind == "item":
            if spec.eml_base64 is None:
                raise AdminError(400, "an item attachment needs eml_base64")
            raw = _decode(spec.eml_base64, "eml_base64")
            inner_key = digest(key.hex(), "item", index)
            inner = message_from_mime(raw, inner_key, now, "admin", problems)
            return Attachment(
                id=attachment_id(key.hex(), index),
                kind="item",
                name=spec.name or inner.subject or "Attached message",
                content_type="message/rfc822",
                last_modified=now,
                content=BytesContent(raw),
                item=inner,
                expected_type="message",
            )
        if spec.generate is not None:
            made = attachment_from_kind(
                key, index, spec.generate, spec.name, spec.size, self.state.config.mail.seed
            )
            made.id = attachment_id(key.hex(), index)
            made.is_inline = spec.is_inline
            made.content_id = spec.content_id or made.content_id
            made.last_modified = now
            return made
        if spec.content_base64 is None:
            raise AdminError(400, "a file attachment needs content_base64 or generate")
        return Attachment(
            id=attachment_id(key.hex(), index),
            kind="file",
            name=spec.name or "attachment.bin",
            content_type=spec.content_type or "application/octet-stream",
            last_modified=now,
            content=BytesContent(_decode(spec.content_base64, "content_base64")),
            is_inline=spec.is_inline,
            content_id=spec.content_id,
        )

    def remove(self, message_id: str) -> dict[str, Any]:
        with self.store.lock:
            mailbox, message = self._message(message_id)
            summary = self._summary(mailbox, message)
            self.store.remove_message(mailbox, message)
        return summary

    def move(self, message_id: str, spec: MoveSpec) -> dict[str, Any]:
        with self.store.lock:
            mailbox, message = self._message(message_id)
            folder = mailbox.folder(spec.folder)
            if folder is None:
                raise AdminError(404, f"no folder {spec.folder!r} in {mailbox.address}")
            self.store.move_message(mailbox, message, folder)
            return self._summary(mailbox, message)

    def update(self, message_id: str, spec: MessageChanges) -> dict[str, Any]:
        changes = spec.model_dump(exclude_none=True)
        with self.store.lock:
            mailbox, message = self._message(message_id)
            self.store.update_message(message, changes)
            return self._summary(mailbox, message)

    def stats(self) -> dict[str, Any]:
        with self.store.lock:
            messages = {
                mailbox.address: len(mailbox.messages) for mailbox in self.store.mailboxes.values()
            }
            return {
                **self.faults.stats(),
                "messages": messages,
                "delta_generation": self.store.epoch,
                "change_sequence": self.store.seq,
            }


def build_app(state: EmulatorState) -> Starlette:
    """The admin application over the emulator's state, guarded by the admin key."""
    if state.mail is None:
        state.mail = build_mail_store(state)
    admin = Admin(state, state.mail)

    async def body(request: Request) -> Any:
        raw = await request.body()
        if not raw:
            return {}
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise AdminError(400, f"the body is not JSON: {exc}") from exc

    def answer(value: Any, status: int = 200) -> Response:
        return JSONResponse(value, status_code=status)

    async def records(request: Request) -> Response:
        mailbox = request.query_params.get("mailbox")
        rows = admin.store.records()
        if mailbox:
            rows = [row for row in rows if row["mailbox"].lower() == mailbox.lower()]
        return answer({"value": rows})

    async def stats(request: Request) -> Response:
        return answer(admin.stats())

    async def reset_stats(request: Request) -> Response:
        admin.faults.reset_stats()
        return answer(admin.stats())

    async def faults(request: Request) -> Response:
        if request.method == "PUT":
            changes = await body(request)
            if not isinstance(changes, dict):
                raise AdminError(400, "the body must be a JSON object of fault settings")
            admin.faults.update(changes)
        return answer(admin.faults.settings.model_dump())

    async def add_message(request: Request) -> Response:
        spec = MessageSpec.model_validate(await body(request))
        return answer(admin.add(spec), 201)

    async def message(request: Request) -> Response:
        message_id = request.path_params["message_id"]
        if request.method == "DELETE":
            return answer(admin.remove(message_id))
        return answer(admin.update(message_id, MessageChanges.model_validate(await body(request))))

    async def move(request: Request) -> Response:
        spec = MoveSpec.model_validate(await body(request))
        return answer(admin.move(request.path_params["message_id"], spec))

    async def reset_delta(request: Request) -> Response:
        spec = ResetDeltaSpec.model_validate(await body(request))
        admin.store.reset_delta(spec.code)
        return answer({"delta_generation": admin.store.epoch, "code": spec.code})

    async def seed_problems(request: Request) -> Response:
        return answer({"value": list(admin.store.seed_problems)})

    async def admin_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AdminError)
        return graph_error(
            exc.status, "BadRequest" if exc.status == 400 else "NotFound", exc.message
        )

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ValidationError)
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return graph_error(400, "BadRequest", problems)

    async def not_found(request: Request, exc: Exception) -> Response:
        return graph_error(404, "NotFound", f"No admin resource at {request.url.path}.")

    async def not_allowed(request: Request, exc: Exception) -> Response:
        return graph_error(405, "MethodNotAllowed", "The HTTP method is not allowed here.")

    app = Starlette(
        routes=[
            Route("/records", records),
            Route("/stats", stats),
            Route("/stats/reset", reset_stats, methods=["POST"]),
            Route("/faults", faults, methods=["GET", "PUT"]),
            Route("/messages", add_message, methods=["POST"]),
            Route("/messages/{message_id}", message, methods=["PATCH", "DELETE"]),
            Route("/messages/{message_id}/move", move, methods=["POST"]),
            Route("/reset-delta", reset_delta, methods=["POST"]),
            Route("/seed-problems", seed_problems),
        ],
        exception_handlers={
            AdminError: admin_error,
            ValidationError: invalid,
            404: not_found,
            405: not_allowed,
        },
    )
    app.add_middleware(_RequireAdminKey, key=state.admin_key)
    return app
