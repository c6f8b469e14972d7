"""Delimited text (CSV, TSV and the like), read by DuckDB's own CSV reader.

The file never passes through Python row by row, and it is read once in the common case:
parsing only sniffs the dialect and the column types, and the staging transaction then reads
it with DuckDB's ``read_csv`` into a scratch table and moves the rows into the target table.
What DuckDB cannot read cleanly is handled rather than dropped:

- encodings other than UTF-8 are transcoded to a UTF-8 copy first, in chunks;
- ragged rows (fewer or more fields than the header) are kept: short rows are padded with
  NULLs and extra fields land in extra ``column_<n>`` columns, and their count is reported;
- a column whose later values do not fit the sniffed type is read as VARCHAR.

The reader records rejected rows in a table of its own; when a read had any, the file is read
once more with the dialect widened, before any of its rows reach the target table. Rows DuckDB
still rejects after that (a broken quote, an over-long line) are counted and reported as
warnings with their line numbers.
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from o365_assets.parsing import encoding as text_encoding
from o365_assets.parsing.coltypes import VARCHAR, normalise, staging_type
from o365_assets.parsing.identifiers import column_names, deduplicate, quote
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable

logger = logging.getLogger(__name__)

PARSER = "duckdb_csv"

# Rejected rows recorded per read; beyond this the counts in the report are lower bounds.
REJECTS_LIMIT = 100_000
# Reads of one file at most: the first, one with the dialect widened, one after transcoding.
MAX_READS = 4
_RAGGED = ("MISSING COLUMNS", "TOO MANY COLUMNS")
_ENCODING = "INVALID ENCODING"
_EMPTY = "(empty)"


@dataclass
class _Dialect:
    """What the sniffer found, plus the columns we chose to read and their types."""

    delimiter: str
    quote: str
    escape: str
    comment: str
    skip: int
    header: bool
    date_format: str | None
    timestamp_format: str | None
    names: list[str]
    types: list[str]
    headers: list[str]
    null_padding: bool = False


@dataclass
class _Rejects:
    lines_by_type: dict[str, int]
    widest_row: int
    cast_columns: set[str]
    first_lines: list[int]
    first_byte: int | None

    @property
    def total(self) -> int:
        return sum(self.lines_by_type.values())


@dataclass
class DelimitedReader:
    """How to read one delimited file with ``read_csv``, refined by what each read rejected."""

    request: ParseRequest
    encoding: str
    path: Path
    dialect: _Dialect
    # Columns whose type a route fixed: values that do not convert fail the file.
    fixed_types: dict[str, str] = field(default_factory=dict)
    # Columns read as a table's existing type on trial; text that does not fit makes them text.
    trial_types: dict[str, str] = field(default_factory=dict)
    # Columns whose trial type failed; they stay text.
    refused: set[str] = field(default_factory=set)
    reads: int = 0
    ragged_rows: int = 0
    rejected_rows: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def columns(self) -> list[tuple[str, str]]:
        """(name, type) of the columns the next read produces."""
        return list(zip(self.dialect.names, self.dialect.types, strict=True))

    @property
    def rejects_table(self) -> str:
        """The temporary table DuckDB records rejected rows in."""
        return f"{self.request.scratch_name}_rejects"

    def rename(self, current: str, new: str) -> None:
        """Read column `current` under the name `new`."""
        self.dialect.names[self.dialect.names.index(current)] = new

    def retype(self, column: str, type_name: str) -> None:
        """Read `column` as `type_name`, failing the file where a value does not convert."""
        self.dialect.types[self.dialect.names.index(column)] = normalise(type_name)
        self.fixed_types[column] = normalise(type_name)

    def try_type(self, column: str, type_name: str) -> None:
        """Read text column `column` as `type_name`, back to text if a value does not convert.

        A column the sniffer saw no value in is typed VARCHAR; read as the type the table
        already has, it does not widen that table's column to text for nothing.
        """
        if column in self.refused or column in self.fixed_types:
            return
        self.dialect.types[self.dialect.names.index(column)] = type_name
        self.trial_types[column] = type_name

    def source(self, first_parameter: int) -> tuple[str, list[Any]]:
        """A ``read_csv(...)`` call for the next read, its parameters numbered from the given one.

        DuckDB's reject tables are dropped first: it appends to existing ones, and each read
        must see only its own.
        """
        con = self.request.con
        for table in (self.rejects_table, f"{self.request.scratch_name}_scans"):
            con.execute(f"DROP TABLE IF EXISTS temp.main.{quote(table)}")

        dialect = self.dialect
        arguments: dict[str, Any] = {
            "auto_detect": False,
            "delim": dialect.delimiter,
            "quote": dialect.quote,
            "escape": dialect.escape,
            "comment": dialect.comment,
            "skip": dialect.skip,
            "header": dialect.header,
            "columns": dict(self.columns),
            "store_rejects": True,
            "rejects_table": self.rejects_table,
            "rejects_scan": f"{self.request.scratch_name}_scans",
            "rejects_limit": REJECTS_LIMIT,
        }
        if dialect.date_format:
            arguments["dateformat"] = dialect.date_format
        if dialect.timestamp_format:
            arguments["timestampformat"] = dialect.timestamp_format
        if dialect.null_padding:
            # Quoted line breaks cannot be padded by the parallel scanner.
            arguments.update(null_padding=True, parallel=False)
        self.reads += 1
        return _call("read_csv", self.path, arguments, first_parameter)

    def review(self) -> bool:
        """Look at what the last read rejected; True when the file must be read again.

        Raises `QuarantineError` when the file cannot be read as delimited text, and
        ValueError when values do not convert to a type a route fixed.
        """
        rejects = _collect_rejects(self.request.con, self.rejects_table)
        if not rejects.total:
            return False

        if self.reads < MAX_READS and self._fix(rejects):
            return True

        # TODO: rows DuckDB still rejects (a quote never closed, an over-long line) are counted
        # and reported but not staged; keeping their raw text in a side table would lose nothing.
        lines = ", ".join(str(line) for line in rejects.first_lines)
        self.rejected_rows = rejects.total
        self.warnings.append(
            f"{rejects.total} rows could not be parsed and are not staged (lines {lines}...)"
        )
        return False

    def _fix(self, rejects: _Rejects) -> bool:
        """Change how the file is read so that the rejected rows fit; False if nothing helps."""
        if rejects.lines_by_type.get(_ENCODING) and not text_encoding.needs_transcoding(
            self.encoding
        ):
            self.encoding = _encoding_near(self.path, rejects.first_byte)
            self.path = _utf8_copy(self.request, self.encoding, self.warnings)
            self.dialect = _sniff(self.request, self.path)
            return True

        fixed = sorted(rejects.cast_columns & set(self.fixed_types))
        if fixed:
            column = fixed[0]
            raise ValueError(
                f"column {column!r} has values that do not convert to {self.fixed_types[column]}"
            )

        changed = False
        ragged = sum(rejects.lines_by_type.get(kind, 0) for kind in _RAGGED)
        if ragged and not self.dialect.null_padding:
            self.ragged_rows = ragged
            self.warnings.append(f"{ragged} ragged rows kept: short ones padded with NULLs")
            self.dialect.null_padding = True
            changed = True
        extra = max(rejects.widest_row - len(self.dialect.names), 0)
        if extra:
            first = len(self.dialect.names) + 1
            wanted = [f"column_{position}" for position in range(first, first + extra)]
            self.dialect.names += deduplicate(wanted, taken=self.dialect.names)
            self.dialect.types += [VARCHAR] * extra
            self.dialect.headers += [""] * extra
            changed = True
        for column in rejects.cast_columns:
            if column in self.dialect.names:
                position = self.dialect.names.index(column)
                if self.dialect.types[position] != VARCHAR:
                    self.dialect.types[position] = VARCHAR
                    if self.trial_types.pop(column, None):
                        self.refused.add(column)
                    changed = True
        return changed

    def notes(self) -> dict[str, Any]:
        """What a data engineer may want to know about how the file was read."""
        return {
            "encoding": self.encoding,
            "delimiter": self.dialect.delimiter,
            "header": self.dialect.header,
            "skipped_rows": self.dialect.skip,
            "ragged_rows": self.ragged_rows,
            "rejected_rows": self.rejected_rows,
            "reads": self.reads,
        }


def load_delimited(request: ParseRequest) -> ScratchTable:
    """Prepare a delimited text file: find its encoding, dialect and columns, read nothing yet."""
    scratch = ScratchTable(name=request.scratch_name, kind="tabular", columns=[], rows=0)
    if request.path.stat().st_size == 0:
        scratch.notes["empty"] = True
        return scratch

    encoding = request.options.encoding or text_encoding.detect_encoding(request.path)
    path = _utf8_copy(request, encoding, scratch.warnings)
    dialect = _sniff(request, path)
    reader = DelimitedReader(request=request, encoding=encoding, path=path, dialect=dialect)

    scratch.reader = reader
    scratch.columns = reader.columns
    scratch.source_names = dict(zip(dialect.names, dialect.headers, strict=True))
    scratch.notes.update(reader.notes())
    return scratch


def _utf8_copy(request: ParseRequest, encoding: str, warnings: list[str]) -> Path:
    if not text_encoding.needs_transcoding(encoding):
        return request.path
    target = request.workdir / f"{request.scratch_name}-{encoding}.csv"
    if not text_encoding.transcode_to_utf8(request.path, encoding, target):
        warnings.append(f"bytes that are not valid {encoding} were replaced by U+FFFD")
    return target


def _sniff(request: ParseRequest, path: Path) -> _Dialect:
    options = request.options
    arguments: dict[str, Any] = {"null_padding": True}
    if options.delimiter:
        arguments["delim"] = options.delimiter
    elif request.source.detected_type == "tsv":
        arguments["delim"] = "\t"
    if options.header_row is not None:
        arguments["header"] = options.header_row > 0
        arguments["skip"] = options.skip_rows + max(options.header_row - 1, 0)
    elif options.skip_rows:
        arguments["skip"] = options.skip_rows

    sql, parameters = _call("sniff_csv", path, arguments, 1)
    try:
        row = request.con.execute(
            "SELECT Delimiter, Quote, Escape, Comment, SkipRows, HasHeader, Columns, "
            f"DateFormat, TimestampFormat FROM {sql}",
            parameters,
        ).fetchone()
    except duckdb.Error as error:
        raise QuarantineError(f"not readable as delimited text: {_first_line(error)}") from error
    assert row is not None

    delimiter, quote_char, escape, comment, skip, header, columns, date_fmt, ts_fmt = row
    headers = [column["name"] if header else "" for column in columns]
    return _Dialect(
        delimiter=delimiter,
        quote="" if quote_char == _EMPTY else quote_char,
        escape="" if escape == _EMPTY else escape,
        comment="" if comment == _EMPTY else comment,
        skip=int(skip),
        header=bool(header),
        date_format=date_fmt,
        timestamp_format=ts_fmt,
        names=column_names(headers),
        types=[staging_type(column["type"]) for column in columns],
        headers=headers,
    )


def _collect_rejects(con: duckdb.DuckDBPyConnection, table: str) -> _Rejects:
    reference = f"temp.main.{quote(table)}"
    by_type = dict(
        con.execute(
            f"SELECT error_type, count(DISTINCT line) FROM {reference} GROUP BY error_type"
        ).fetchall()
    )
    row = con.execute(
        "SELECT max(column_idx) FILTER (WHERE error_type = 'TOO MANY COLUMNS'), "
        "list(DISTINCT column_name) FILTER (WHERE error_type = 'CAST'), "
        "(list(DISTINCT line ORDER BY line))[1:5], min(byte_position) FILTER "
        f"(WHERE error_type = 'INVALID ENCODING') FROM {reference}"
    ).fetchone()
    assert row is not None
    widest, cast_columns, first_lines, first_byte = row
    return _Rejects(
        lines_by_type={str(kind): int(count) for kind, count in by_type.items()},
        widest_row=int(widest or 0),
        cast_columns={str(name) for name in cast_columns or [] if name is not None},
        first_lines=[int(line) for line in first_lines or []],
        first_byte=None if first_byte is None else int(first_byte),
    )


def _encoding_near(path: Path, byte_position: int | None) -> str:
    """Guess the encoding from the bytes around the first one that was not UTF-8."""
    start = max((byte_position or 0) - 4096, 0)
    with path.open("rb") as handle:
        handle.seek(start)
        window = handle.read(65536)
    guess = text_encoding.detect_sample_encoding(window, truncated=True)
    # Bytes that failed as UTF-8 are not UTF-8, whatever a small window suggests.
    return "cp1252" if guess in {text_encoding.UTF8, text_encoding.UTF8_BOM} else guess


def _call(
    function: str, path: Path, arguments: dict[str, Any], first_parameter: int
) -> tuple[str, list[Any]]:
    """A table-function call whose path and option values are all bound parameters."""
    parameters: list[Any] = [str(path)]
    rendered = [f"${first_parameter}"]
    for name, value in arguments.items():
        parameters.append(value)
        rendered.append(f"{name} = ${first_parameter + len(parameters) - 1}")
    return f"{function}({', '.join(rendered)})", parameters


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
