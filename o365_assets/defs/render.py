"""Small Markdown previews and column schemas for asset metadata."""

from collections.abc import Iterable, Sequence

import dagster as dg

MAX_CELL = 60

_SCHEMAS: dict[str, list[tuple[str, str, str]]] = {
    "mail.messages": [
        ("id", "VARCHAR", "Graph immutable id"),
        ("internet_message_id", "VARCHAR", "RFC 5322 Message-ID"),
        ("mailbox", "VARCHAR", "shared mailbox address"),
        ("folder", "VARCHAR", "folder name as configured"),
        ("received_at", "TIMESTAMPTZ", "when the mailbox received it"),
        ("received_date", "DATE", "received day in the partition timezone"),
        ("sender", "VARCHAR", "sender address"),
        ("subject", "VARCHAR", "subject line"),
        ("has_attachments", "BOOLEAN", "Graph's hasAttachments"),
        ("removed", "BOOLEAN", "gone from the mailbox since"),
        ("synced_at", "TIMESTAMPTZ", "last time the index saw it change"),
    ],
    "mail.attachments": [
        ("message_id", "VARCHAR", "message it came with"),
        ("attachment_id", "VARCHAR", "Graph attachment id, or a path inside its parent"),
        ("parent_attachment_id", "VARCHAR", "enclosing attached email or archive"),
        ("name", "VARCHAR", "file name as sent (untrusted)"),
        ("content_type", "VARCHAR", "declared content type"),
        ("detected_type", "VARCHAR", "type read from the bytes"),
        ("size", "BIGINT", "bytes"),
        ("kind", "VARCHAR", "file, item, reference, mime_part or zip_member"),
        ("is_inline", "BOOLEAN", "inline in the body"),
        ("decision", "VARCHAR", "kept, skipped, quarantined or failed"),
        ("reason", "VARCHAR", "why, in words"),
        ("sha256", "VARCHAR", "content hash where the bytes were read"),
        ("path", "VARCHAR", "stored file, relative to the store root"),
        ("source_url", "VARCHAR", "link of a reference attachment"),
        ("received_date", "DATE", "partition"),
        ("decided_at", "TIMESTAMPTZ", "when decided"),
    ],
}


def table_schema(table: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name, type_, description=description)
            for name, type_, description in _SCHEMAS[table]
        ]
    )


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A small Markdown table; cells are cut short and stripped of what breaks the table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    if len(lines) == 2:
        lines.append("| " + " | ".join("" for _ in headers) + " |")
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    text = " ".join(text.split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"
