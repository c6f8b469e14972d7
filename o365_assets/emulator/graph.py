"""Microsoft Graph v1.0 mail endpoints, mounted at `/v1.0`.

Users and their mail folders, messages (with `$select`, `$top`, `$skip`, `$filter`,
`$orderby`, `$count`, `$expand`), delta queries, attachments and their raw `$value`, and JSON
batching. Every request carries a bearer token from the emulator's Entra side; app-only tokens
reach only the mailboxes their app registration is scoped to, delegated tokens the user's own
mailbox and those shared with them. The Outlook throttling limits and the fault knobs of
`faults.py` apply to every call, batched or not.
"""

import asyncio
import base64
import html
import json
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message as AsgiMessage
from starlette.types import Receive, Scope, Send

from o365_assets.emulator.errors import graph_error
from o365_assets.emulator.faults import (
    ConnectionDropped,
    FaultController,
    FaultMiddleware,
    Rejection,
    controller_for,
    quiet_deliberate_drops,
)
from o365_assets.emulator.generator import build_mail_store
from o365_assets.emulator.mailbox import (
    Attachment,
    BytesContent,
    Content,
    DeltaTokenError,
    Folder,
    Mailbox,
    MailStore,
    Message,
    graph_time,
    immutable_id,
    message_mime,
    rest_id,
)
from o365_assets.emulator.odata import (
    Filter,
    QueryError,
    parse_expand,
    parse_orderby,
    parse_prefer,
    parse_select,
)
from o365_assets.emulator.state import EmulatorState, User
from o365_assets.emulator.tokens import TokenError

log = logging.getLogger(__name__)

GRAPH_JSON = (
    "application/json;odata.metadata=minimal;odata.streaming=true;"
    "IEEE754Compatible=false;charset=utf-8"
)
MAIL_ROLES = {"Mail.Read", "Mail.ReadWrite"}
MAIL_SCOPES = {"Mail.Read", "Mail.ReadWrite"}
SHARED_SCOPES = {"Mail.Read.Shared", "Mail.ReadWrite.Shared"}
MAX_TOP = 1000
DEFAULT_TOP = 10
MAX_BATCH = 20
# contentBytes larger than this are streamed into the JSON instead of encoded up front.
INLINE_BASE64_LIMIT = 1024 * 1024

MESSAGE_FIELDS = [
    "createdDateTime",
    "lastModifiedDateTime",
    "changeKey",
    "categories",
    "receivedDateTime",
    "sentDateTime",
    "hasAttachments",
    "internetMessageId",
    "subject",
    "bodyPreview",
    "importance",
    "parentFolderId",
    "conversationId",
    "conversationIndex",
    "isDeliveryReceiptRequested",
    "isReadReceiptRequested",
    "isRead",
    "isDraft",
    "webLink",
    "inferenceClassification",
    "body",
    "sender",
    "from",
    "toRecipients",
    "ccRecipients",
    "bccRecipients",
    "replyTo",
    "flag",
]
# Returned only when asked for by name, as in Graph.
MESSAGE_SELECT_ONLY = ["internetMessageHeaders", "uniqueBody"]
MESSAGE_SELECTABLE = ["id", *MESSAGE_FIELDS, *MESSAGE_SELECT_ONLY]
MESSAGE_FILTERS = {
    "receivedDateTime": "datetime",
    "sentDateTime": "datetime",
    "createdDateTime": "datetime",
    "lastModifiedDateTime": "datetime",
    "hasAttachments": "bool",
    "isRead": "bool",
    "isDraft": "bool",
    "importance": "string",
    "subject": "string",
    "internetMessageId": "string",
    "conversationId": "string",
    "parentFolderId": "string",
    "from/emailAddress/address": "string",
    "sender/emailAddress/address": "string",
}
MESSAGE_SORTABLE = [
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "subject",
    "importance",
]
ATTACHMENT_SELECTABLE = [
    "id",
    "lastModifiedDateTime",
    "name",
    "contentType",
    "size",
    "isInline",
    "contentId",
    "contentLocation",
    "contentBytes",
    "sourceUrl",
    "providerType",
    "permission",
    "isFolder",
]
FOLDER_SELECTABLE = [
    "id",
    "displayName",
    "parentFolderId",
    "childFolderCount",
    "unreadItemCount",
    "totalItemCount",
    "sizeInBytes",
    "isHidden",
]
FOLDER_FILTERS = {
    "displayName": "string",
    "parentFolderId": "string",
    "childFolderCount": "number",
    "totalItemCount": "number",
    "unreadItemCount": "number",
}
ATTACHMENT_TYPES = {
    "file": "#microsoft.graph.fileAttachment",
    "item": "#microsoft.graph.itemAttachment",
    "reference": "#microsoft.graph.referenceAttachment",
}
ITEM_EXPAND = "microsoft.graph.itemattachment/item"
# Delta accepts a filter on the received time only.
DELTA_FILTERS = {"receivedDateTime": "datetime"}


class GraphFault(Exception):
    """A refusal in Graph's error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        throttle_reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        self.throttle_reason = throttle_reason

    @classmethod
    def from_rejection(cls, rejection: Rejection) -> "GraphFault":
        return cls(
            rejection.status,
            rejection.code,
            rejection.message,
            rejection.headers(),
            rejection.reason,
        )


def _bad_request(message: str, code: str = "BadRequest") -> GraphFault:
    return GraphFault(400, code, message)


def _not_found(what: str = "The specified object was not found in the store.") -> GraphFault:
    return GraphFault(404, "ErrorItemNotFound", what)


# -- request and reply -------------------------------------------------------------------------


@dataclass
class Call:
    """One Graph request, from the wire or from inside a batch."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base: str
    prefer: dict[str, str] = field(default_factory=dict)
    # Inside a batch every body is materialised; over HTTP large ones are streamed.
    in_batch: bool = False

    def option(self, name: str) -> str | None:
        return self.query.get(name.lower())

    @property
    def immutable_ids(self) -> bool:
        return self.prefer.get("idtype", "").lower() == "immutableid"


class LazyBase64:
    """Base64 of a large attachment, encoded chunk by chunk as the JSON is sent."""

    def __init__(self, content: Content) -> None:
        self.content = content

    @property
    def length(self) -> int:
        return 4 * ((self.content.size + 2) // 3)

    def chunks(self) -> AsyncIterator[bytes]:
        async def produce() -> AsyncIterator[bytes]:
            carry = b""
            for chunk in self.content.chunks():
                data = carry + chunk
                cut = len(data) - len(data) % 3
                carry = data[cut:]
                if cut:
                    yield base64.b64encode(data[:cut])
            if carry:
                yield base64.b64encode(carry)

        return produce()


@dataclass
class Reply:
    status: int = 200
    json: dict[str, Any] | None = None
    content: Content | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    app_id: str | None = None
    release: Callable[[], None] | None = None

    def finish(self) -> None:
        if self.release is not None:
            self.release()
            self.release = None

    def to_response(self) -> Response:
        headers = dict(self.headers)
        if self.content is not None:
            headers["Content-Length"] = str(self.content.size)
            return StreamingResponse(
                _stream(self.content),
                status_code=self.status,
                headers=headers,
                media_type=self.content_type or "application/octet-stream",
            )
        if self.json is None:
            return Response(status_code=self.status, headers=headers)
        pieces, length = _encode_json(self.json)
        headers["Content-Length"] = str(length)
        if len(pieces) == 1 and isinstance(pieces[0], bytes):
            return Response(pieces[0], self.status, headers, media_type=GRAPH_JSON)
        return StreamingResponse(
            _stream_pieces(pieces), self.status, headers, media_type=GRAPH_JSON
        )


async def _stream(content: Content) -> AsyncIterator[bytes]:
    for chunk in content.chunks():
        yield chunk
        # Let other requests run between chunks of a long download.
        await asyncio.sleep(0)


async def _stream_pieces(pieces: list[bytes | LazyBase64]) -> AsyncIterator[bytes]:
    for piece in pieces:
        if isinstance(piece, bytes):
            yield piece
            continue
        async for chunk in piece.chunks():
            yield chunk
            await asyncio.sleep(0)


def _encode_json(document: dict[str, Any]) -> tuple[list[bytes | LazyBase64], int]:
    """JSON bytes with large base64 values left as placeholders to stream, and the length."""
    lazies: list[LazyBase64] = []
    marker = f"@@lazy-{secrets.token_hex(8)}-"

    def default(value: object) -> str:
        if isinstance(value, LazyBase64):
            lazies.append(value)
            return f"{marker}{len(lazies) - 1}@@"
        raise TypeError(f"cannot encode {type(value).__name__}")

    text = json.dumps(document, default=default, ensure_ascii=False, separators=(",", ":"))
    if not lazies:
        data = text.encode("utf-8")
        return [data], len(data)
    pieces: list[bytes | LazyBase64] = []
    length = 0
    for index, segment in enumerate(re.split(re.escape(marker) + r"\d+@@", text)):
        data = segment.encode("utf-8")
        pieces.append(data)
        length += len(data)
        if index < len(lazies):
            pieces.append(lazies[index])
            length += lazies[index].length
    return pieces, length


# -- who is calling ----------------------------------------------------------------------------


@dataclass
class Principal:
    app_id: str
    delegated: bool
    permissions: set[str]
    user: User | None


class GraphService:
    """Answers Graph calls against the mail store; shared by HTTP requests and batch items."""

    def __init__(self, state: EmulatorState, store: MailStore, faults: FaultController) -> None:
        self.state = state
        self.store = store
        self.faults = faults

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, call: Call) -> Reply:
        app_id: str | None = None
        reason: str | None = None
        try:
            principal = self._authenticate(call)
            app_id = principal.app_id
            if call.path.strip("/").lower() == "$batch":
                reply = await self._batch(call)
            else:
                reply = await self._dispatch(call, principal)
        except GraphFault as fault:
            reply = _fault_reply(fault)
            reason = fault.throttle_reason
        except QueryError as error:
            reply = _fault_reply(_bad_request(error.message, error.code))
        reply.app_id = app_id
        reply.headers.setdefault("request-id", str(uuid.uuid4()))
        if "client-request-id" in call.headers:
            reply.headers["client-request-id"] = call.headers["client-request-id"]
        if call.path.strip("/").lower() != "$batch":
            self.faults.record(app_id, reply.status, reason)
        return reply

    def _authenticate(self, call: Call) -> Principal:
        challenge = {
            "WWW-Authenticate": (
                f'Bearer realm="", authorization_uri="{self.state.base_url}/common/oauth2/'
                'authorize", client_id="00000003-0000-0000-c000-000000000000"'
            )
        }
        header = call.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise GraphFault(401, "InvalidAuthenticationToken", "Access token is empty.", challenge)
        if scheme.lower() != "bearer" or not token.strip():
            raise GraphFault(
                401, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", challenge
            )
        try:
            claims = self.state.issuer.verify(token.strip())
        except TokenError as exc:
            raise GraphFault(401, "InvalidAuthenticationToken", str(exc), challenge) from exc

        app_id = str(claims.get("appid") or claims.get("azp") or "")
        scopes = str(claims.get("scp", "")).split()
        delegated = claims.get("idtyp") == "user" or (bool(scopes) and "idtyp" not in claims)
        if delegated:
            upn = str(claims.get("upn") or claims.get("preferred_username") or "").lower()
            user = self.state.users.get(upn) or next(
                (u for u in self.state.users.values() if u.object_id == claims.get("oid")), None
            )
            return Principal(app_id, True, set(scopes), user)
        return Principal(app_id, False, set(claims.get("roles", [])), None)

    async def _dispatch(self, call: Call, principal: Principal) -> Reply:
        segments = [segment for segment in call.path.split("/") if segment]
        if not segments:
            raise _unknown_segment(call.path)
        head = segments[0].lower()
        if head == "me":
            if not principal.delegated or principal.user is None:
                raise _bad_request("/me request is only valid with delegated authentication flow.")
            mailbox_ref, rest = principal.user.upn, segments[1:]
        elif head == "users" and len(segments) >= 2:
            mailbox_ref, rest = segments[1], segments[2:]
        else:
            raise _unknown_segment(segments[0])

        handler = self._route(rest)
        if call.method != "GET":
            raise GraphFault(
                405, "ErrorInvalidRequest", f"The HTTP method '{call.method}' is not allowed."
            )
        with self.store.lock:
            mailbox = self.store.mailbox(mailbox_ref)
        if mailbox is None:
            raise GraphFault(
                404, "ErrorInvalidUser", f"The requested user '{mailbox_ref}' is invalid."
            )

        if not rest:
            return self._user(call, principal, mailbox)
        self._authorize(principal, mailbox)
        return await self._admitted(call, principal, mailbox, lambda: handler(call, mailbox))

    def _route(self, rest: list[str]) -> Callable[[Call, Mailbox], Reply]:
        """The handler for the path after `/users/{id}`; raises 404 for an unknown path."""
        words = [segment.lower() for segment in rest]
        if not rest:
            return lambda call, mailbox: Reply()
        if words[0] == "mailfolders":
            if len(rest) == 1:
                return self._folders
            folder_ref = rest[1]
            if len(rest) == 2:
                return lambda call, mailbox: self._folder(call, mailbox, folder_ref)
            if words[2] == "childfolders" and len(rest) == 3:
                return lambda call, mailbox: self._folders(call, mailbox, folder_ref)
            if words[2] == "messages":
                if len(rest) == 3:
                    return lambda call, mailbox: self._messages(call, mailbox, folder_ref)
                if len(rest) == 4 and words[3] == "delta":
                    return lambda call, mailbox: self._delta(call, mailbox, folder_ref)
                return self._message_route(rest[3], words[4:], rest[4:], folder_ref)
        if words[0] == "messages":
            if len(rest) == 1:
                return lambda call, mailbox: self._messages(call, mailbox, None)
            return self._message_route(rest[1], words[2:], rest[2:], None)
        raise _unknown_segment(rest[0])

    def _message_route(
        self, message_id: str, words: list[str], rest: list[str], folder_ref: str | None
    ) -> Callable[[Call, Mailbox], Reply]:
        if not words:
            return lambda call, mailbox: self._message(call, mailbox, message_id, folder_ref)
        if words == ["$value"]:
            return lambda call, mailbox: self._message_value(call, mailbox, message_id, folder_ref)
        if words[0] == "attachments":
            if len(words) == 1:
                return lambda call, mailbox: self._attachments(
                    call, mailbox, message_id, folder_ref
                )
            attachment_ref = rest[1]
            if len(words) == 2:
                return lambda call, mailbox: self._attachment(
                    call, mailbox, message_id, folder_ref, attachment_ref
                )
            if len(words) == 3 and words[2] == "$value":
                return lambda call, mailbox: self._attachment_value(
                    call, mailbox, message_id, folder_ref, attachment_ref
                )
        raise _unknown_segment(rest[-1])

    def _authorize(self, principal: Principal, mailbox: Mailbox) -> None:
        denied = GraphFault(
            403, "ErrorAccessDenied", "Access is denied. Check credentials and try again."
        )
        address = mailbox.address.lower()
        if not principal.delegated:
            app = self.state.apps.get(principal.app_id)
            if app is None or not (principal.permissions & MAIL_ROLES):
                raise denied
            if address not in {scoped.lower() for scoped in app.mailboxes}:
                raise denied
            return
        user = principal.user
        if user is None:
            raise denied
        if user.upn.lower() == address:
            if not principal.permissions & (MAIL_SCOPES | SHARED_SCOPES):
                raise denied
            return
        shared = {scoped.lower() for scoped in user.shared_mailboxes}
        if address not in shared or not (principal.permissions & SHARED_SCOPES):
            raise denied

    async def _admitted(
        self,
        call: Call,
        principal: Principal,
        mailbox: Mailbox,
        work: Callable[[], Reply],
    ) -> Reply:
        """Run `work` inside the Outlook limits and the fault knobs."""
        rejection = self.faults.admit(principal.app_id, mailbox.address)
        if rejection is not None:
            raise _throttled(rejection)

        def release() -> None:
            self.faults.release(principal.app_id, mailbox.address)

        try:
            latency = self.faults.settings.latency_ms
            if latency > 0:
                await asyncio.sleep(latency / 1000)
            injected = self.faults.roll_error()
            if injected is not None:
                raise _throttled(injected)
            with self.store.lock:
                reply = work()
        except BaseException:
            release()
            raise
        reply.release = release
        return reply

    # -- users and folders -----------------------------------------------------------------

    def _user(self, call: Call, principal: Principal, mailbox: Mailbox) -> Reply:
        own = principal.user is not None and principal.user.upn.lower() == mailbox.address.lower()
        allowed = ("User.Read" in principal.permissions and own) or bool(
            principal.permissions & {"User.Read.All", "User.ReadBasic.All"}
        )
        if not allowed:
            raise GraphFault(
                403,
                "Authorization_RequestDenied",
                "Insufficient privileges to complete the operation.",
            )
        return Reply(
            json={
                "@odata.context": f"{call.base}/v1.0/$metadata#users/$entity",
                "id": mailbox.object_id,
                "displayName": mailbox.display_name,
                "mail": mailbox.address,
                "userPrincipalName": mailbox.address,
                "businessPhones": [],
            }
        )

    def _resolve_folder(self, mailbox: Mailbox, ref: str) -> Folder:
        folder = mailbox.folder(ref)
        if folder is None:
            raise _not_found("The specified folder could not be found in the store.")
        return folder

    def _folder_json(self, mailbox: Mailbox, folder: Folder, select: list[str]) -> dict[str, Any]:
        messages = mailbox.in_folder(folder)
        full = {
            "id": folder.id,
            "displayName": folder.display_name,
            "parentFolderId": folder.parent_id,
            "childFolderCount": len(mailbox.children(folder)),
            "unreadItemCount": sum(not message.is_read for message in messages),
            "totalItemCount": len(messages),
            "sizeInBytes": sum(_message_size(message) for message in messages),
            "isHidden": False,
        }
        if not select:
            return full
        return {"id": folder.id, **{name: full[name] for name in select if name != "id"}}

    def _folders(self, call: Call, mailbox: Mailbox, parent_ref: str | None = None) -> Reply:
        _allow(call, {"$select", "$top", "$skip", "$count", "$filter"})
        parent = self._resolve_folder(mailbox, parent_ref or "msgfolderroot")
        select = _select(call, FOLDER_SELECTABLE, "mailFolder")
        folders = sorted(mailbox.children(parent), key=lambda f: f.display_name.lower())
        text = call.option("$filter")
        if text is not None:
            condition = Filter(text, FOLDER_FILTERS, "mailFolder")
            folders = [f for f in folders if condition.matches(_folder_getter(mailbox, f))]
        top, skip = _paging(call)
        page = folders[skip : skip + top]
        segment = f"mailFolders('{parent_ref}')/childFolders" if parent_ref else "mailFolders"
        body: dict[str, Any] = {
            "@odata.context": _context(call, mailbox, segment, select),
        }
        if (call.option("$count") or "").lower() == "true":
            body["@odata.count"] = len(folders)
        body["value"] = [self._folder_json(mailbox, folder, select) for folder in page]
        if skip + top < len(folders):
            body["@odata.nextLink"] = _next_link(call, skip + top)
        return Reply(json=body, headers=_applied(call))

    def _folder(self, call: Call, mailbox: Mailbox, ref: str) -> Reply:
        _allow(call, {"$select"})
        folder = self._resolve_folder(mailbox, ref)
        select = _select(call, FOLDER_SELECTABLE, "mailFolder")
        body = {
            "@odata.context": _context(call, mailbox, "mailFolders", select, entity=True),
            **self._folder_json(mailbox, folder, select),
        }
        return Reply(json=body, headers=_applied(call))

    # -- messages --------------------------------------------------------------------------

    def _messages(self, call: Call, mailbox: Mailbox, folder_ref: str | None) -> Reply:
        _allow(call, {"$select", "$top", "$skip", "$filter", "$orderby", "$count", "$expand"})
        folder = self._resolve_folder(mailbox, folder_ref) if folder_ref else None
        select = _select(call, MESSAGE_SELECTABLE, "message")
        expand = _message_expand(call)
        top, skip = _paging(call)

        candidates = mailbox.in_folder(folder) if folder else list(mailbox.messages.values())
        matching = _filtered(call, candidates)
        ordered = _ordered(call, matching)

        segment = f"mailFolders('{folder_ref}')/messages" if folder_ref else "messages"
        body: dict[str, Any] = {"@odata.context": _context(call, mailbox, segment, select)}
        if (call.option("$count") or "").lower() == "true":
            body["@odata.count"] = len(ordered)
        body["value"] = [
            self._message_json(call, message, select, expand)
            for message in ordered[skip : skip + top]
        ]
        if skip + top < len(ordered):
            body["@odata.nextLink"] = _next_link(call, skip + top)
        return Reply(json=body, headers=_applied(call))

    def _find_message(self, mailbox: Mailbox, message_id: str, folder_ref: str | None) -> Message:
        message = self.store.find(mailbox, message_id)
        if message is None:
            raise _not_found()
        in_folder = folder_ref is None or (
            self._resolve_folder(mailbox, folder_ref).id == message.folder_id
        )
        if not in_folder:
            raise _not_found()
        return message

    def _message(
        self, call: Call, mailbox: Mailbox, message_id: str, folder_ref: str | None
    ) -> Reply:
        _allow(call, {"$select", "$expand"})
        message = self._find_message(mailbox, message_id, folder_ref)
        select = _select(call, MESSAGE_SELECTABLE, "message")
        expand = _message_expand(call)
        body = {
            "@odata.context": _context(call, mailbox, "messages", select, entity=True),
            **self._message_json(call, message, select, expand),
        }
        return Reply(json=body, headers=_applied(call))

    def _message_value(
        self, call: Call, mailbox: Mailbox, message_id: str, folder_ref: str | None
    ) -> Reply:
        _allow(call, set())
        message = self._find_message(mailbox, message_id, folder_ref)
        # TODO: a message's MIME is built whole in memory; a message carrying a multi-GiB
        # generated attachment would need a streaming MIME writer.
        return Reply(content=BytesContent(message_mime(message)), content_type="text/plain")

    def _message_json(
        self,
        call: Call,
        message: Message,
        select: list[str],
        expand: dict[str, str] | None,
    ) -> dict[str, Any]:
        ids_immutable = call.immutable_ids
        message_id = (
            message.immutable_id if ids_immutable else rest_id(message.folder_id, message.key)
        )
        as_text = call.prefer.get("outlook.body-content-type", "").lower() == "text"
        document: dict[str, Any] = {"@odata.etag": f'W/"{message.change_key}"', "id": message_id}
        wanted = select or MESSAGE_FIELDS
        values = _message_values(message, as_text)
        for name in MESSAGE_SELECTABLE:
            if name != "id" and name in wanted:
                document[name] = values[name]()
        if expand is not None:
            nested = _select_text(expand.get("$select"), ATTACHMENT_SELECTABLE, "attachment")
            document["attachments"] = [
                self._attachment_json(call, attachment, nested, False)
                for attachment in message.attachments
            ]
        return document

    # -- delta -----------------------------------------------------------------------------

    def _delta(self, call: Call, mailbox: Mailbox, folder_ref: str) -> Reply:
        folder = self._resolve_folder(mailbox, folder_ref)
        token = call.option("$deltatoken") or call.option("$skiptoken")
        if token:
            try:
                cursor = self.store.decode_cursor(token)
            except DeltaTokenError as exc:
                raise GraphFault(410, self.store.resync_code, str(exc)) from exc
            if cursor.get("f") != folder.id or cursor.get("m") != mailbox.address.lower():
                raise GraphFault(
                    410, self.store.resync_code, "The sync state belongs to another folder."
                )
            if cursor.get("hi") is None:
                cursor = {**cursor, "hi": self.store.seq, "af": cursor["lo"]}
        else:
            _allow(call, {"$select", "$filter", "$top"})
            cursor = {
                "m": mailbox.address.lower(),
                "f": folder.id,
                "lo": 0,
                "hi": self.store.seq,
                "af": 0,
                "i": True,
                "s": call.option("$select"),
                "q": call.option("$filter"),
            }

        select = _select_text(cursor.get("s"), MESSAGE_SELECTABLE, "message")
        condition = Filter(cursor["q"], DELTA_FILTERS) if cursor.get("q") else None
        page_size, applied = _page_size(call)

        changes = self.store.changes(
            mailbox, folder, cursor["lo"], cursor["hi"], cursor.get("i", False)
        )
        entries = [
            (seq, message, key)
            for seq, message, key in changes
            if seq > cursor["af"]
            and (message is None or condition is None or condition.matches(_getter(message)))
        ]
        page = entries[:page_size]

        value = []
        for _seq, message, key in page:
            if message is None:
                removed_id = immutable_id(key) if call.immutable_ids else rest_id(folder.id, key)
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        "id": removed_id,
                        "@removed": {"reason": "deleted"},
                    }
                )
            else:
                value.append(
                    {
                        "@odata.type": "#microsoft.graph.message",
                        **self._message_json(call, message, select, None),
                    }
                )

        link_base = (
            f"{call.base}/v1.0/users/{quote(mailbox.address, safe='@')}"
            f"/mailFolders/{quote(folder.id)}/messages/delta"
        )
        body: dict[str, Any] = {
            "@odata.context": f"{call.base}/v1.0/$metadata#Collection(message)",
            "value": value,
        }
        if len(entries) > page_size:
            token = self.store.encode_cursor({**cursor, "af": page[-1][0]})
            body["@odata.nextLink"] = f"{link_base}?$skiptoken={quote(token)}"
        else:
            token = self.store.encode_cursor(
                {**cursor, "lo": cursor["hi"], "hi": None, "af": cursor["hi"], "i": False}
            )
            body["@odata.deltaLink"] = f"{link_base}?$deltatoken={quote(token)}"
        headers = _applied(call, [*applied, "odata.track-changes"])
        return Reply(json=body, headers=headers)

    # -- attachments -----------------------------------------------------------------------

    def _attachments(
        self, call: Call, mailbox: Mailbox, message_id: str, folder_ref: str | None
    ) -> Reply:
        _allow(call, {"$select", "$expand"})
        message = self._find_message(mailbox, message_id, folder_ref)
        select = _select(call, ATTACHMENT_SELECTABLE, "attachment")
        expand_item = _item_expand(call)
        body: dict[str, Any] = {
            "@odata.context": _context(
                call, mailbox, f"messages('{message_id}')/attachments", select
            ),
            "value": [
                self._attachment_json(call, attachment, select, expand_item)
                for attachment in message.attachments
            ],
        }
        return Reply(json=body, headers=_applied(call))

    def _find_attachment(
        self, mailbox: Mailbox, message_id: str, folder_ref: str | None, attachment_ref: str
    ) -> Attachment:
        message = self._find_message(mailbox, message_id, folder_ref)
        for attachment in message.attachments:
            if attachment.id == attachment_ref:
                return attachment
        raise _not_found()

    def _attachment(
        self,
        call: Call,
        mailbox: Mailbox,
        message_id: str,
        folder_ref: str | None,
        attachment_ref: str,
    ) -> Reply:
        _allow(call, {"$select", "$expand"})
        attachment = self._find_attachment(mailbox, message_id, folder_ref, attachment_ref)
        select = _select(call, ATTACHMENT_SELECTABLE, "attachment")
        body = {
            "@odata.context": _context(
                call, mailbox, f"messages('{message_id}')/attachments", select, entity=True
            ),
            **self._attachment_json(call, attachment, select, _item_expand(call)),
        }
        return Reply(json=body, headers=_applied(call))

    def _attachment_value(
        self,
        call: Call,
        mailbox: Mailbox,
        message_id: str,
        folder_ref: str | None,
        attachment_ref: str,
    ) -> Reply:
        _allow(call, set())
        attachment = self._find_attachment(mailbox, message_id, folder_ref, attachment_ref)
        if attachment.kind == "reference" or attachment.content is None:
            raise GraphFault(
                405,
                "ErrorInvalidRequest",
                "The raw value of a reference attachment cannot be read; follow its sourceUrl.",
            )
        content_type = "message/rfc822" if attachment.kind == "item" else attachment.content_type
        return Reply(
            content=attachment.content, content_type=content_type or "application/octet-stream"
        )

    def _attachment_json(
        self, call: Call, attachment: Attachment, select: list[str], expand_item: bool
    ) -> dict[str, Any]:
        kind_type = ATTACHMENT_TYPES[attachment.kind]
        full: dict[str, Any] = {
            "@odata.type": kind_type,
            "@odata.mediaContentType": attachment.content_type,
            "id": attachment.id,
            "lastModifiedDateTime": graph_time(attachment.last_modified),
            "name": attachment.name,
            "contentType": attachment.content_type,
            "size": attachment.size,
            "isInline": attachment.is_inline,
        }
        if attachment.kind == "file":
            full["contentId"] = attachment.content_id
            full["contentLocation"] = None
            full["contentBytes"] = _content_bytes(attachment, call.in_batch)
        elif attachment.kind == "reference":
            full.update(
                {
                    "sourceUrl": attachment.source_url,
                    "providerType": "oneDriveBusiness",
                    "thumbnailUrl": None,
                    "previewUrl": None,
                    "permission": "view",
                    "isFolder": False,
                }
            )
        else:
            del full["@odata.mediaContentType"]

        if select:
            document = {"@odata.type": kind_type, "id": attachment.id}
            document.update({name: full[name] for name in select if name in full})
        else:
            document = full
        if attachment.kind == "file" and "contentBytes" not in document:
            document.pop("@odata.mediaContentType", None)
        if expand_item and attachment.item is not None:
            item = self._message_json(call, attachment.item, [], None)
            item.pop("@odata.etag", None)
            item.pop("parentFolderId", None)
            document["item"] = {"@odata.type": "#microsoft.graph.message", **item}
        return document

    # -- batching --------------------------------------------------------------------------

    async def _batch(self, call: Call) -> Reply:
        if call.in_batch:
            raise _bad_request("A batch cannot contain another batch.")
        if call.method != "POST":
            raise GraphFault(405, "ErrorInvalidRequest", "Batch requests must be POSTed.")
        try:
            document = json.loads(call.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise _bad_request(f"Unable to read JSON request payload: {exc}") from exc
        requests = document.get("requests") if isinstance(document, dict) else None
        if not isinstance(requests, list) or not requests:
            raise _bad_request("The batch body must hold a non-empty 'requests' array.")
        if len(requests) > MAX_BATCH:
            raise _bad_request(
                f"The number of requests in a batch is limited to {MAX_BATCH}, got {len(requests)}."
            )
        items = _batch_items(requests)

        outcome: dict[str, int] = {}
        responses = []
        for item in _dependency_order(items):
            failed = [dep for dep in item["dependsOn"] if not 200 <= outcome[dep] < 300]
            if failed:
                status = 424
                responses.append(
                    {
                        "id": item["id"],
                        "status": status,
                        "headers": {"Content-Type": "application/json"},
                        "body": _error_body(
                            424, "FailedDependency", f"Depends on failed request {failed[0]}."
                        ),
                    }
                )
                outcome[item["id"]] = status
                continue
            response = await self._batch_item(call, item)
            outcome[item["id"]] = response["status"]
            responses.append(response)
        return Reply(json={"responses": responses})

    async def _batch_item(self, outer: Call, item: dict[str, Any]) -> dict[str, Any]:
        url = str(item["url"])
        path, _, query = url.partition("?")
        if path.startswith(("https://", "http://")):
            raise _bad_request("Batch request URLs must be relative to the service root.")
        # Graph decodes an item's path as it decodes a request line's, so an id sent as
        # `%3D` finds the same message in a batch as over plain HTTP.
        path = "/" + unquote(path).lstrip("/")
        if path.lower().startswith("/v1.0/"):
            path = path[5:]
        headers = {key.lower(): str(value) for key, value in (item.get("headers") or {}).items()}
        headers["authorization"] = outer.headers.get("authorization", "")
        body = item.get("body")
        call = Call(
            method=str(item["method"]).upper(),
            path=path,
            query=_query_dict(query),
            headers=headers,
            body=json.dumps(body).encode() if body is not None else b"",
            base=outer.base,
            prefer=parse_prefer([headers["prefer"]] if "prefer" in headers else []),
            in_batch=True,
        )
        reply = await self.handle(call)
        try:
            response: dict[str, Any] = {"id": item["id"], "status": reply.status}
            headers_out = {k: v for k, v in reply.headers.items() if k.lower() != "request-id"}
            if reply.content is not None:
                headers_out["Content-Type"] = reply.content_type or "application/octet-stream"
                # TODO: a raw value inside a batch is read whole to base64-encode it; a very
                # large attachment fetched through $batch would need a streamed batch reply.
                response["body"] = base64.b64encode(reply.content.read()).decode("ascii")
            elif reply.json is not None:
                headers_out["Content-Type"] = "application/json"
                response["body"] = reply.json
            response["headers"] = headers_out
            return response
        finally:
            reply.finish()


# -- helpers ------------------------------------------------------------------------------------


def _unknown_segment(segment: str) -> GraphFault:
    return GraphFault(404, "UnknownError", f"Resource not found for the segment '{segment}'.")


def _throttled(rejection: Rejection) -> GraphFault:
    return GraphFault.from_rejection(rejection)


def _error_body(status: int, code: str, message: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(bytes(graph_error(status, code, message).body))
    return document


def _fault_reply(fault: GraphFault) -> Reply:
    return Reply(
        status=fault.status,
        json=_error_body(fault.status, fault.code, fault.message),
        headers=dict(fault.headers),
    )


def _allow(call: Call, allowed: set[str]) -> None:
    for name in call.query:
        if name.startswith("$") and name not in allowed:
            raise _bad_request(f"Query option '{name}' is not allowed on this resource.")


def _select(call: Call, selectable: list[str], type_name: str) -> list[str]:
    return _select_text(call.option("$select"), selectable, type_name)


def _select_text(text: str | None, selectable: list[str], type_name: str) -> list[str]:
    if not text:
        return []
    try:
        return parse_select(text, selectable, type_name)
    except QueryError as error:
        raise _bad_request(error.message, error.code) from error


def _paging(call: Call) -> tuple[int, int]:
    top_text = call.option("$top")
    skip_text = call.option("$skip")
    try:
        top = int(top_text) if top_text is not None else DEFAULT_TOP
    except ValueError as exc:
        raise _bad_request(f"Invalid value '{top_text}' for $top query option.") from exc
    if not 1 <= top <= MAX_TOP:
        raise _bad_request(
            f"The value '{top}' for $top is out of range; it must be between 1 and {MAX_TOP}.",
            "ErrorInvalidUrlQuery" if top > MAX_TOP else "BadRequest",
        )
    try:
        skip = int(skip_text) if skip_text is not None else 0
    except ValueError as exc:
        raise _bad_request(f"Invalid value '{skip_text}' for $skip query option.") from exc
    if skip < 0:
        raise _bad_request("$skip must not be negative.")
    return top, skip


def _page_size(call: Call) -> tuple[int, list[str]]:
    wanted = call.prefer.get("odata.maxpagesize")
    if wanted is not None:
        try:
            size = int(wanted)
        except ValueError:
            size = 0
        if size >= 1:
            size = min(size, MAX_TOP)
            return size, [f"odata.maxpagesize={size}"]
    top = call.option("$top")
    if top is not None and top.isdigit() and 1 <= int(top) <= MAX_TOP:
        return int(top), []
    return DEFAULT_TOP, []


def _applied(call: Call, extra: list[str] | None = None) -> dict[str, str]:
    applied = list(extra or [])
    if call.immutable_ids:
        applied.append('IdType="ImmutableId"')
    if call.prefer.get("outlook.body-content-type", "").lower() == "text":
        applied.append('outlook.body-content-type="text"')
    return {"Preference-Applied": ", ".join(applied)} if applied else {}


def _context(
    call: Call, mailbox: Mailbox, segment: str, select: list[str], entity: bool = False
) -> str:
    who = quote(mailbox.address, safe="@")
    selected = f"({','.join(select)})" if select else ""
    return f"{call.base}/v1.0/$metadata#users('{who}')/{segment}{selected}" + (
        "/$entity" if entity else ""
    )


def _next_link(call: Call, skip: int) -> str:
    query = {**call.query, "$skip": str(skip)}
    return f"{call.base}/v1.0{call.path}?{urlencode(query, quote_via=quote)}"


def _message_expand(call: Call) -> dict[str, str] | None:
    text = call.option("$expand")
    if not text:
        return None
    try:
        expanded = parse_expand(text)
    except QueryError as error:
        raise _bad_request(error.message) from error
    result: dict[str, str] | None = None
    for name, options in expanded:
        if name.lower() != "attachments":
            raise _bad_request(
                f"Could not find a navigation property named '{name}' on type "
                "'microsoft.graph.message'.",
                "RequestBroker--ParseUri",
            )
        result = options
    return result


def _item_expand(call: Call) -> bool:
    text = call.option("$expand")
    if not text:
        return False
    names = [name.lower() for name, _ in parse_expand(text)]
    for name in names:
        if name != ITEM_EXPAND:
            raise _bad_request(
                f"Could not find a navigation property named '{name}' on type "
                "'microsoft.graph.attachment'.",
                "RequestBroker--ParseUri",
            )
    return True


def _getter(message: Message) -> Callable[[str], Any]:
    values: dict[str, Callable[[], Any]] = {
        "receivedDateTime": lambda: message.received,
        "sentDateTime": lambda: message.sent,
        "createdDateTime": lambda: message.created,
        "lastModifiedDateTime": lambda: message.last_modified,
        "hasAttachments": lambda: message.has_attachments,
        "isRead": lambda: message.is_read,
        "isDraft": lambda: False,
        "importance": lambda: message.importance,
        "subject": lambda: message.subject,
        "internetMessageId": lambda: message.internet_message_id,
        "conversationId": lambda: message.conversation_id,
        "parentFolderId": lambda: message.folder_id,
        "from/emailAddress/address": lambda: message.sender.address,
        "sender/emailAddress/address": lambda: message.sender.address,
    }
    return lambda name: values[name]()


def _folder_getter(mailbox: Mailbox, folder: Folder) -> Callable[[str], Any]:
    values: dict[str, Callable[[], Any]] = {
        "displayName": lambda: folder.display_name,
        "parentFolderId": lambda: folder.parent_id,
        "childFolderCount": lambda: len(mailbox.children(folder)),
        "totalItemCount": lambda: len(mailbox.in_folder(folder)),
        "unreadItemCount": lambda: sum(not m.is_read for m in mailbox.in_folder(folder)),
    }
    return lambda name: values[name]()


def _filtered(call: Call, messages: list[Message]) -> list[Message]:
    text = call.option("$filter")
    order_text = call.option("$orderby")
    if text is None:
        return messages
    condition = Filter(text, MESSAGE_FILTERS)
    if order_text:
        order = [name for name, _ in parse_orderby(order_text, MESSAGE_SORTABLE, "message")]
        if condition.properties[: len(order)] != order:
            raise _bad_request(
                "The restriction or sort order is too complex for this operation.",
                "InefficientFilter",
            )
    return [message for message in messages if condition.matches(_getter(message))]


def _ordered(call: Call, messages: list[Message]) -> list[Message]:
    text = call.option("$orderby")
    order = (
        parse_orderby(text, MESSAGE_SORTABLE, "message") if text else [("receivedDateTime", True)]
    )
    result = sorted(messages, key=lambda m: m.immutable_id)
    for name, descending in reversed(order):
        get = _sort_key(name)
        result.sort(key=get, reverse=descending)
    return result


def _sort_key(name: str) -> Callable[[Message], Any]:
    keys: dict[str, Callable[[Message], Any]] = {
        "receivedDateTime": lambda m: m.received,
        "sentDateTime": lambda m: m.sent,
        "createdDateTime": lambda m: m.created,
        "lastModifiedDateTime": lambda m: m.last_modified,
        "subject": lambda m: m.subject.lower(),
        "importance": lambda m: m.importance,
    }
    return keys[name]


def _content_bytes(attachment: Attachment, in_batch: bool) -> str | LazyBase64 | None:
    content = attachment.content
    if content is None:
        return None
    if in_batch or content.size <= INLINE_BASE64_LIMIT:
        return base64.b64encode(content.read()).decode("ascii")
    return LazyBase64(content)


def _message_size(message: Message) -> int:
    return len(message.body) + sum(attachment.size for attachment in message.attachments)


def _preview(message: Message) -> str:
    text = message.body
    if message.body_type == "html":
        text = re.sub(r"(?is)<(script|style|head).*?</\1>", " ", text)
        text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return re.sub(r"\s+", " ", text).strip()[:255]


def _message_values(message: Message, as_text: bool) -> dict[str, Callable[[], Any]]:
    def body() -> dict[str, str]:
        if as_text and message.body_type == "html":
            return {"contentType": "text", "content": _preview_full(message)}
        return {"contentType": message.body_type, "content": message.body}

    def headers() -> list[dict[str, str]]:
        if message.headers:
            return [{"name": name, "value": value} for name, value in message.headers]
        return [
            {"name": "From", "value": message.sender.header()},
            {"name": "Subject", "value": message.subject},
            {"name": "Message-ID", "value": message.internet_message_id},
        ]

    created = message.created or message.received
    modified = message.last_modified or created
    return {
        "createdDateTime": lambda: graph_time(created),
        "lastModifiedDateTime": lambda: graph_time(modified),
        "changeKey": lambda: message.change_key,
        "categories": lambda: list(message.categories),
        "receivedDateTime": lambda: graph_time(message.received),
        "sentDateTime": lambda: graph_time(message.sent),
        "hasAttachments": lambda: message.has_attachments,
        "internetMessageId": lambda: message.internet_message_id,
        "subject": lambda: message.subject,
        "bodyPreview": lambda: _preview(message),
        "importance": lambda: message.importance,
        "parentFolderId": lambda: message.folder_id or None,
        "conversationId": lambda: message.conversation_id or None,
        "conversationIndex": lambda: base64.b64encode(message.key[:22]).decode("ascii"),
        "isDeliveryReceiptRequested": lambda: False,
        "isReadReceiptRequested": lambda: False,
        "isRead": lambda: message.is_read,
        "isDraft": lambda: False,
        "webLink": lambda: (
            "https://outlook.office365.com/owa/?ItemID="
            f"{quote(message.immutable_id, safe='')}&exvsurl=1&viewmodel=ReadMessageItem"
        ),
        "inferenceClassification": lambda: "focused",
        "body": body,
        "uniqueBody": body,
        "sender": lambda: message.sender.to_graph(),
        "from": lambda: message.sender.to_graph(),
        "toRecipients": lambda: [address.to_graph() for address in message.to],
        "ccRecipients": lambda: [address.to_graph() for address in message.cc],
        "bccRecipients": lambda: [],
        "replyTo": lambda: [address.to_graph() for address in message.reply_to],
        "flag": lambda: {"flagStatus": "notFlagged"},
        "internetMessageHeaders": headers,
    }


def _preview_full(message: Message) -> str:
    text = re.sub(r"(?is)<(script|style|head).*?</\1>", " ", message.body)
    text = re.sub(r"(?i)<br\s*/?>|</p>", "\n", text)
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def _batch_items(requests: list[Any]) -> list[dict[str, Any]]:
    items = []
    seen: set[str] = set()
    for raw in requests:
        if not isinstance(raw, dict) or not {"id", "method", "url"} <= raw.keys():
            raise _bad_request("Each batch request needs 'id', 'method' and 'url'.")
        item_id = str(raw["id"])
        if item_id in seen:
            raise _bad_request(f"Batch request id '{item_id}' is used twice.")
        seen.add(item_id)
        depends = raw.get("dependsOn") or []
        if not isinstance(depends, list):
            raise _bad_request("'dependsOn' must be an array of request ids.")
        items.append({**raw, "id": item_id, "dependsOn": [str(dep) for dep in depends]})
    for item in items:
        for dep in item["dependsOn"]:
            if dep not in seen:
                raise _bad_request(f"Request '{item['id']}' depends on unknown request '{dep}'.")
    return items


def _dependency_order(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items in an order that puts each after what it depends on; a cycle is refused."""
    done: set[str] = set()
    ordered: list[dict[str, Any]] = []
    pending = list(items)
    while pending:
        ready = [item for item in pending if set(item["dependsOn"]) <= done]
        if not ready:
            raise _bad_request("The batch's dependsOn references form a cycle.")
        for item in ready:
            ordered.append(item)
            done.add(item["id"])
        pending = [item for item in pending if item["id"] not in done]
    return ordered


def _query_dict(query: str) -> dict[str, str]:
    """Query options by lower-cased name ($-options are case-insensitive in Graph)."""
    return {
        (name.lower() if name.startswith("$") else name): value
        for name, value in parse_qsl(query, keep_blank_values=True)
    }


# -- the ASGI face ------------------------------------------------------------------------------


class GraphEndpoint:
    """Every path under `/v1.0`: builds a `Call`, answers it, and streams the reply."""

    def __init__(self, service: GraphService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
        headers = {key.lower(): value for key, value in request.headers.items()}
        call = Call(
            method=request.method,
            path="/" + scope["path_params"].get("path", ""),
            query=_query_dict(scope.get("query_string", b"").decode("latin-1")),
            headers=headers,
            body=body,
            base=f"{request.url.scheme}://{request.url.netloc}",
            prefer=parse_prefer(request.headers.getlist("prefer")),
        )
        reply = await self.service.handle(call)
        scope.setdefault("state", {})["app_id"] = reply.app_id
        try:
            await reply.to_response()(scope, receive, _finishing(send, reply))
        finally:
            # A reply that broke off (a dropped connection, a client gone) frees its slot too.
            reply.finish()


def _finishing(send: Send, reply: Reply) -> Send:
    """`send` that frees the reply's concurrency slot as soon as the reply's last byte is
    handed to the connection.

    A client sends its next request once it has read the last byte; had the slot stayed taken
    until the response object returned (after the stream's own bookkeeping), a client that
    keeps exactly the allowed number of requests in flight would meet a 429 now and then.
    The last byte is known by `Content-Length`, since a streamed body ends with an empty
    message sent after the client already has everything.
    """
    expected: int | None = None
    sent = 0

    async def forward(message: AsgiMessage) -> None:
        nonlocal expected, sent
        if message["type"] == "http.response.start":
            expected = _content_length(message)
            await send(message)
            return

        sent += len(message.get("body", b""))
        await send(message)
        complete = expected is not None and sent >= expected
        if complete or not message.get("more_body", False):
            reply.finish()

    return forward


def _content_length(message: AsgiMessage) -> int | None:
    for name, value in message.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def build_app(state: EmulatorState) -> Starlette:
    """The Graph v1.0 application over `state.mail`, with the fault knobs applied."""
    if state.mail is None:
        state.mail = build_mail_store(state)
    faults = controller_for(state)
    quiet_deliberate_drops()
    service = GraphService(state, state.mail, faults)

    async def server_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, ConnectionDropped):
            log.exception("Graph emulator error on %s %s", request.method, request.url.path)
        return graph_error(500, "generalException", "The emulator failed on this request.")

    return Starlette(
        routes=[Route("/{path:path}", GraphEndpoint(service), methods=None)],
        middleware=[Middleware(FaultMiddleware, controller=faults)],
        exception_handlers={500: server_error},
    )
