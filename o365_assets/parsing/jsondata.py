"""JSON and JSON Lines files, read by DuckDB's JSON reader.

An array of objects, or one object per line, gives one row per object with a column per key;
the reader looks at every record to find the keys and types, so a key that first appears late
is not lost. Nested objects and arrays are kept as JSON values (query them with ``->>`` or
``json_extract``): their shape varies between files far more than flat columns do. A file
whose top level is one object gives one row; scalars give a single ``json`` column.
"""

from pathlib import Path

import duckdb

from o365_assets.parsing import encoding as text_encoding
from o365_assets.parsing.coltypes import JSON, is_nested_type, staging_type
from o365_assets.parsing.identifiers import column_names, quote
from o365_assets.parsing.scratch import count_rows
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable

PARSER = "duckdb_json"


def load_json(request: ParseRequest) -> ScratchTable:
    """Read a JSON or JSON Lines file into the request's scratch table."""
    scratch = ScratchTable(name=request.scratch_name, kind="tabular", columns=[], rows=0)
    if request.path.stat().st_size == 0:
        scratch.notes["empty"] = True
        return scratch

    encoding = request.options.encoding or text_encoding.detect_encoding(request.path)
    path = _utf8_copy(request, encoding, scratch)
    json_format = "newline_delimited" if request.source.detected_type == "jsonl" else "auto"
    # TODO: looking at every record to find the keys reads a very large file twice more (two
    # sniffs, then the load); fine for mailed JSON, slow for gigabytes.
    reader = "read_json($1, format = $2, sample_size = -1)"
    con = request.con

    described = _run(con, f"DESCRIBE SELECT * FROM {reader}", [str(path), json_format])
    headers = [str(row[0]) for row in described]
    names = column_names(headers)
    types = [staging_type(str(row[1])) for row in described]
    aliases = [f"c{position}" for position in range(1, len(names) + 1)]
    selected = ", ".join(
        f"CAST(src.{alias} AS {type_name}) AS {quote(name)}"
        for alias, name, type_name in zip(aliases, names, types, strict=True)
    )
    _run(
        con,
        f"CREATE OR REPLACE TEMP TABLE {quote(request.scratch_name)} AS "
        f"SELECT {selected} FROM {reader} AS src({', '.join(aliases)})",
        [str(path), json_format],
    )

    scratch.columns = list(zip(names, types, strict=True))
    scratch.source_names = dict(zip(names, headers, strict=True))
    scratch.rows = count_rows(con, request.scratch_name)
    scratch.notes.update(
        encoding=encoding,
        format=json_format,
        nested_columns=[
            name
            for name, row, type_name in zip(names, described, types, strict=True)
            if type_name == JSON and is_nested_type(str(row[1]))
        ],
    )
    return scratch


def _utf8_copy(request: ParseRequest, encoding: str, scratch: ScratchTable) -> Path:
    # The JSON reader mistakes a byte-order mark for content, so a BOM is stripped too.
    if encoding == text_encoding.UTF8:
        return request.path
    target = request.workdir / f"{request.scratch_name}.json"
    if not text_encoding.transcode_to_utf8(request.path, encoding, target):
        scratch.warnings.append(f"bytes that are not valid {encoding} were replaced by U+FFFD")
    return target


def _run(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: list[object]
) -> list[tuple[object, ...]]:
    try:
        return con.execute(sql, parameters).fetchall()
    except duckdb.Error as error:
        first = str(error).strip().splitlines()[0][:300] if str(error).strip() else ""
        raise QuarantineError(f"not valid JSON: {first}") from error
