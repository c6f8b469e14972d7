"""Attached e-mail messages (eml), staged as one document row with their headers.

The message is parsed with the standard library under the modern policy. The text body is the
plain-text part when there is one, else the HTML part reduced to text. Malformed headers and
unknown charsets are common in real mail, so each header and the body fall back to a lenient
reading instead of failing the file. The message's own attachments are not staged (only
counted in the notes).
"""

import datetime
import email
import logging
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.utils import parsedate_to_datetime

import charset_normalizer

from o365_assets.parsing.documents import DocumentInfo, DocumentPart, load_document
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable
from o365_assets.parsing.text import html_to_text

logger = logging.getLogger(__name__)

PARSER = "email"

# Headers that any message or MIME entity has at least one of; a file with none is not one.
_MESSAGE_HEADERS = (
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "received",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
)


def load_eml(request: ParseRequest) -> ScratchTable:
    """Stage an e-mail message's headers and text body."""
    with request.path.open("rb") as handle:
        message = email.message_from_binary_file(handle, policy=policy.default)
    if not any(_header(message, name) for name in _MESSAGE_HEADERS):
        raise QuarantineError("not an e-mail message: none of its lines are message headers")

    sender = _header(message, "from")
    subject = _header(message, "subject")
    info = DocumentInfo(
        title=subject,
        author=sender,
        email_from=sender,
        email_to=_header(message, "to"),
        email_cc=_header(message, "cc"),
        email_subject=subject,
        email_date=_date(_header(message, "date")),
        email_message_id=_header(message, "message-id"),
    )
    # TODO: files attached to the attached message are counted, not staged; they would need
    # their own type detection and selection first.
    text = _body_text(message)
    scratch = load_document(request, [DocumentPart("body", text)], info)
    scratch.notes.update(
        attachments=sum(1 for _ in _attachments(message)),
        defects=len(getattr(message, "defects", [])),
    )
    return scratch


def _header(message: Message, name: str) -> str | None:
    """A header as text; a header the modern policy cannot parse is decoded leniently."""
    try:
        value = message.get(name)
        return None if value is None else " ".join(str(value).split()) or None
    except Exception:  # the header parser raises assorted errors on hostile input
        raw = next((value for key, value in message.raw_items() if key.lower() == name), None)
        if raw is None:
            return None
        try:
            return " ".join(str(make_header(decode_header(raw))).split()) or None
        except Exception:
            return " ".join(str(raw).split()) or None


def _date(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def _body_text(message: Message) -> str:
    body: Message | None = None
    if isinstance(message, EmailMessage):
        try:
            body = message.get_body(preferencelist=("plain", "html"))
        except Exception:  # a broken MIME tree
            logger.warning("message body could not be located; using the first text part")
    if body is None:
        body = next(
            (part for part in message.walk() if part.get_content_maintype() == "text"), None
        )
    if body is None:
        return ""

    text = _part_text(body)
    if body.get_content_subtype() == "html":
        return html_to_text(text)[1]
    return text.replace("\r\n", "\n").strip()


def _part_text(part: Message) -> str:
    declared: str | None = None
    try:
        content = part.get_content() if isinstance(part, EmailMessage) else None
        if isinstance(content, str):
            declared = content
    except Exception:  # unknown charset, broken transfer encoding
        logger.debug("falling back to lenient decoding of a message part")
    if declared is not None and "\ufffd" not in declared:
        return declared

    # The declared charset is missing, unknown or wrong (replacement characters): detect it.
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return declared or ("" if payload is None else str(payload))
    best = charset_normalizer.from_bytes(payload).best()
    if best is not None:
        return str(best)
    return declared or payload.decode("utf-8", errors="replace")


def _attachments(message: Message) -> list[Message]:
    if isinstance(message, EmailMessage):
        try:
            return list(message.iter_attachments())
        except Exception:
            return []
    return []
