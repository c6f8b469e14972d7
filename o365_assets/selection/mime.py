"""The attachments inside a MIME message (an attached .eml, or an item attachment's MIME).

`read_mime` never raises: broken boundaries, bad base64, unknown transfer encodings, raw 8-bit
or encoded names all yield what could be read, and what could not is said in `problems`.
Attached messages are returned as attachments of their own (content type message/rfc822); the
caller judges them and reads them again with `read_mime` to reach their attachments, which
keeps the depth under the caller's control.
"""

import base64
import binascii
import email
import email.errors
import email.header
import email.message
import html
import io
import logging
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from email import policy
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from typing import TypeVar, cast
from urllib.parse import unquote

import charset_normalizer

from o365_assets.selection.rules import Kind

logger = logging.getLogger(__name__)

# Multiparts nested deeper than this are not walked: no real mail needs it, hostile mail uses
# it to exhaust the stack.
MAX_MULTIPART_NESTING = 40

_KNOWN_ENCODINGS = frozenset(
    {"7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode", "x-uue"}
)
_BODY_TYPES = frozenset({"text/plain", "text/html", "text/enriched", "text/richtext"})
_MIME_TYPE = re.compile(r"[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+")
_CID_REFERENCE = re.compile(r"""cid:\s*([^\s"'<>()\]\\]+)""", re.IGNORECASE)

# Writes an attached message back with its headers as they came, never refolded.
_AS_RECEIVED = policy.default.clone(refold_source="none")

T = TypeVar("T")


@dataclass(frozen=True)
class Part:
    """One attachment found inside a container.

    `name` is decoded (RFC 2231, RFC 2047, raw 8-bit) but still hostile: make it safe before it
    reaches a path. `kind` is "mime_part", "tnef_part" or "reference" (message/external-body,
    a link without content). `problem` says why `data` is not the real content, when it is not.
    """

    name: str | None
    content_type: str
    data: bytes
    is_inline: bool = False
    content_id: str | None = None
    kind: Kind = "mime_part"
    problem: str | None = None


@dataclass(frozen=True)
class MimeMessage:
    """What `read_mime` could read of a message."""

    subject: str | None
    sender: str | None
    html_body: str | None
    attachments: tuple[Part, ...]
    problems: tuple[str, ...]
    referenced_ids: frozenset[str] = frozenset()

    def is_cid_referenced(self, part: Part) -> bool:
        """True when the message's HTML body shows this part through a `cid:` reference."""
        if not part.content_id:
            return False
        return normalise_content_id(part.content_id) in self.referenced_ids


def cid_references(html_body: str | None) -> frozenset[str]:
    """The content ids an HTML body refers to with `cid:` (in src, href, CSS url()...),
    normalised with `normalise_content_id` for comparison with attachments' content ids."""
    if not html_body:
        return frozenset()

    found = set()
    for raw in _CID_REFERENCE.findall(html_body):
        normalised = normalise_content_id(unquote(html.unescape(raw)))
        if normalised:
            found.add(normalised)
    return frozenset(found)


def normalise_content_id(content_id: str) -> str:
    """A content id without angle brackets or spaces, in lower case: mail clients disagree on
    case and brackets, so comparisons ignore both."""
    return content_id.strip().strip("<>").strip().lower()


def read_mime(data: bytes) -> MimeMessage:
    """Read a MIME message and list its attachments, never raising on broken input."""
    problems: list[str] = []
    try:
        message = email.message_from_bytes(data, policy=policy.default)
    except Exception as error:
        # The parser is lenient; this guards against its rare internal failures.
        return MimeMessage(None, None, None, (), (f"not readable as MIME: {error}",))

    walker = _Walker(problems)
    try:
        walker.walk(message, parent_type=None, depth=0)
    except RecursionError:
        problems.append("structure too deeply nested, the rest was not read")

    subject = _guard(lambda: _text(message.get("subject")), problems, "subject header")
    sender = _guard(lambda: _sender(message), problems, "from header")
    html_body = "\n".join(walker.html) if walker.html else None
    return MimeMessage(
        subject,
        sender,
        html_body,
        tuple(walker.parts),
        tuple(problems),
        cid_references(html_body),
    )


class _Walker:
    """Walks the tree of parts, sorting body text from attachments."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        self.parts: list[Part] = []
        self.html: list[str] = []

    def walk(self, part: Message, parent_type: str | None, depth: int) -> None:
        if depth > MAX_MULTIPART_NESTING:
            self.problems.append(f"multiparts nested deeper than {MAX_MULTIPART_NESTING} levels")
            return

        content_type = _content_type(part)
        for defect in getattr(part, "defects", []):
            self.problems.append(f"{content_type}: {type(defect).__name__}")

        if content_type.startswith("message/"):
            self._message_part(part, content_type)
        elif part.is_multipart():
            for child in _children(part):
                self.walk(child, content_type, depth + 1)
        elif content_type.startswith("multipart/"):
            self.problems.append(f"{content_type} without usable boundary, read as body text")
        else:
            self._leaf(part, content_type, parent_type)

    def _message_part(self, part: Message, content_type: str) -> None:
        name = _guard(lambda: _filename(part), self.problems, "attachment name")
        if content_type == "message/external-body":
            reason = "external body (a link), not fetched"
            self.parts.append(Part(name, content_type, b"", kind="reference", problem=reason))
        elif content_type == "message/partial":
            # TODO: fragments are not reassembled across messages; a message sent in parts is
            # recorded as unreadable fragments.
            reason = "message fragment (message/partial), not reassembled"
            self.parts.append(Part(name, content_type, b"", problem=reason))
        elif content_type in {"message/rfc822", "message/global"}:
            payload = _guard(lambda: _message_bytes(part), self.problems, "attached message")
            self.parts.append(Part(name, "message/rfc822", payload or b""))
        else:
            # Delivery and feedback reports: small text parts, judged like any other.
            data = _guard(lambda: _message_bytes(part), self.problems, content_type) or b""
            self.parts.append(Part(name, content_type, data))

    def _leaf(self, part: Message, content_type: str, parent_type: str | None) -> None:
        name = _guard(lambda: _filename(part), self.problems, "attachment name")
        disposition = _guard(lambda: part.get_content_disposition(), self.problems, "disposition")
        content_id = _guard(lambda: _text(part.get("content-id")), self.problems, "content-id")
        is_body = (
            not name
            and disposition != "attachment"
            and (content_type in _BODY_TYPES or parent_type == "multipart/alternative")
        )

        # TODO: files uuencoded ("begin 644 ...") or yEnc-encoded inside a plain-text body are
        # not extracted, so such attachments of old mailers are never judged or kept.
        data = _guard(lambda: _payload(part), self.problems, name or content_type)
        encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
        if encoding and encoding not in _KNOWN_ENCODINGS:
            self.problems.append(f"{name or content_type}: unknown transfer encoding, kept as is")
        if is_body:
            if content_type == "text/html" and data is not None:
                self.html.append(_decode_body(part, data))
            return

        # Part of the rendered HTML, or placed inline by reference. An inline image straight
        # in multipart/mixed (how phones send photos) is an attachment the sender chose.
        is_inline = parent_type == "multipart/related" or (
            disposition == "inline" and bool(content_id)
        )
        problem = None if data is not None else "content could not be decoded"
        self.parts.append(
            Part(name, content_type, data or b"", is_inline, content_id or None, problem=problem)
        )


def _guard(read: Callable[[], T], problems: list[str], what: str) -> T | None:
    """Run one read; on failure note the problem and go on with None."""
    try:
        return read()
    except Exception as error:
        # Broken mail makes the email package raise almost anything; one bad header or part
        # must not lose the others.
        problems.append(f"{what}: {type(error).__name__}: {error}")
        return None


def _content_type(part: Message) -> str:
    try:
        raw = part.get_content_type()
    except Exception:
        raw = str(part.get("content-type", "")) if part.get("content-type") else "text/plain"
    match = _MIME_TYPE.match(raw.strip().lower())
    return match.group(0) if match else "application/octet-stream"


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [child for child in payload if isinstance(child, Message)]
    return []


def _payload(part: Message) -> bytes | None:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else None


def _message_bytes(part: Message) -> bytes:
    """The attached message as bytes, undoing a transfer encoding that should not be there."""
    children = _children(part)
    if not children:
        return _payload(part) or b""

    # A delivery or feedback report holds several header blocks; a message holds one.
    data = b"\n".join(_serialise(child) for child in children)

    encoding = str(part.get("content-transfer-encoding", "")).strip().lower()
    if encoding == "base64":
        try:
            return base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return data
    if encoding == "quoted-printable":
        return binascii.a2b_qp(data)
    return data


def _serialise(message: Message) -> bytes:
    buffer = io.BytesIO()
    generator = BytesGenerator(buffer, mangle_from_=False, policy=_AS_RECEIVED)
    # Parsed with policy.default, every part is an EmailMessage.
    generator.flatten(cast(EmailMessage, message))
    data = buffer.getvalue()
    if not message.keys():
        # Without headers the generator still writes the blank separator line.
        data = data.removeprefix(b"\r\n").removeprefix(b"\n")
    return data


def _filename(part: Message) -> str | None:
    """The attachment's name, from the parameters, encoded words or Content-Location."""
    modern = part.get_filename()
    legacy = _legacy_filename(part)
    name = modern
    # The strict parser stops unquoted names at the first space and drops encoded words in
    # unquoted parameters; the lenient one keeps them.
    if legacy and (not modern or (len(legacy) > len(modern) and legacy.startswith(modern))):
        name = legacy

    if not name:
        location = part.get("content-location")
        if location:
            name = posixpath.basename(unquote(str(location).strip()).split("?")[0])

    if not name:
        return None
    name = _decode_words(_repair_raw_bytes(name))
    return name.strip() or None


def _legacy_filename(part: Message) -> str | None:
    legacy = email.message.Message()
    for key, value in part.raw_items():
        if key.lower() in {"content-type", "content-disposition"}:
            legacy[key] = value
    name = legacy.get_filename()
    return name if isinstance(name, str) else None


def _repair_raw_bytes(name: str) -> str:
    """Decode raw 8-bit bytes that the parser kept as surrogates."""
    if not any("\udc80" <= char <= "\udcff" for char in name):
        return name

    raw = name.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start >= len(raw) - 3:
            # Some mailers cut long names inside a multi-byte character.
            return raw[: error.start].decode("utf-8", errors="replace")

    guess = charset_normalizer.from_bytes(raw).best()
    return str(guess) if guess is not None else raw.decode("cp1252", errors="replace")


def _decode_words(name: str) -> str:
    if "=?" not in name:
        return name
    try:
        return str(email.header.make_header(email.header.decode_header(name)))
    except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
        return name


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _sender(message: Message) -> str | None:
    header = message.get("from")
    if header is None:
        return None

    addresses = getattr(header, "addresses", ())
    if addresses:
        return str(addresses[0].addr_spec) or None
    return str(header) or None


def _decode_body(part: Message, data: bytes) -> str:
    charset = "utf-8"
    try:
        charset = part.get_content_charset() or "utf-8"
        return data.decode(charset, errors="replace")
    except LookupError:
        logger.debug("unknown charset %s, body read as UTF-8", charset)
        return data.decode("utf-8", errors="replace")
