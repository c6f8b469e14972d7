"""Shared fixtures for the parsing tests: a real DuckDB file and a way to stage files into it."""

import datetime
import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import duckdb
import pytest

from o365_assets.parsing import Route, StagingReport, StagingSource, stage_partition

DAY = datetime.date(2026, 12, 1)

_ids = itertools.count(1)


def make_source(
    path: Path,
    detected_type: str,
    *,
    name: str | None = None,
    received_date: datetime.date = DAY,
    sender: str | None = "Reports <reports@acme.example>",
    subject: str | None = "Daily numbers",
) -> StagingSource:
    """A StagingSource for a file on disk, with fresh message and attachment ids."""
    number = next(_ids)
    return StagingSource(
        message_id=f"msg-{number}",
        attachment_id=f"att-{number}",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
        received_date=received_date,
        source_name=name or path.name,
        path=str(path),
        detected_type=detected_type,
        sender=sender,
        subject=subject,
    )


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a fresh DuckDB file."""
    connection = duckdb.connect(str(tmp_path / "o365.duckdb"))
    yield connection
    connection.close()


Stage = Callable[..., StagingReport]


@pytest.fixture
def stage(con: duckdb.DuckDBPyConnection) -> Stage:
    """Stage the given sources as the partition DAY (or `received_date`)."""

    def run(
        *sources: StagingSource,
        routes: Sequence[Route] = (),
        received_date: datetime.date = DAY,
    ) -> StagingReport:
        return stage_partition(con, received_date, list(sources), routes)

    return run


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[object, ...]]:
    """All rows of a query."""
    return con.execute(sql).fetchall()


def columns(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """Column name -> type of a staging table."""
    found = con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() "
        "WHERE schema_name = 'staging' AND table_name = $1 ORDER BY column_index",
        [table],
    ).fetchall()
    return {str(name): str(type_name) for name, type_name in found}
