"""The emulator's mail store: mailboxes, folders, messages, attachments, and the change log that
delta queries read.

Ids behave as Exchange's do. Every message has an immutable id that never changes; the id a
client sees without `Prefer: IdType="ImmutableId"` is a REST id derived from the folder and the
immutable id, so it changes when the message moves. Every change bumps a store-wide sequence
number: a delta cursor is a pair of such numbers, and removals leave tombstones behind.
"""

import base64
import datetime
import hashlib
import hmac
import json
import random
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any, Protocol

UTC = datetime.UTC

IMMUTABLE_MAGIC = b"\x00\x09\x00\x2e"
REST_MAGIC = b"\x00\x03\x24\x00"
ATTACHMENT_MAGIC = b"\x00\x01\x12\x00"
FOLDER_MAGIC = b"\x00\x2e\x00\x01"
KEY_BYTES = 24
CHUNK_BYTES = 256 * 1024

# (well-known name, display name); the first is the root the others hang from.
WELL_KNOWN_FOLDERS = (
    ("msgfolderroot", "Top of Information Store"),
    ("inbox", "Inbox"),
    ("archive", "Archive"),
    ("sentitems", "Sent Items"),
    ("deleteditems", "Deleted Items"),
    ("drafts", "Drafts"),
    ("junkemail", "Junk Email"),
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return None


def digest(*parts: object, size: int = KEY_BYTES) -> bytes:
    """A deterministic key from any parts: the same seed yields the same ids on every start."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode("utf-8")).digest()[:size]


def immutable_id(key: bytes) -> str:
    return _b64(IMMUTABLE_MAGIC + key)


def rest_id(folder_id: str, key: bytes) -> str:
    return _b64(REST_MAGIC + digest(folder_id, size=8) + key)


def parse_message_id(text: str) -> tuple[bytes, bytes | None] | None:
    """The message key and, for a REST id, the digest of the folder it was minted in."""
    raw = _unb64(text)
    if raw is None:
        return None
    if raw.startswith(IMMUTABLE_MAGIC) and len(raw) == 4 + KEY_BYTES:
        return raw[4:], None
    if raw.startswith(REST_MAGIC) and len(raw) == 4 + 8 + KEY_BYTES:
        return raw[12:], raw[4:12]
    return None


def attachment_id(*parts: object) -> str:
    return _b64(ATTACHMENT_MAGIC + digest("attachment", *parts, size=30))


def folder_id(mailbox: str, name: str) -> str:
    return _b64(FOLDER_MAGIC + digest("folder", mailbox.lower(), name.lower(), size=30))


def received_times(
    count: int, days: int, rng: random.Random, now: datetime.datetime
) -> list[datetime.datetime]:
    """`count` times spread over the last `days` days up to `now`; the day of each is fixed by
    the seed, so partitions by received date hold the same messages on every start."""
    today = datetime.datetime.combine(now.date(), datetime.time(), tzinfo=UTC)
    elapsed_today = max(1, int((now - today).total_seconds()))
    times = []
    for _ in range(count):
        day = rng.randrange(days)
        fraction = rng.random()
        seconds = int(fraction * (elapsed_today if day == 0 else 86_400 - 1))
        times.append(today - datetime.timedelta(days=day) + datetime.timedelta(seconds=seconds))
    return times


def graph_time(moment: datetime.datetime) -> str:
    """Graph's timestamp form for mail: UTC, whole seconds, a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Content(Protocol):
    """Bytes of an attachment that can be streamed in chunks and know their size and sha256."""

    @property
    def size(self) -> int: ...

    @property
    def sha256(self) -> str: ...

    def chunks(self, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]: ...

    def read(self) -> bytes: ...


class BytesContent:
    """Content small enough to hold in memory."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()

    @property
    def size(self) -> int:
        return len(self.data)

    def chunks(self, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
        for start in range(0, len(self.data), chunk_size):
            yield self.data[start : start + chunk_size]

    def read(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Address:
    name: str
    address: str

    def to_graph(self) -> dict[str, Any]:
        return {"emailAddress": {"name": self.name, "address": self.address}}

    def header(self) -> str:
        from email.headerregistry import Address as HeaderAddress

        try:
            return str(HeaderAddress(display_name=self.name, addr_spec=self.address))
        except (ValueError, IndexError):
            return self.address


@dataclass
class Attachment:
    """One attachment: a file, an attached message (item), or a link (reference)."""

    id: str
    kind: str  # "file", "item" or "reference"
    name: str
    content_type: str | None
    last_modified: datetime.datetime
    content: Content | None = None  # the file's bytes, or an item's MIME
    is_inline: bool = False
    content_id: str | None = None
    item: "Message | None" = None
    source_url: str | None = None
    reference_size: int = 0
    # What the file really is ("xlsx", "exe", ...), when whoever made it knows.
    expected_type: str | None = None

    @property
    def size(self) -> int:
        return self.content.size if self.content is not None else self.reference_size

    @property
    def sha256(self) -> str | None:
        return self.content.sha256 if self.content is not None else None


@dataclass
class Message:
    key: bytes
    subject: str
    sender: Address
    to: list[Address]
    received: datetime.datetime
    sent: datetime.datetime
    body: str
    body_type: str = "html"
    cc: list[Address] = field(default_factory=list)
    reply_to: list[Address] = field(default_factory=list)
    importance: str = "normal"
    is_read: bool = False
    internet_message_id: str = ""
    conversation_id: str = ""
    categories: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    # The message as it arrived, for messages seeded from MIME; else MIME is built on demand.
    mime: bytes | None = None
    source: str = "generated"
    folder_id: str = ""
    created: datetime.datetime | None = None
    last_modified: datetime.datetime | None = None
    version: int = 0
    change_seq: int = 0

    @property
    def immutable_id(self) -> str:
        return immutable_id(self.key)

    @property
    def change_key(self) -> str:
        return base64.b64encode(b"\x16\x00\x00\x00" + digest(self.key, self.version, size=16))[
            :28
        ].decode()

    @property
    def has_attachments(self) -> bool:
        # As in Exchange: inline attachments alone do not count.
        return any(not attachment.is_inline for attachment in self.attachments)


@dataclass
class Folder:
    id: str
    display_name: str
    parent_id: str | None
    well_known: str | None = None


@dataclass
class Tombstone:
    seq: int
    folder_id: str
    key: bytes


@dataclass
class Mailbox:
    address: str
    object_id: str
    display_name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    messages: dict[bytes, Message] = field(default_factory=dict)

    def folder(self, ref: str) -> Folder | None:
        """A folder by id or by well-known name (case-insensitive), as Graph resolves them."""
        if ref in self.folders:
            return self.folders[ref]
        lowered = ref.lower()
        for folder in self.folders.values():
            if folder.well_known == lowered:
                return folder
        return None

    def root(self) -> Folder:
        folder = self.folder("msgfolderroot")
        assert folder is not None
        return folder

    def add_folder(
        self, display_name: str, parent: Folder | None, well_known: str | None = None
    ) -> Folder:
        folder = Folder(
            id=folder_id(
                self.address, well_known or f"{parent.id if parent else ''}/{display_name}"
            ),
            display_name=display_name,
            parent_id=parent.id if parent else None,
            well_known=well_known,
        )
        self.folders[folder.id] = folder
        return folder

    def children(self, folder: Folder) -> list[Folder]:
        return [child for child in self.folders.values() if child.parent_id == folder.id]

    def in_folder(self, folder: Folder) -> list[Message]:
        return [message for message in self.messages.values() if message.folder_id == folder.id]

    def folder_label(self, folder_id: str) -> str:
        folder = self.folders.get(folder_id)
        if folder is None:
            return ""
        return folder.well_known or folder.display_name


class DeltaTokenError(Exception):
    """A delta or skip token that is unknown, forged, or older than the last reset."""


class MailStore:
    """All mailboxes of the emulator, with the change log that delta queries read.

    Callers hold `lock` while they read or change the store from more than one thread.
    """

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.mailboxes: dict[str, Mailbox] = {}
        self.seq = 0
        self.tombstones: list[Tombstone] = []
        self.epoch = 0
        self.resync_code = "SyncStateNotFound"
        self.seed_problems: list[dict[str, str]] = []
        self._token_key = secrets.token_bytes(32)
        self._added = 0

    # -- mailboxes and lookups -----------------------------------------------------------

    def add_mailbox(self, address: str, display_name: str, object_id: str) -> Mailbox:
        mailbox = Mailbox(address=address, object_id=object_id, display_name=display_name)
        root = mailbox.add_folder(WELL_KNOWN_FOLDERS[0][1], None, WELL_KNOWN_FOLDERS[0][0])
        for name, display in WELL_KNOWN_FOLDERS[1:]:
            mailbox.add_folder(display, root, name)
        self.mailboxes[address.lower()] = mailbox
        return mailbox

    def mailbox(self, ref: str) -> Mailbox | None:
        """A mailbox by address (case-insensitive) or object id."""
        found = self.mailboxes.get(ref.lower())
        if found is not None:
            return found
        for mailbox in self.mailboxes.values():
            if mailbox.object_id.lower() == ref.lower():
                return mailbox
        return None

    def find(self, mailbox: Mailbox, message_id: str) -> Message | None:
        """A message by immutable id, or by REST id as long as it still names its folder."""
        parsed = parse_message_id(message_id)
        if parsed is None:
            return None
        key, folder_digest = parsed
        message = mailbox.messages.get(key)
        if message is None:
            return None
        if folder_digest is not None and folder_digest != digest(message.folder_id, size=8):
            return None
        return message

    def find_anywhere(self, message_id: str) -> tuple[Mailbox, Message] | None:
        for mailbox in self.mailboxes.values():
            message = self.find(mailbox, message_id)
            if message is not None:
                return mailbox, message
        return None

    # -- changes -------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def next_admin_key(self, mailbox: Mailbox, seed: int) -> bytes:
        self._added += 1
        return digest(seed, mailbox.address.lower(), "added", self._added)

    def add_message(self, mailbox: Mailbox, message: Message, folder: Folder) -> Message:
        with self.lock:
            now = datetime.datetime.now(UTC).replace(microsecond=0)
            message.folder_id = folder.id
            message.created = message.created or min(message.received, now)
            message.last_modified = message.last_modified or message.created
            message.change_seq = self._next_seq()
            mailbox.messages[message.key] = message
            return message

    def remove_message(self, mailbox: Mailbox, message: Message) -> None:
        with self.lock:
            mailbox.messages.pop(message.key, None)
            self.tombstones.append(Tombstone(self._next_seq(), message.folder_id, message.key))

    def move_message(self, mailbox: Mailbox, message: Message, folder: Folder) -> None:
        with self.lock:
            if folder.id == message.folder_id:
                return
            self.tombstones.append(Tombstone(self._next_seq(), message.folder_id, message.key))
            message.folder_id = folder.id
            self._touch(message)

    def update_message(self, message: Message, changes: dict[str, Any]) -> None:
        with self.lock:
            for name, value in changes.items():
                setattr(message, name, value)
            self._touch(message)

    def _touch(self, message: Message) -> None:
        message.version += 1
        message.last_modified = datetime.datetime.now(UTC).replace(microsecond=0)
        message.change_seq = self._next_seq()

    def reset_delta(self, code: str = "SyncStateNotFound") -> None:
        """Make every delta and skip token issued so far stale."""
        with self.lock:
            self.epoch += 1
            self.resync_code = code

    # -- delta cursors -------------------------------------------------------------------

    def encode_cursor(self, cursor: dict[str, Any]) -> str:
        payload = json.dumps({**cursor, "ep": self.epoch}, separators=(",", ":")).encode()
        mac = hmac.new(self._token_key, payload, hashlib.sha256).digest()[:16]
        return _b64(payload).rstrip("=") + "." + _b64(mac).rstrip("=")

    def decode_cursor(self, token: str) -> dict[str, Any]:
        payload_text, _, mac_text = token.partition(".")
        payload = _unb64(payload_text + "=" * (-len(payload_text) % 4))
        mac = _unb64(mac_text + "=" * (-len(mac_text) % 4))
        if payload is None or mac is None:
            raise DeltaTokenError("The sync state is not recognised.")
        expected = hmac.new(self._token_key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            raise DeltaTokenError("The sync state is not recognised.")
        cursor: dict[str, Any] = json.loads(payload)
        if cursor.get("ep") != self.epoch:
            raise DeltaTokenError("The sync state is older than the mailbox's current state.")
        return cursor

    def changes(
        self, mailbox: Mailbox, folder: Folder, low: int, high: int, initial: bool
    ) -> list[tuple[int, Message | None, bytes]]:
        """What changed in a folder with sequence numbers in (low, high], in order.

        Each entry is (seq, message, key); the message is None for one that was removed from
        the folder (deleted or moved out). An initial sync reports present messages only.
        """
        present = {
            message.key: message
            for message in mailbox.in_folder(folder)
            if low < message.change_seq <= high
        }
        entries: list[tuple[int, Message | None, bytes]] = [
            (message.change_seq, message, message.key) for message in present.values()
        ]
        if not initial:
            in_folder_now = {message.key for message in mailbox.in_folder(folder)}
            seen_removed: set[bytes] = set()
            for tombstone in reversed(self.tombstones):
                if tombstone.seq <= low:
                    break
                if (
                    tombstone.seq <= high
                    and tombstone.folder_id == folder.id
                    and tombstone.key not in in_folder_now
                    and tombstone.key not in seen_removed
                ):
                    seen_removed.add(tombstone.key)
                    entries.append((tombstone.seq, None, tombstone.key))
        entries.sort(key=lambda entry: entry[0])
        return entries

    # -- what the tests compare against ------------------------------------------------------

    def records(self) -> list[dict[str, Any]]:
        """One dict per attachment in every mailbox (nested ones too), for checking a pipeline."""
        with self.lock:
            rows: list[dict[str, Any]] = []
            for mailbox in self.mailboxes.values():
                messages = sorted(
                    mailbox.messages.values(), key=lambda m: (m.received, m.immutable_id)
                )
                for message in messages:
                    for attachment in message.attachments:
                        rows.extend(_attachment_records(mailbox, message, attachment, 0, None))
            return rows


def _attachment_records(
    mailbox: Mailbox,
    message: Message,
    attachment: Attachment,
    depth: int,
    parent_id: str | None,
) -> Iterator[dict[str, Any]]:
    yield {
        "mailbox": mailbox.address,
        "message_id": message.immutable_id,
        "internet_message_id": message.internet_message_id,
        "folder": mailbox.folder_label(message.folder_id),
        "subject": message.subject,
        "received_at": graph_time(message.received),
        "received_date": message.received.astimezone(UTC).date().isoformat(),
        "attachment_id": attachment.id,
        "name": attachment.name,
        "kind": attachment.kind,
        "content_type": attachment.content_type,
        "size": attachment.size,
        "sha256": attachment.sha256,
        "is_inline": attachment.is_inline,
        "content_id": attachment.content_id,
        "expected_type": attachment.expected_type,
        "depth": depth,
        "parent_attachment_id": parent_id,
        "source": message.source,
    }
    if attachment.item is not None:
        for inner in attachment.item.attachments:
            yield from _attachment_records(mailbox, message, inner, depth + 1, attachment.id)


# -- MIME ------------------------------------------------------------------------------------


def message_mime(message: Message) -> bytes:
    """The message as RFC 822 bytes with its attachments, as Graph's `$value` returns it.

    Messages seeded from MIME return what arrived; others are built with fixed boundaries so
    that the same message always gives the same bytes.
    """
    if message.mime is not None:
        return message.mime
    return _build_mime(message).as_bytes(policy=policy.SMTP)


def _build_mime(message: Message) -> EmailMessage:
    mime = EmailMessage(policy=policy.SMTP)
    mime["From"] = message.sender.header()
    if message.to:
        mime["To"] = ", ".join(address.header() for address in message.to)
    if message.cc:
        mime["Cc"] = ", ".join(address.header() for address in message.cc)
    mime["Subject"] = message.subject
    mime["Date"] = message.sent.strftime("%a, %d %b %Y %H:%M:%S +0000")
    if message.internet_message_id:
        mime["Message-ID"] = message.internet_message_id
    subtype = "html" if message.body_type == "html" else "plain"
    mime.set_content(message.body, subtype=subtype, cte="quoted-printable")

    for attachment in message.attachments:
        if attachment.kind == "item" and attachment.item is not None:
            inner = _build_mime(attachment.item)
            mime.add_attachment(inner, disposition="attachment", filename=attachment.name)
        elif attachment.kind == "file" and attachment.content is not None:
            maintype, _, subtype = (
                attachment.content_type or "application/octet-stream"
            ).partition("/")
            mime.add_attachment(
                attachment.content.read(),
                maintype=maintype or "application",
                subtype=subtype or "octet-stream",
                filename=attachment.name,
                disposition="inline" if attachment.is_inline else "attachment",
                cid=f"<{attachment.content_id}>" if attachment.content_id else None,
            )

    for index, part in enumerate(mime.walk()):
        if part.get_content_maintype() == "multipart":
            part.set_boundary(f"----=_Part_{message.key.hex()[:16]}_{index}")
    return mime
