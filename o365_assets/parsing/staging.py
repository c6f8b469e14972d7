"""Staging a partition: parse each kept file, then move every file's rows into staging at once.

Work happens in two phases so that one bad file never spoils the others:

1. Each file is parsed on its own into a temporary scratch table; delimited text is only
   sniffed here, and read into its scratch table in phase two, where the types of the table
   it joins are known. A file that cannot be read is quarantined (corrupt, encrypted, unsafe)
   or failed (anything else), with the reason.
2. One transaction deletes the partition's earlier rows from every staging table and from
   ``mail.parse_log``, evolves the tables' columns, inserts each file's rows under a new file
   key and writes the parse log. Staging a partition again therefore replaces it exactly. Should one
   file's rows still fail to insert, the transaction is rolled back and run again without it.

Where the rows live: each staging table ``staging.<name>`` is a view over
``staging_rows.<name>``, which stores the file's columns beside a few per-row ones (the file's
key, received date, sheet, row number), and ``mail.parse_log``, which holds the rest of the
lineage once per file (message and attachment id, sha256, source name, parser, load time).
Reading the view, every row carries its whole lineage; writing it, a file's long constant ids
are not copied into each of its rows, which would cost DuckDB more than reading the file.

Schema drift: a column new to a table is added, a column a file lacks is NULL in its rows, and
a column whose type differs widens (BIGINT and DOUBLE to DOUBLE, DATE and TIMESTAMP to
TIMESTAMP, anything else to VARCHAR). Every change is in the returned report.
"""

import datetime
import json
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import duckdb

from o365_assets.parsing.coltypes import VARCHAR, is_simple_type, normalise, widen
from o365_assets.parsing.identifiers import qualified, quote, snake_case, table_name_for_file
from o365_assets.parsing.parsers import Parser, parser_for
from o365_assets.parsing.routing import DOCUMENTS_TABLE, ParserOptions, Route, select_route
from o365_assets.parsing.scratch import insert_columns
from o365_assets.parsing.sources import (
    DeferredReader,
    ParseRequest,
    QuarantineError,
    ScratchTable,
    StagingSource,
    new_scratch_name,
)
from o365_assets.store.schema import ensure_schema

logger = logging.getLogger(__name__)

STAGING_SCHEMA = "staging"
ROWS_SCHEMA = "staging_rows"

STAGED = "staged"
FAILED = "failed"
QUARANTINED = "quarantined"

# Every staged row carries these, in this order, before the file's own columns.
LINEAGE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_message_id", "VARCHAR"),
    ("_attachment_id", "VARCHAR"),
    ("_sha256", "VARCHAR"),
    ("_received_date", "DATE"),
    ("_source_name", "VARCHAR"),
    ("_sheet", "VARCHAR"),
    ("_row_number", "BIGINT"),
    ("_parser", "VARCHAR"),
    ("_parser_version", "VARCHAR"),
    ("_loaded_at", "TIMESTAMPTZ"),
)

# What a row stores itself in staging_rows.<table>; `_file` is its file's mail.parse_log.file_id.
ROW_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_file", "BIGINT"),
    ("_received_date", "DATE"),
    ("_sheet", "VARCHAR"),
    ("_row_number", "BIGINT"),
)

# How the view finds each lineage column: in the row itself (r) or its file's log row (f).
_LINEAGE_SOURCES = {
    "_message_id": "f.message_id",
    "_attachment_id": "f.attachment_id",
    "_sha256": "f.sha256",
    "_received_date": "r._received_date",
    "_source_name": "f.source_name",
    "_sheet": "r._sheet",
    "_row_number": "r._row_number",
    "_parser": "f.parser",
    "_parser_version": "f.parser_version",
    "_loaded_at": "f.parsed_at",
}

# Where an unrouted tabular file whose name reduces to "documents" goes instead.
_TABULAR_DOCUMENTS_TABLE = "documents_data"
_MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class FileOutcome:
    """What became of one file: its status, where its rows went, and why if they did not."""

    message_id: str
    attachment_id: str
    source_name: str
    detected_type: str
    status: str
    table: str | None
    rows: int
    parser: str | None
    parser_version: str | None
    route: str | None
    error: str | None
    warnings: tuple[str, ...] = ()
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemaChange:
    """One change to a staging table: ``created``, ``added`` (a column) or ``widened``."""

    table: str
    column: str | None
    change: str
    old_type: str | None
    new_type: str | None
    attachment_id: str
    source_name: str


@dataclass(frozen=True)
class StagingReport:
    """The outcome of staging one partition."""

    received_date: datetime.date
    files: tuple[FileOutcome, ...]
    rows_per_table: Mapping[str, int]
    schema_changes: tuple[SchemaChange, ...]

    @property
    def staged(self) -> int:
        """Files whose rows are in staging."""
        return self._count(STAGED)

    @property
    def failed(self) -> int:
        """Files that could not be staged for a reason other than the file itself."""
        return self._count(FAILED)

    @property
    def quarantined(self) -> int:
        """Files refused as unreadable or unsafe."""
        return self._count(QUARANTINED)

    @property
    def rows(self) -> int:
        """Rows staged in all tables."""
        return sum(self.rows_per_table.values())

    def _count(self, status: str) -> int:
        return sum(1 for outcome in self.files if outcome.status == status)


@dataclass
class _Work:
    """A file on its way through staging."""

    source: StagingSource
    route: Route | None
    parser: Parser | None
    scratch_name: str = field(default_factory=new_scratch_name)
    status: str = STAGED
    table: str | None = None
    scratch: ScratchTable | None = None
    rows: int = 0
    error: str | None = None
    file_id: int | None = None


class _FileInsertError(Exception):
    def __init__(self, work: _Work, error: Exception) -> None:
        super().__init__(str(error))
        self.work = work
        self.error = error


def stage_partition(
    con: duckdb.DuckDBPyConnection,
    received_date: datetime.date,
    sources: Sequence[StagingSource],
    routes: Sequence[Route] = (),
) -> StagingReport:
    """Parse `sources`, the kept files received on `received_date`, into staging tables.

    The call stands for the whole partition: rows that earlier calls staged for this date, in
    any staging table, are replaced, inside one transaction, by the rows of `sources`. Files
    are read from their stored `path` only; nothing goes to the network.
    """
    ensure_schema(con)
    _move_lineage_out_of_rows(con)
    loaded_at = datetime.datetime.now(datetime.UTC)
    work: list[_Work] = []
    try:
        # Transcoded copies live in this folder until the transaction has read them.
        with TemporaryDirectory(prefix="o365-staging-") as folder:
            for source in sources:
                work.append(_parse(con, received_date, source, routes, Path(folder)))
            changes, rows_per_table = _commit(con, received_date, work, loaded_at)
    finally:
        _drop_scratch(con, work)

    report = StagingReport(
        received_date=received_date,
        files=tuple(_outcome(item) for item in work),
        rows_per_table=rows_per_table,
        schema_changes=tuple(changes),
    )
    logger.info(
        "staged partition %s: %d files staged, %d failed, %d quarantined, %d rows in %d tables",
        received_date,
        report.staged,
        report.failed,
        report.quarantined,
        report.rows,
        len(rows_per_table),
    )
    return report


def _parse(
    con: duckdb.DuckDBPyConnection,
    received_date: datetime.date,
    source: StagingSource,
    routes: Sequence[Route],
    folder: Path,
) -> _Work:
    """Phase one for one file: parse it into a scratch table, or record why not."""
    route = select_route(routes, source)
    options = route.options if route else ParserOptions()
    work = _Work(source=source, route=route, parser=parser_for(source.detected_type, options))

    if source.received_date != received_date:
        return _fail(work, f"received on {source.received_date}, not in this partition")
    if work.parser is None:
        return _fail(work, f"no parser reads detected type {source.detected_type!r}")
    if not Path(source.path).is_file():
        return _fail(work, "the stored file is missing")

    workdir = folder / work.scratch_name
    workdir.mkdir()
    request = ParseRequest(con, source, options, work.scratch_name, workdir)
    try:
        work.scratch = work.parser.load(request)
        work.table = _target_table(work, work.scratch)
        if work.scratch.kind == "tabular" and work.scratch.columns:
            _apply_options(con, work.scratch, options)
    except QuarantineError as error:
        work.status, work.error = QUARANTINED, str(error)
        logger.warning("quarantined %r: %s", source.source_name, error)
    except Exception as error:
        _fail(work, _describe_error(error))
    return work


def _fail(work: _Work, reason: str) -> _Work:
    work.status, work.error = FAILED, reason[:_MAX_ERROR_CHARS]
    logger.warning("failed to stage %r: %s", work.source.source_name, work.error)
    return work


def _target_table(work: _Work, scratch: ScratchTable) -> str:
    if work.route is not None:
        if scratch.kind == "tabular" and work.route.table == DOCUMENTS_TABLE:
            raise ValueError(f"route {work.route.name!r} sends tabular data to the documents table")
        return work.route.table
    if scratch.kind == "documents":
        return DOCUMENTS_TABLE
    name = table_name_for_file(work.source.source_name)
    return _TABULAR_DOCUMENTS_TABLE if name == DOCUMENTS_TABLE else name


def _apply_options(
    con: duckdb.DuckDBPyConnection, scratch: ScratchTable, options: ParserOptions
) -> None:
    """Rename and retype a tabular file's columns as its route says."""
    names = [name for name, _ in scratch.columns]
    types = dict(scratch.columns)
    table = quote(scratch.name)
    reader = scratch.reader

    for key, target in options.rename.items():
        current = _find_column(scratch, key)
        if current is None:
            scratch.warnings.append(f"rename: the file has no column {key!r}")
            continue
        if current == target:
            continue
        if target in types:
            raise ValueError(f"rename: column {target!r} exists already")
        if reader is not None:
            reader.rename(current, target)
        else:
            con.execute(f"ALTER TABLE {table} RENAME COLUMN {quote(current)} TO {quote(target)}")
        names[names.index(current)] = target
        types[target] = types.pop(current)

    for column, type_name in options.types.items():
        if column not in types:
            scratch.warnings.append(f"types: the file has no column {column!r}")
            continue
        if reader is not None:
            reader.retype(column, type_name)
            types[column] = normalise(type_name)
            continue
        try:
            con.execute(
                f"ALTER TABLE {table} ALTER COLUMN {quote(column)} SET DATA TYPE {type_name}"
            )
        except duckdb.Error as error:
            raise ValueError(
                f"column {column!r} does not convert to {type_name}: {_first_line(error)}"
            ) from error
        types[column] = normalise(type_name)

    scratch.columns = [(name, types[name]) for name in names]


def _find_column(scratch: ScratchTable, key: str) -> str | None:
    """The scratch column a rename key names: by its header as written, or its snake case."""
    present = {name for name, _ in scratch.columns}
    headers = [(name, header) for name, header in scratch.source_names.items() if name in present]
    exact = next((name for name, header in headers if header == key), None)
    if exact is not None:
        return exact
    folded = key.strip().casefold()
    loose = next((name for name, header in headers if header.strip().casefold() == folded), None)
    if loose is not None:
        return loose
    wanted = snake_case(key)
    return wanted if wanted in present else None


def _commit(
    con: duckdb.DuckDBPyConnection,
    received_date: datetime.date,
    work: list[_Work],
    loaded_at: datetime.datetime,
) -> tuple[list[SchemaChange], dict[str, int]]:
    """Phase two: replace the partition in one transaction.

    Should a file's rows fail to insert, the transaction is rolled back, the file is marked
    failed, and the transaction is run again without it.
    """
    while True:
        changes: list[SchemaChange] = []
        rows_per_table: Counter[str] = Counter()
        con.execute("BEGIN TRANSACTION")
        try:
            _delete_partition(con, received_date)
            for item in work:
                if item.status == STAGED and item.scratch is not None and item.table:
                    try:
                        item.rows = _insert(con, item, changes)
                    except Exception as error:
                        raise _FileInsertError(item, error) from error
                    if item.scratch.columns:
                        rows_per_table[qualified_name(item.table)] += item.rows
            _write_parse_log(con, received_date, work, loaded_at)
            con.execute("COMMIT")
            return changes, dict(rows_per_table)
        except _FileInsertError as failure:
            con.execute("ROLLBACK")
            failure.work.rows = 0
            if isinstance(failure.error, QuarantineError):
                failure.work.status, failure.work.error = QUARANTINED, str(failure.error)
                logger.warning("quarantined %r: %s", failure.work.source.source_name, failure.error)
            else:
                _fail(failure.work, _describe_error(failure.error))
        except BaseException:
            con.execute("ROLLBACK")
            raise


def qualified_name(table: str) -> str:
    """The name a staging table goes by in reports: ``staging.<table>``."""
    return f"{STAGING_SCHEMA}.{table}"


def _delete_partition(con: duckdb.DuckDBPyConnection, received_date: datetime.date) -> None:
    tables = con.execute(
        "SELECT table_name FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = $1 AND column_name = '_file'",
        [ROWS_SCHEMA],
    ).fetchall()
    for (table,) in tables:
        con.execute(
            f"DELETE FROM {_in_database(con, ROWS_SCHEMA, table)} WHERE _received_date = $1",
            [received_date],
        )
    con.execute(
        f"DELETE FROM {_in_database(con, 'mail', 'parse_log')} WHERE received_date = $1",
        [received_date],
    )


def _insert(con: duckdb.DuckDBPyConnection, item: _Work, changes: list[SchemaChange]) -> int:
    """Evolve the target table for the file's columns, then insert its rows under a new file key."""
    scratch = item.scratch
    assert scratch is not None
    if not scratch.columns:
        return 0

    item.file_id = _next_file_id(con)
    if scratch.reader is not None:
        return _insert_read(con, item, scratch.reader, changes)

    target = _evolve_table(con, item, changes)
    if scratch.has_position_columns:
        position = ("s._sheet", "s._row_number")
    else:
        position = ("NULL", "s.rowid + 1")
    return _insert_rows(con, item, target, f"{_scratch_reference(scratch.name)} AS s", position)


def _insert_read(
    con: duckdb.DuckDBPyConnection,
    item: _Work,
    reader: DeferredReader,
    changes: list[SchemaChange],
) -> int:
    """Read a file into its scratch table, again while the reader asks to, then insert it.

    Rows are numbered by their place in the scratch table: numbering them during the read
    would make DuckDB read the file on one thread.
    """
    scratch, table = item.scratch, item.table
    assert scratch is not None and table is not None
    base_warnings = list(scratch.warnings)
    existing = _table_columns(con, table)
    while True:
        for column, type_name in reader.columns:
            current = existing.get(column)
            if type_name == VARCHAR and current and current != VARCHAR and is_simple_type(current):
                reader.try_type(column, current)
        source, parameters = reader.source(first_parameter=1)
        try:
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {quote(scratch.name)} AS SELECT * FROM {source}",
                parameters,
            )
        except duckdb.InvalidInputException as error:
            raise QuarantineError(
                f"not readable as delimited text: {_first_line(error)}"
            ) from error
        if not reader.review():
            break

    scratch.columns = reader.columns
    scratch.notes.update(reader.notes())
    scratch.warnings = list(dict.fromkeys(base_warnings + reader.warnings))
    target = _evolve_table(con, item, changes)
    reference = _scratch_reference(scratch.name)
    # Inside a transaction a new table's row ids start at an offset, not at 0.
    first = con.execute(f"SELECT coalesce(min(rowid), 0) FROM {reference}").fetchone()
    assert first is not None
    position = ("NULL", f"s.rowid - {int(first[0])} + 1")
    rows = _insert_rows(con, item, target, f"{reference} AS s", position)
    # The next file's scratch table may need the memory.
    con.execute(f"DROP TABLE {reference}")
    return rows


def _next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    sequence = _in_database(con, "mail", "parse_log_file_id")
    row = con.execute("SELECT nextval($1)", [sequence]).fetchone()
    assert row is not None
    return int(row[0])


def _insert_rows(
    con: duckdb.DuckDBPyConnection,
    item: _Work,
    target: dict[str, str],
    source: str,
    position: tuple[str, str],
) -> int:
    """INSERT the rows of `source` (aliased ``s``) with their file key; returns how many."""
    scratch, table = item.scratch, item.table
    assert scratch is not None and table is not None
    selected = [
        f"CAST(s.{quote(name)} AS {target[name]}) AS {quote(name)}"
        if is_simple_type(target[name])
        else f"s.{quote(name)}"
        for name, _ in scratch.columns
    ]
    selected += [
        "$1 AS _file",
        "$2 AS _received_date",
        f"{position[0]} AS _sheet",
        f"{position[1]} AS _row_number",
    ]
    result = con.execute(
        f"INSERT INTO {_in_database(con, ROWS_SCHEMA, table)} BY NAME "
        f"SELECT {', '.join(selected)} FROM {source}",
        [item.file_id, item.source.received_date],
    ).fetchone()
    return int(result[0]) if result else 0


def _evolve_table(
    con: duckdb.DuckDBPyConnection, item: _Work, changes: list[SchemaChange]
) -> dict[str, str]:
    """Create or widen the target table so that it holds the file's columns; its types after."""
    scratch, table = item.scratch, item.table
    assert scratch is not None and table is not None
    name = _in_database(con, ROWS_SCHEMA, table)
    existing = _table_columns(con, table)

    def record(column: str | None, change: str, old: str | None, new: str | None) -> None:
        changes.append(
            SchemaChange(
                qualified_name(table),
                column,
                change,
                old,
                new,
                item.source.attachment_id,
                item.source.source_name,
            )
        )

    if not existing:
        columns = [*ROW_COLUMNS, *scratch.columns]
        _check_types(columns)
        _refuse_foreign(con, table)
        definition = ", ".join(f"{quote(column)} {type_name}" for column, type_name in columns)
        con.execute(f"CREATE TABLE {name} ({definition})")
        _create_view(con, table)
        record(None, "created", None, None)
        return {column: normalise(type_name) for column, type_name in columns}

    if "_file" not in existing:
        raise ValueError(f"table {ROWS_SCHEMA}.{table} exists and is not a staging table")
    for column, type_name in scratch.columns:
        _check_types([(column, type_name)])
        current = existing.get(column)
        if current is None:
            con.execute(f"ALTER TABLE {name} ADD COLUMN {quote(column)} {type_name}")
            existing[column] = normalise(type_name)
            record(column, "added", None, normalise(type_name))
            continue
        wider = widen(current, type_name)
        if wider == current or (
            scratch.reader is None and _all_null_text(con, scratch.name, column, type_name)
        ):
            continue
        con.execute(f"ALTER TABLE {name} ALTER COLUMN {quote(column)} SET DATA TYPE {wider}")
        existing[column] = wider
        record(column, "widened", current, wider)
    return existing


def _table_columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column types of the stored rows of staging table `table`; empty when it is new."""
    rows = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = $1 AND table_name = $2 "
        "ORDER BY column_index",
        [ROWS_SCHEMA, table],
    ).fetchall()
    return {str(column): normalise(str(type_name)) for column, type_name in rows}


def _move_lineage_out_of_rows(con: duckdb.DuckDBPyConnection) -> None:
    """Bring staging tables of the earlier layout, lineage copied into every row, to this one.

    Their rows move to ``staging_rows`` keyed to their file's ``mail.parse_log`` row, and a
    view takes the table's place, so queries of ``staging.<table>`` read the same rows.
    """
    old_tables = con.execute(
        "SELECT c.table_name FROM duckdb_columns() c JOIN duckdb_tables() t "
        "USING (database_name, schema_name, table_name) "
        "WHERE c.database_name = current_database() AND c.schema_name = $1 "
        "AND c.column_name = '_message_id' ORDER BY 1",
        [STAGING_SCHEMA],
    ).fetchall()
    for (table,) in old_tables:
        logger.info("moving the lineage of %s into mail.parse_log", qualified_name(table))
        old = _in_database(con, STAGING_SCHEMA, table)
        log = _in_database(con, "mail", "parse_log")
        lineage = ", ".join(name for name, _ in LINEAGE_COLUMNS)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"UPDATE {log} SET file_id = nextval($1) "
                "WHERE file_id IS NULL AND staging_table = $2",
                [_in_database(con, "mail", "parse_log_file_id"), qualified_name(table)],
            )
            con.execute(
                f"CREATE TABLE {_in_database(con, ROWS_SCHEMA, table)} AS "
                "SELECT f.file_id AS _file, t._received_date, t._sheet, t._row_number, "
                f"t.* EXCLUDE ({lineage}) FROM {old} AS t JOIN {log} AS f "
                "ON f.staging_table = $1 AND f.message_id = t._message_id "
                "AND f.attachment_id = t._attachment_id AND f.received_date = t._received_date",
                [qualified_name(table)],
            )
            _require_same_count(con, old, _in_database(con, ROWS_SCHEMA, table))
            con.execute(f"DROP TABLE {old}")
            _create_view(con, table)
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise


def _require_same_count(con: duckdb.DuckDBPyConnection, old: str, new: str) -> None:
    counts = con.execute(f"SELECT (SELECT count(*) FROM {old}), (SELECT count(*) FROM {new})")
    row = counts.fetchone()
    assert row is not None
    if row[0] != row[1]:
        raise ValueError(
            f"{old}: {row[0] - row[1]} of {row[0]} rows have no file in mail.parse_log; "
            "the table is left as it is"
        )


def _refuse_foreign(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Refuse to stage into a name that something other than staging holds already."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_catalog = current_database() AND table_schema = $1 AND table_name = $2",
        [STAGING_SCHEMA, table],
    ).fetchone()
    if row and row[0]:
        raise ValueError(f"table {qualified_name(table)} exists and is not a staging table")


def _create_view(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """``staging.<table>``: the stored rows with their whole lineage, lineage columns first.

    The view names its tables without the database, so that it still works when the database
    file is renamed or attached under another name. DuckDB binds ``r.*`` anew at each query,
    so columns added or widened later show without recreating the view.
    """
    lineage = ", ".join(f"{_LINEAGE_SOURCES[name]} AS {name}" for name, _ in LINEAGE_COLUMNS)
    stored = ", ".join(name for name, _ in ROW_COLUMNS)
    con.execute(
        f"CREATE VIEW {_in_database(con, STAGING_SCHEMA, table)} AS "
        f"SELECT {lineage}, r.* EXCLUDE ({stored}) "
        f"FROM {qualified(ROWS_SCHEMA, table)} AS r "
        "JOIN mail.parse_log AS f ON f.file_id = r._file"
    )


def _all_null_text(
    con: duckdb.DuckDBPyConnection, scratch: str, column: str, type_name: str
) -> bool:
    """Whether a VARCHAR column of the file holds no value at all.

    Readers type a column with no values as VARCHAR; such a column says nothing about the
    type and must not widen a typed column of the table.
    """
    if normalise(type_name) != VARCHAR or column.startswith("_"):
        return False
    row = con.execute(
        f"SELECT count({quote(column)}) FROM {_scratch_reference(scratch)}"
    ).fetchone()
    return row is not None and row[0] == 0


def _check_types(columns: Sequence[tuple[str, str]]) -> None:
    for column, type_name in columns:
        if not is_simple_type(normalise(type_name)):
            raise ValueError(f"column {column!r} has a type that cannot be staged: {type_name}")


def _write_parse_log(
    con: duckdb.DuckDBPyConnection,
    received_date: datetime.date,
    work: Sequence[_Work],
    parsed_at: datetime.datetime,
) -> None:
    if not work:
        return
    outcomes = [_outcome(item) for item in work]
    columns = [
        ("message_id", "VARCHAR"),
        ("attachment_id", "VARCHAR"),
        ("sha256", "VARCHAR"),
        ("received_date", "DATE"),
        ("source_name", "VARCHAR"),
        ("detected_type", "VARCHAR"),
        ("parser", "VARCHAR"),
        ("parser_version", "VARCHAR"),
        ("status", "VARCHAR"),
        ("staging_table", "VARCHAR"),
        ("rows", "BIGINT"),
        ("error", "VARCHAR"),
        ("parsed_at", "TIMESTAMPTZ"),
        ("route", "VARCHAR"),
        ("notes", "VARCHAR"),
        ("file_id", "BIGINT"),
    ]
    values: list[list[Any]] = [
        [outcome.message_id for outcome in outcomes],
        [outcome.attachment_id for outcome in outcomes],
        [item.source.sha256 for item in work],
        [received_date] * len(work),
        [outcome.source_name for outcome in outcomes],
        [outcome.detected_type for outcome in outcomes],
        [outcome.parser for outcome in outcomes],
        [outcome.parser_version for outcome in outcomes],
        [outcome.status for outcome in outcomes],
        [outcome.table for outcome in outcomes],
        [outcome.rows for outcome in outcomes],
        [outcome.error for outcome in outcomes],
        [parsed_at] * len(work),
        [outcome.route for outcome in outcomes],
        [_notes_json(outcome) for outcome in outcomes],
        [item.file_id if item.status == STAGED else None for item in work],
    ]
    insert_columns(con, _in_database(con, "mail", "parse_log"), columns, values)


def _notes_json(outcome: FileOutcome) -> str | None:
    notes = dict(outcome.notes)
    if outcome.warnings:
        notes["warnings"] = list(outcome.warnings)
    return json.dumps(notes, default=str, sort_keys=True) if notes else None


def _outcome(item: _Work) -> FileOutcome:
    scratch = item.scratch
    staged = item.status == STAGED
    has_rows_table = scratch is not None and bool(scratch.columns)
    return FileOutcome(
        message_id=item.source.message_id,
        attachment_id=item.source.attachment_id,
        source_name=item.source.source_name,
        detected_type=item.source.detected_type,
        status=item.status,
        table=qualified_name(item.table) if staged and item.table and has_rows_table else None,
        rows=item.rows if staged else 0,
        parser=item.parser.name if item.parser else None,
        parser_version=item.parser.version if item.parser else None,
        route=item.route.name if item.route else None,
        error=item.error,
        warnings=tuple(scratch.warnings) if scratch else (),
        notes=dict(scratch.notes) if scratch else {},
    )


def _drop_scratch(con: duckdb.DuckDBPyConnection, work: Sequence[_Work]) -> None:
    for item in work:
        for suffix in ("", "_rejects", "_scans"):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{quote(item.scratch_name + suffix)}")


def _in_database(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """A table of the connection's database, fully qualified and quoted.

    A bare ``staging.x`` is ambiguous when the database file itself is named ``staging``.
    """
    row = con.execute("SELECT current_database()").fetchone()
    assert row is not None
    return f"{quote(str(row[0]))}.{qualified(schema, table)}"


def _scratch_reference(name: str) -> str:
    return f"temp.main.{quote(name)}"


def _describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {_first_line(error)}"[:_MAX_ERROR_CHARS]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else ""
