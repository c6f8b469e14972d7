"""Messages made from RFC 822 files, the way Exchange turns arriving MIME into items.

Headers become message fields; MIME parts with a file name or an attachment disposition become
file attachments; `message/rfc822` parts become item attachments (recursively); parts with a
Content-ID that are not marked as attachments become inline attachments. Real mail is often
broken: whatever cannot be read is logged and kept as a problem note, and the file still becomes
a message, with whatever could be saved of it.
"""

import datetime
import logging
import mimetypes
import random
import re
from email import policy
from email.header import decode_header, make_header
from email.message import Message as MimeMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from pathlib import Path

from o365_assets.emulator.mailbox import (
    Address,
    Attachment,
    BytesContent,
    Folder,
    Mailbox,
    MailStore,
    Message,
    attachment_id,
    digest,
    received_times,
)
from o365_assets.emulator.state import MailboxSettings

log = logging.getLogger(__name__)

UTC = datetime.UTC
MAX_DEPTH = 8
PREVIEW_LIMIT = 64 * 1024


class _Reader:
    """Turns one parsed MIME message into a `Message`, noting what it had to work around."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        self.unnamed = 0

    def note(self, problem: str) -> None:
        self.problems.append(problem)

    def message(
        self,
        mime: MimeMessage,
        raw: bytes,
        key: bytes,
        received: datetime.datetime,
        depth: int,
    ) -> Message:
        for defect in mime.defects:
            self.note(f"{type(defect).__name__}: {defect}")
        sender = self._first_address(mime, "from") or Address("", "unknown@invalid")
        sent = self._date(mime) or received
        body, body_type = self._body(mime)
        attachments = self._attachments(mime, key, depth) if depth < MAX_DEPTH else []
        return Message(
            key=key,
            subject=self._header(mime, "subject"),
            sender=sender,
            to=self._addresses(mime, "to"),
            cc=self._addresses(mime, "cc"),
            received=received if depth == 0 else sent,
            sent=sent,
            body=body,
            body_type=body_type,
            internet_message_id=self._header(mime, "message-id").strip(),
            attachments=attachments,
            headers=[(name, _unfold(value)) for name, value in _raw_items(mime)],
            mime=raw,
            source=self.source,
            created=received if depth == 0 else sent,
            last_modified=received if depth == 0 else sent,
        )

    # -- headers ---------------------------------------------------------------------------

    def _header(self, mime: MimeMessage, name: str) -> str:
        try:
            value = mime.get(name)
            return "" if value is None else _decode_words(_unfold(str(value)))
        except Exception as exc:  # a header the parser chokes on must not lose the message
            self.note(f"unreadable {name} header: {exc}")
            return _clean(str(dict(_raw_items(mime)).get(name.title(), "")))

    def _addresses(self, mime: MimeMessage, name: str) -> list[Address]:
        raw = [value for key, value in _raw_items(mime) if key.lower() == name]
        try:
            pairs = getaddresses([_unfold(value) for value in raw])
        except Exception as exc:
            self.note(f"unreadable {name} header: {exc}")
            return []
        return [Address(_decode_words(n), _clean(a)) for n, a in pairs if a]

    def _first_address(self, mime: MimeMessage, name: str) -> Address | None:
        addresses = self._addresses(mime, name)
        if addresses:
            return addresses[0]
        raw = self._header(mime, name)
        display, address = parseaddr(raw)
        return Address(display, address) if address else None

    def _date(self, mime: MimeMessage) -> datetime.datetime | None:
        raw = dict((key.lower(), value) for key, value in _raw_items(mime)).get("date")
        if not raw:
            return None
        try:
            moment = parsedate_to_datetime(_unfold(raw))
        except (TypeError, ValueError, IndexError) as exc:
            self.note(f"unreadable Date header: {exc}")
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).replace(microsecond=0)

    # -- body and attachments --------------------------------------------------------------

    def _body(self, mime: MimeMessage) -> tuple[str, str]:
        html = plain = None
        for part in _leaves(mime):
            if _is_attachment(part):
                continue
            kind = part.get_content_type()
            if kind == "text/html" and html is None:
                html = self._text(part)
            elif kind == "text/plain" and plain is None:
                plain = self._text(part)
        if html is not None:
            return html, "html"
        return plain or "", "text"

    def _text(self, part: MimeMessage) -> str:
        payload = self._payload(part)
        charset = part.get_content_charset() or "utf-8"
        try:
            text = payload.decode(charset, errors="replace")
        except LookupError:
            self.note(f"unknown charset {charset!r}; read as UTF-8")
            text = payload.decode("utf-8", errors="replace")
        return text[:PREVIEW_LIMIT]

    def _payload(self, part: MimeMessage) -> bytes:
        try:
            data = part.get_payload(decode=True)
        except Exception as exc:
            self.note(f"undecodable part {part.get_content_type()}: {exc}")
            data = None
        if isinstance(data, bytes):
            return data
        raw = part.get_payload()
        if isinstance(raw, str):
            return raw.encode("utf-8", errors="surrogateescape")
        return b""

    def _attachments(self, mime: MimeMessage, key: bytes, depth: int) -> list[Attachment]:
        found: list[Attachment] = []
        self._collect(mime, key, depth, found, top=True)
        return found

    def _collect(
        self, part: MimeMessage, key: bytes, depth: int, found: list[Attachment], top: bool
    ) -> None:
        content_type = part.get_content_type()
        payload = part.get_payload()
        if content_type in ("message/rfc822", "message/global") and not top:
            found.append(self._item(part, key, depth, len(found)))
        elif part.get_content_maintype() == "message" and not top:
            data = b"".join(_as_bytes(sub) for sub in payload) if isinstance(payload, list) else b""
            found.append(self._file(part, key, len(found), data or self._payload(part)))
        elif part.is_multipart() and isinstance(payload, list):
            for sub in payload:
                self._collect(sub, key, depth, found, top=False)
        elif _is_attachment(part):
            found.append(self._file(part, key, len(found), self._payload(part)))

    def _name(self, part: MimeMessage) -> str | None:
        try:
            name = part.get_filename()
        except Exception as exc:
            self.note(f"unreadable file name: {exc}")
            name = None
        if not name:
            location = part.get("content-location")
            name = str(location).rsplit("/", 1)[-1] if location else None
        return _decode_words(name) if name else None

    def _file(self, part: MimeMessage, key: bytes, index: int, data: bytes) -> Attachment:
        content_type = part.get_content_type()
        name = self._name(part)
        if not name:
            self.unnamed += 1
            extension = mimetypes.guess_extension(content_type) or ".dat"
            name = f"ATT{self.unnamed:05d}{extension}"
        content_id = _content_id(part)
        return Attachment(
            id=attachment_id(key.hex(), index),
            kind="file",
            name=name,
            content_type=content_type,
            last_modified=datetime.datetime(2000, 1, 1, tzinfo=UTC),
            content=BytesContent(data),
            is_inline=content_id is not None and part.get_content_disposition() != "attachment",
            content_id=content_id,
        )

    def _item(self, part: MimeMessage, key: bytes, depth: int, index: int) -> Attachment:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        raw = _as_bytes(inner) if isinstance(inner, MimeMessage) else self._payload(part)
        inner_key = digest(key.hex(), "item", index)
        if isinstance(inner, MimeMessage):
            message = self.message(inner, raw, inner_key, _EPOCH, depth + 1)
        else:
            self.note("attached message without content")
            message = self.message(MimeMessage(), raw, inner_key, _EPOCH, depth + 1)
        return Attachment(
            id=attachment_id(key.hex(), index),
            kind="item",
            name=self._name(part) or message.subject or "Attached message",
            content_type="message/rfc822",
            last_modified=message.sent,
            content=BytesContent(raw),
            item=message,
        )


_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=UTC)


def _raw_items(mime: MimeMessage) -> list[tuple[str, str]]:
    return [(str(name), str(value)) for name, value in mime.raw_items()]


def _unfold(value: str) -> str:
    return re.sub(r"\r?\n[ \t]+", " ", value).strip()


def _clean(text: str) -> str:
    """Undo raw 8-bit bytes the parser kept as surrogates, and drop line breaks."""
    fixed = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    return re.sub(r"[\r\n]+", " ", fixed)


def _decode_words(text: str) -> str:
    """Decode RFC 2047 encoded words, which mailers also put where the RFCs forbid them (in
    file name parameters), as Exchange does."""
    cleaned = _clean(text)
    if "=?" not in cleaned:
        return cleaned
    try:
        return _clean(str(make_header(decode_header(cleaned))))
    except (LookupError, ValueError, UnicodeError):
        return cleaned


def _leaves(mime: MimeMessage) -> list[MimeMessage]:
    if mime.get_content_maintype() == "message" and mime.get_content_type() != "message/rfc822":
        return []
    if mime.is_multipart():
        payload = mime.get_payload()
        if mime.get_content_type() == "message/rfc822":
            return []
        leaves: list[MimeMessage] = []
        for sub in payload if isinstance(payload, list) else []:
            if sub.get_content_maintype() != "message":
                leaves.extend(_leaves(sub))
        return leaves
    return [mime]


def _is_attachment(part: MimeMessage) -> bool:
    if part.is_multipart():
        return False
    try:
        disposition = part.get_content_disposition()
        named = bool(part.get_param("filename", header="content-disposition")) or bool(
            part.get_param("name")
        )
    except Exception:
        return True
    if disposition == "attachment" or named:
        return True
    return part.get_content_type() not in ("text/plain", "text/html")


def _content_id(part: MimeMessage) -> str | None:
    value = part.get("content-id")
    if not value:
        return None
    return _clean(str(value)).strip().strip("<>").strip() or None


def _as_bytes(mime: MimeMessage) -> bytes:
    """A parsed message back to bytes, whatever its defects."""
    for serialise in (
        lambda: mime.as_bytes(policy=policy.compat32),
        lambda: mime.as_string(policy=policy.compat32).encode("utf-8", "surrogateescape"),
    ):
        try:
            return serialise()
        except Exception as exc:
            log.debug("could not serialise an attached message: %s", exc)
    return b""


def message_from_mime(
    raw: bytes,
    key: bytes,
    received: datetime.datetime,
    source: str,
    problems: list[str],
) -> Message:
    """A message made from RFC 822 bytes. Never raises: a message that cannot be read at all
    still becomes a message that says so, and `problems` lists what went wrong."""
    reader = _Reader(source, problems)
    try:
        mime = BytesParser(policy=policy.compat32).parsebytes(raw)
        return reader.message(mime, raw, key, received, depth=0)
    except Exception as exc:
        reader.note(f"unreadable message: {type(exc).__name__}: {exc}")
        return Message(
            key=key,
            subject=source,
            sender=Address("", "unknown@invalid"),
            to=[],
            received=received,
            sent=received,
            body="This message could not be read.",
            body_type="text",
            mime=raw,
            source=source,
        )


def seed_from_directory(
    store: MailStore,
    mailbox: Mailbox,
    folder: Folder,
    directory: Path,
    settings: MailboxSettings,
    now: datetime.datetime | None = None,
) -> list[Message]:
    """One message per `.eml` file in `directory` (sorted by name), received over the last
    `settings.days` days so that a pipeline's default window sees them."""
    now = (now or datetime.datetime.now(UTC)).replace(microsecond=0)
    files = sorted(path for path in directory.iterdir() if path.suffix.lower() == ".eml")
    times = received_times(len(files), settings.days, random.Random(f"{settings.seed}:eml"), now)

    made = []
    for path, received in zip(files, times, strict=True):
        problems: list[str] = []
        key = digest(settings.seed, mailbox.address.lower(), "eml", path.name)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            log.warning("cannot read %s: %s", path, exc)
            store.seed_problems.append({"source": path.name, "problem": str(exc)})
            continue
        message = message_from_mime(raw, key, received, f"eml:{path.name}", problems)
        for problem in problems:
            log.info("%s: %s", path.name, problem)
            store.seed_problems.append({"source": path.name, "problem": problem})
        made.append(store.add_message(mailbox, message, folder))
    log.info("seeded %d messages from %s", len(made), directory)
    return made
