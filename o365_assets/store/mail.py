"""Queries on the `mail` schema: the message index, sync cursors and attachment decisions."""

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields

import duckdb


@dataclass(frozen=True)
class MessageRow:
    """One message of the index, as `mail.messages` holds it."""

    id: str
    internet_message_id: str | None
    mailbox: str
    folder: str
    received_at: datetime.datetime | None
    received_date: datetime.date | None
    sender: str | None
    subject: str | None
    has_attachments: bool


@dataclass(frozen=True)
class AttachmentRow:
    """One attachment seen, and what was decided about it."""

    message_id: str
    attachment_id: str
    parent_attachment_id: str | None
    name: str | None
    content_type: str | None
    detected_type: str | None
    size: int | None
    kind: str
    is_inline: bool | None
    decision: str
    reason: str | None
    sha256: str | None
    path: str | None
    source_url: str | None
    received_date: datetime.date | None
    # Which rules decided it: a decision taken on bytes under the same rules is reused as is.
    rules_digest: str | None = None


_MESSAGE_COLUMNS = [f.name for f in fields(MessageRow)]
_ATTACHMENT_COLUMNS = [f.name for f in fields(AttachmentRow)]


@dataclass(frozen=True)
class UpsertCounts:
    new: int
    changed: int


def upsert_messages(con: duckdb.DuckDBPyConnection, rows: Sequence[MessageRow]) -> UpsertCounts:
    """Insert new messages and update known ones; a message seen again is no longer removed."""
    # The same id twice in one batch (a change seen on two delta pages): the last one wins.
    latest = list({row.id: row for row in rows}.values())
    if not latest:
        return UpsertCounts(new=0, changed=0)
    now = datetime.datetime.now(datetime.UTC)
    columns = ", ".join(_MESSAGE_COLUMNS)
    placeholders = ", ".join("?" for _ in _MESSAGE_COLUMNS)

    con.execute(
        f"CREATE OR REPLACE TEMP TABLE incoming AS SELECT {columns} FROM mail.messages LIMIT 0"
    )
    con.executemany(f"INSERT INTO incoming VALUES ({placeholders})", [astuple(r) for r in latest])
    new = _count(con, "SELECT count(*) FROM incoming i ANTI JOIN mail.messages m ON m.id = i.id")
    updates = ", ".join(f"{c} = i.{c}" for c in _MESSAGE_COLUMNS if c != "id")
    con.execute(
        f"""
        MERGE INTO mail.messages m USING incoming i ON m.id = i.id
        WHEN MATCHED THEN UPDATE SET {updates}, removed = false, synced_at = ?
        WHEN NOT MATCHED THEN INSERT ({columns}, removed, synced_at)
            VALUES ({", ".join("i." + c for c in _MESSAGE_COLUMNS)}, false, ?)
        """,
        [now, now],
    )
    con.execute("DROP TABLE incoming")
    return UpsertCounts(new=new, changed=len(latest) - new)


def mark_removed(
    con: duckdb.DuckDBPyConnection, mailbox: str, folder: str, ids: Iterable[str]
) -> int:
    """Flag messages that left a folder; their rows stay for lineage. Returns how many.

    Only rows filed under `folder` are touched: a message moved to another synced folder is
    filed there by that folder's sync, whichever of the two runs first.
    """
    id_list = list(dict.fromkeys(ids))
    if not id_list:
        return 0
    now = datetime.datetime.now(datetime.UTC)
    return _count(
        con,
        "UPDATE mail.messages SET removed = true, synced_at = ? "
        "WHERE mailbox = ? AND folder = ? AND id IN (SELECT unnest(?::VARCHAR[])) "
        "AND NOT removed RETURNING 1",
        [now, mailbox, folder, id_list],
        rows=True,
    )


def mark_unseen_removed(
    con: duckdb.DuckDBPyConnection, mailbox: str, folder: str, seen: Iterable[str]
) -> int:
    """After a sync from scratch listed every message of a folder: flag the ones it did not."""
    now = datetime.datetime.now(datetime.UTC)
    return _count(
        con,
        "UPDATE mail.messages SET removed = true, synced_at = ? "
        "WHERE mailbox = ? AND folder = ? AND NOT removed "
        "AND id NOT IN (SELECT unnest(?::VARCHAR[])) RETURNING 1",
        [now, mailbox, folder, list(seen)],
        rows=True,
    )


def get_sync_state(
    con: duckdb.DuckDBPyConnection, mailbox: str, folder: str, key: str
) -> str | None:
    row = con.execute(
        "SELECT value FROM mail.sync_state WHERE mailbox = ? AND folder = ? AND key = ?",
        [mailbox, folder, key],
    ).fetchone()
    return None if row is None else row[0]


def set_sync_state(
    con: duckdb.DuckDBPyConnection, mailbox: str, folder: str, key: str, value: str | None
) -> None:
    con.execute(
        "DELETE FROM mail.sync_state WHERE mailbox = ? AND folder = ? AND key = ?",
        [mailbox, folder, key],
    )
    if value is not None:
        con.execute(
            "INSERT INTO mail.sync_state VALUES (?, ?, ?, ?, ?)",
            [mailbox, folder, key, value, datetime.datetime.now(datetime.UTC)],
        )


def messages_received_on(
    con: duckdb.DuckDBPyConnection, mailbox: str, day: datetime.date
) -> list[MessageRow]:
    """Messages of one received-date partition that are still in the mailbox."""
    result = con.execute(
        f"SELECT {', '.join(_MESSAGE_COLUMNS)} FROM mail.messages "
        "WHERE mailbox = ? AND received_date = ? AND NOT removed ORDER BY received_at, id",
        [mailbox, day],
    ).fetchall()
    return [MessageRow(*row) for row in result]


def received_dates(con: duckdb.DuckDBPyConnection, mailbox: str) -> list[datetime.date]:
    """Every received date that has mail still in the mailbox, oldest first."""
    result = con.execute(
        "SELECT DISTINCT received_date FROM mail.messages "
        "WHERE mailbox = ? AND NOT removed AND received_date IS NOT NULL ORDER BY 1",
        [mailbox],
    ).fetchall()
    return [row[0] for row in result]


def attachments_for_date(con: duckdb.DuckDBPyConnection, day: datetime.date) -> list[AttachmentRow]:
    result = con.execute(
        f"SELECT {', '.join(_ATTACHMENT_COLUMNS)} FROM mail.attachments "
        "WHERE received_date = ? ORDER BY message_id, attachment_id",
        [day],
    ).fetchall()
    return [AttachmentRow(*row) for row in result]


def replace_attachments_for_date(
    con: duckdb.DuckDBPyConnection, day: datetime.date, rows: Sequence[AttachmentRow]
) -> None:
    """Make `mail.attachments` hold exactly `rows` for one received date, in one transaction."""
    now = datetime.datetime.now(datetime.UTC)
    placeholders = ", ".join("?" for _ in range(len(_ATTACHMENT_COLUMNS) + 1))
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM mail.attachments WHERE received_date = ?", [day])
        if rows:
            con.executemany(
                f"INSERT INTO mail.attachments ({', '.join(_ATTACHMENT_COLUMNS)}, decided_at) "
                f"VALUES ({placeholders})",
                [(*astuple(r), now) for r in rows],
            )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def path_for_sha256(con: duckdb.DuckDBPyConnection, sha256: str) -> str | None:
    """A stored file that already holds this content, if any."""
    row = con.execute(
        "SELECT path FROM mail.attachments WHERE sha256 = ? AND path IS NOT NULL "
        "ORDER BY received_date, message_id, attachment_id LIMIT 1",
        [sha256],
    ).fetchone()
    return None if row is None else row[0]


def inline_image_counts(con: duckdb.DuckDBPyConnection, sha256s: Sequence[str]) -> dict[str, int]:
    """In how many distinct messages each content hash was seen: signature logos recur."""
    if not sha256s:
        return {}
    result = con.execute(
        "SELECT sha256, count(DISTINCT message_id) FROM mail.attachments "
        "WHERE sha256 IN (SELECT unnest(?::VARCHAR[])) GROUP BY sha256",
        [list(sha256s)],
    ).fetchall()
    return {row[0]: int(row[1]) for row in result}


def _count(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None, rows: bool = False
) -> int:
    result = con.execute(sql, params or [])
    if rows:
        return len(result.fetchall())
    row = result.fetchone()
    return 0 if row is None else int(row[0])
