"""The shape of document rows (PDF, DOCX, e-mail, text, HTML) and how they reach a scratch table.

A document becomes one row per part, in reading order, in ``staging.documents`` unless a
route names another table:

==================  ==========================================================================
column              meaning
==================  ==========================================================================
part                ``page`` (PDF), ``section`` or ``table`` (DOCX), ``body`` (e-mail, text,
                    HTML), ``chunk`` (a long text split at line ends)
heading             the DOCX heading the section or table sits under
text                the part's text, line breaks as ``\\n``
title, author       from the document's properties (PDF, DOCX), the HTML ``<title>``, or the
                    e-mail's subject and sender
email_from ...      ``email_from``, ``email_to``, ``email_cc``, ``email_subject``,
                    ``email_date`` (TIMESTAMPTZ), ``email_message_id``: attached e-mails only
==================  ==========================================================================

``_row_number`` numbers the parts from 1, so for a PDF it is the page number.
"""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, fields

from o365_assets.parsing.scratch import count_rows, create_scratch, insert_columns
from o365_assets.parsing.sources import ParseRequest, ScratchTable

# A long text is split into parts of about this many characters, at line ends.
MAX_PART_CHARS = 1_000_000
# Parts are sent to DuckDB in batches of about this many characters.
_BATCH_CHARS = 8_000_000


@dataclass(frozen=True)
class DocumentPart:
    """One row of a document: a page, a section, a table, or a body."""

    part: str
    text: str
    heading: str | None = None


@dataclass(frozen=True)
class DocumentInfo:
    """What is known of a document as a whole; repeated on each of its rows."""

    title: str | None = None
    author: str | None = None
    email_from: str | None = None
    email_to: str | None = None
    email_cc: str | None = None
    email_subject: str | None = None
    email_date: datetime.datetime | None = None
    email_message_id: str | None = None


DOCUMENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("part", "VARCHAR"),
    ("heading", "VARCHAR"),
    ("text", "VARCHAR"),
    ("title", "VARCHAR"),
    ("author", "VARCHAR"),
    ("email_from", "VARCHAR"),
    ("email_to", "VARCHAR"),
    ("email_cc", "VARCHAR"),
    ("email_subject", "VARCHAR"),
    ("email_date", "TIMESTAMPTZ"),
    ("email_message_id", "VARCHAR"),
)
_INFO_FIELDS = [item.name for item in fields(DocumentInfo)]


def load_document(
    request: ParseRequest, parts: Iterable[DocumentPart], info: DocumentInfo
) -> ScratchTable:
    """Write `parts` of one document, with `info` on every row, to the request's scratch table."""
    con, name = request.con, request.scratch_name
    create_scratch(con, name, DOCUMENT_COLUMNS)

    batch: list[DocumentPart] = []
    size = 0
    for part in parts:
        batch.append(part)
        size += len(part.text)
        if size >= _BATCH_CHARS:
            _flush(request, batch, info)
            batch, size = [], 0
    _flush(request, batch, info)

    return ScratchTable(
        name=name, kind="documents", columns=list(DOCUMENT_COLUMNS), rows=count_rows(con, name)
    )


def _flush(request: ParseRequest, batch: list[DocumentPart], info: DocumentInfo) -> None:
    if not batch:
        return
    count = len(batch)
    values: list[list[object]] = [
        [part.part for part in batch],
        [part.heading for part in batch],
        [part.text for part in batch],
    ]
    values += [[getattr(info, name)] * count for name in _INFO_FIELDS]
    insert_columns(request.con, request.scratch_name, DOCUMENT_COLUMNS, values)
