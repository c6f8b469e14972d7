"""The facts the asset checks assert, computed on the DuckDB file and the file store.

Each returns `(passed, detail)`; the detail names what is wrong so a person can act on it.
"""

import datetime

import duckdb

from o365_assets.store.files import FileStore
from o365_assets.store.schema import DECISIONS, KEPT

MAX_NAMED = 5


def unique_message_ids(con: duckdb.DuckDBPyConnection) -> tuple[bool, str]:
    duplicates = con.execute(
        "SELECT id, count(*) FROM mail.messages GROUP BY id HAVING count(*) > 1 LIMIT ?",
        [MAX_NAMED],
    ).fetchall()
    if duplicates:
        return False, "duplicate message ids: " + ", ".join(f"{i} x{n}" for i, n in duplicates)
    return True, "every message id appears once"


def attachment_checks(
    con: duckdb.DuckDBPyConnection, store: FileStore, day: datetime.date
) -> dict[str, tuple[bool, str]]:
    return {
        "attachment_files_intact": kept_files_intact(con, store, day),
        "attachment_files_accounted": attachments_accounted(con, day),
    }


def kept_files_intact(
    con: duckdb.DuckDBPyConnection, store: FileStore, day: datetime.date
) -> tuple[bool, str]:
    """Every kept attachment of the day has its file, with the recorded sha256."""
    kept = con.execute(
        "SELECT name, path, sha256 FROM mail.attachments WHERE received_date = ? AND decision = ?",
        [day, KEPT],
    ).fetchall()
    bad = [
        f"{name!r} at {path}"
        for name, path, sha256 in kept
        if not path or not sha256 or not store.verify(path, sha256)
    ]
    if bad:
        shown = "; ".join(bad[:MAX_NAMED])
        return False, f"{len(bad)} of {len(kept)} kept files missing or changed: {shown}"
    return True, f"{len(kept)} kept files present with their recorded sha256"


def attachments_accounted(con: duckdb.DuckDBPyConnection, day: datetime.date) -> tuple[bool, str]:
    """Every attachment seen has one row with a known decision and a reason."""
    row = con.execute(
        """
        SELECT
            count(*) FILTER (WHERE decision NOT IN (SELECT unnest(?::VARCHAR[]))),
            count(*) FILTER (WHERE reason IS NULL OR reason = ''),
            (SELECT count(*) FROM (
                SELECT message_id, attachment_id FROM mail.attachments
                WHERE received_date = ? GROUP BY ALL HAVING count(*) > 1)),
            count(*)
        FROM mail.attachments WHERE received_date = ?
        """,
        [list(DECISIONS), day, day],
    ).fetchone()
    assert row is not None
    unknown, no_reason, duplicated, total = row
    if unknown or no_reason or duplicated:
        return False, (
            f"{unknown} rows with an unknown decision, {no_reason} without a reason, "
            f"{duplicated} attachments recorded twice (of {total})"
        )
    return True, f"{total} attachments, each with one decision and its reason"


def staging_checks(
    con: duckdb.DuckDBPyConnection, day: datetime.date
) -> dict[str, tuple[bool, str]]:
    counts = dict(
        con.execute(
            "SELECT status, count(*) FROM mail.parse_log WHERE received_date = ? GROUP BY 1",
            [day],
        ).fetchall()
    )
    total = sum(counts.values())
    staged = counts.get("staged", 0)
    failed = total - staged

    not_all_failed = (
        (True, "no files to stage")
        if total == 0
        else (staged > 0, f"{staged} of {total} files staged")
    )
    failures = (failed == 0, f"{failed} of {total} files failed or were quarantined")
    return {
        "parsed_staging_lineage": staging_lineage(con, day),
        "parsed_staging_not_all_failed": not_all_failed,
        "parsed_staging_failures": failures,
    }


def staging_lineage(con: duckdb.DuckDBPyConnection, day: datetime.date) -> tuple[bool, str]:
    """Every staged row of the day names an attachment that `mail.attachments` kept."""
    tables = [
        row[0]
        for row in con.execute(
            "SELECT DISTINCT staging_table FROM mail.parse_log "
            "WHERE received_date = ? AND staging_table IS NOT NULL",
            [day],
        ).fetchall()
    ]
    orphans = 0
    checked = 0
    for table in tables:
        qualified = qualified_staging_table(table)
        row = con.execute(
            f"""
            SELECT count(*) FILTER (WHERE a.attachment_id IS NULL), count(*)
            FROM {qualified} s
            LEFT JOIN mail.attachments a
              ON a.message_id = s._message_id AND a.attachment_id = s._attachment_id
             AND a.decision = ?
            WHERE s._received_date = ?
            """,
            [KEPT, day],
        ).fetchone()
        assert row is not None
        orphans += row[0]
        checked += row[1]
    if orphans:
        return False, f"{orphans} of {checked} staged rows trace to no kept attachment"
    return True, f"{checked} staged rows in {len(tables)} tables trace to kept attachments"


def qualified_staging_table(table: str) -> str:
    """`staging."name"` for a table name the parsing layer chose (quoted all the same)."""
    name = table.split(".", 1)[1] if table.startswith("staging.") else table
    return 'staging."' + name.replace('"', '""') + '"'
