"""Temporary tables that hold a file's rows between parsing and the staging transaction."""

from collections.abc import Sequence
from typing import Any

import duckdb

from o365_assets.parsing.coltypes import is_simple_type
from o365_assets.parsing.identifiers import quote

POSITION_COLUMNS = (("_sheet", "VARCHAR"), ("_row_number", "BIGINT"))


def create_scratch(
    con: duckdb.DuckDBPyConnection, name: str, columns: Sequence[tuple[str, str]]
) -> None:
    """Create (or replace) temporary table `name` with `columns` as (name, simple type)."""
    for _, type_name in columns:
        if not is_simple_type(type_name):
            raise ValueError(f"refusing to write type {type_name!r} into SQL")
    definition = ", ".join(f"{quote(column)} {type_name}" for column, type_name in columns)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote(name)} ({definition})")


def insert_columns(
    con: duckdb.DuckDBPyConnection,
    table: str,
    columns: Sequence[tuple[str, str]],
    values: Sequence[Sequence[Any]],
) -> None:
    """Append rows to `table` given column by column: `values[i]` holds every value of
    `columns[i]`. `table` is a scratch table's name, or a reference already quoted (starting
    with a double quote), such as a fully qualified ``"db"."mail"."parse_log"``.

    Each column is bound as one typed list parameter and unnested by DuckDB, which is far
    faster than binding row by row and never puts a value into the SQL text.
    """
    if not values or not values[0]:
        return
    targets = ", ".join(quote(column) for column, _ in columns)
    unnests = ", ".join(
        f"unnest(${position}::{type_name}[])"
        for position, (_, type_name) in enumerate(columns, start=1)
    )
    con.execute(
        f"INSERT INTO {_reference(table)} ({targets}) SELECT {unnests}",
        [list(column) for column in values],
    )


def _reference(table: str) -> str:
    return table if table.startswith('"') else quote(table)


def count_rows(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """The number of rows in table `name`."""
    row = con.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()
    return int(row[0]) if row else 0
