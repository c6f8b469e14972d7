"""The kept files of one received date, as the parsing layer takes them."""

import datetime

import duckdb

from o365_assets.parsing import StagingSource
from o365_assets.store.files import FileStore
from o365_assets.store.schema import KEPT


def staging_sources(
    con: duckdb.DuckDBPyConnection, store: FileStore, day: datetime.date
) -> list[StagingSource]:
    """Every kept file of the day with its lineage, in a stable order.

    A file kept for two attachments (identical content) is staged for each: every row of
    staging traces to one attachment.
    """
    rows = con.execute(
        """
        SELECT a.message_id, a.attachment_id, a.sha256, a.received_date, a.name, a.path,
               a.detected_type, m.sender, m.subject
        FROM mail.attachments a
        LEFT JOIN mail.messages m ON m.id = a.message_id
        WHERE a.received_date = ? AND a.decision = ? AND a.path IS NOT NULL
        ORDER BY a.message_id, a.attachment_id
        """,
        [day, KEPT],
    ).fetchall()
    return [
        StagingSource(
            message_id=message_id,
            attachment_id=attachment_id,
            sha256=sha256,
            received_date=received_date,
            source_name=name or "",
            path=str(store.local_path(path)),
            detected_type=detected_type,
            sender=sender,
            subject=subject,
        )
        for (
            message_id,
            attachment_id,
            sha256,
            received_date,
            name,
            path,
            detected_type,
            sender,
            subject,
        ) in rows
    ]
