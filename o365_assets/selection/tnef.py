"""The attachments inside a TNEF container (winmail.dat), decoded with `tnefparse`.

Outlook wraps a message's attachments in TNEF when it sends rich text; without unpacking it the
attachments are lost. Like `read_mime`, `read_tnef` never raises: what cannot be decoded is said
in `problems`, and the caller records the container with that reason.
"""

import logging
import struct
from dataclasses import dataclass
from typing import Any

from tnefparse import TNEF
from tnefparse.properties import (
    MAPI_ATTACH_CONTENT_ID,
    MAPI_ATTACH_FLAGS,
    MAPI_ATTACH_LONG_FILENAME,
    MAPI_ATTACH_MIME_TAG,
)

from o365_assets.selection.mime import Part

logger = logging.getLogger(__name__)

TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"

# tnefparse copies the rest of the buffer for every object it reads, so its cost grows with
# objects times size; real containers hold a few dozen objects.
MAX_TNEF_OBJECTS = 500

# The attachment is shown inside the rich-text body (MAPI ATT_MHTML_REF).
_RENDERED_IN_BODY = 0x4


@dataclass(frozen=True)
class TnefContents:
    """What `read_tnef` could read of a container."""

    attachments: tuple[Part, ...]
    problems: tuple[str, ...]


def read_tnef(data: bytes) -> TnefContents:
    """List the attachments of a TNEF container, never raising on broken input.

    An attached message inside the container comes back as a part of type
    application/ms-tnef, to be read again with `read_tnef`.
    """
    if not data.startswith(TNEF_SIGNATURE):
        return TnefContents((), ("TNEF not unpacked: not a TNEF container",))

    objects = _object_count(data)
    if objects > MAX_TNEF_OBJECTS:
        problem = f"TNEF not unpacked: {objects} objects, limit is {MAX_TNEF_OBJECTS}"
        return TnefContents((), (problem,))

    try:
        container = TNEF(data, do_checksum=False)
    except Exception as error:
        # tnefparse indexes into the buffer freely and raises whatever a short or damaged
        # container provokes.
        return TnefContents((), (f"TNEF not unpacked: {type(error).__name__}: {error}",))

    parts = []
    problems = []
    for index, attachment in enumerate(container.attachments):
        try:
            parts.append(_part(attachment))
        except Exception as error:
            problems.append(f"TNEF attachment {index}: {type(error).__name__}: {error}")
    return TnefContents(tuple(parts), tuple(problems))


def _object_count(data: bytes) -> int:
    """Count the container's top-level objects the way tnefparse walks them."""
    offset, count = 6, 0
    while offset + 12 < len(data):
        (length,) = struct.unpack_from("<I", data, offset + 5)
        offset += length + 11
        count += 1
        if count > MAX_TNEF_OBJECTS:
            break
    return count


def _part(attachment: Any) -> Part:
    data = attachment.data if isinstance(attachment.data, bytes) else b""
    embedded = getattr(attachment, "embed", None) is not None
    content_type = (
        "application/ms-tnef" if embedded else _mapi_text(attachment, MAPI_ATTACH_MIME_TAG)
    )
    content_id = _mapi_text(attachment, MAPI_ATTACH_CONTENT_ID)
    flags = _mapi_value(attachment, MAPI_ATTACH_FLAGS)
    rendered = isinstance(flags, int) and bool(flags & _RENDERED_IN_BODY)
    return Part(
        name=_name(attachment),
        content_type=content_type or "application/octet-stream",
        data=data,
        is_inline=rendered or bool(content_id),
        content_id=content_id,
        kind="tnef_part",
    )


def _name(attachment: Any) -> str | None:
    name = _mapi_text(attachment, MAPI_ATTACH_LONG_FILENAME)
    if name:
        return name

    raw = getattr(attachment, "_name", b"")
    text = raw.decode("cp1252", errors="replace") if isinstance(raw, bytes) else str(raw)
    return text.strip("\x00").strip() or None


def _mapi_value(attachment: Any, tag: int) -> object:
    for attribute in attachment.mapi_attrs:
        if attribute.name == tag:
            value: object = attribute.data
            return value[0] if isinstance(value, list) and value else value
    return None


def _mapi_text(attachment: Any, tag: int) -> str | None:
    value = _mapi_value(attachment, tag)
    if isinstance(value, bytes):
        value = value.decode("cp1252", errors="replace")
    if not isinstance(value, str):
        return None
    return value.strip("\x00").strip() or None
