"""Workbooks (xlsx, xlsm, xls, ods), read with python-calamine.

Every worksheet is staged into one table; ``_sheet`` names the sheet and ``_row_number`` the
row as the spreadsheet shows it (1-based). For each sheet:

- the header is the first row, among the first non-empty ones, whose cells are mostly
  non-empty text (a title line above a table is passed over); without one, columns are named
  ``column_1``, ``column_2``, ...;
- a merged range gives its value to every cell it covers;
- formulas give the value Excel cached when it last saved the file, never an evaluation;
  error values (``#DIV/0!``) and empty cells are NULL, and wholly empty rows are left out;
- a column's type comes from all its values: BOOLEAN, BIGINT (whole numbers), DOUBLE, DATE,
  TIMESTAMP, TIME, INTERVAL, or VARCHAR when kinds are mixed (values then kept as text).

Rows go to DuckDB in batches written as JSON, so memory holds one batch of Python values at a
time (calamine itself holds the decoded sheet).
"""

import datetime
import fnmatch
import json
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from python_calamine import CalamineSheet, CalamineWorkbook, SheetTypeEnum, SheetVisibleEnum

from o365_assets.parsing.coltypes import VARCHAR, is_simple_type, widen
from o365_assets.parsing.containers import check_office_zip
from o365_assets.parsing.identifiers import column_names, quote
from o365_assets.parsing.scratch import POSITION_COLUMNS, count_rows, create_scratch
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable

logger = logging.getLogger(__name__)

PARSER = "calamine"

BATCH_ROWS = 10_000
# How many non-empty rows at the top of a sheet are looked at to find the header.
HEADER_SCAN_ROWS = 30
# Merged ranges covering more cells than this are left unfilled (a whole-column merge).
MAX_MERGED_CELLS = 1_000_000

_ZIP_TYPES = {"xlsx", "xlsm", "ods"}
_BIGGEST_EXACT_FLOAT = 2**53

Cell = Any


@dataclass
class _SheetPlan:
    """What the first pass over a sheet found."""

    name: str
    visible: bool
    first_row: int
    first_column: int
    skip_rows: int
    header_index: int | None
    headers: list[str]
    kinds: list[set[str]]
    data_rows: int
    names: list[str] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


def load_spreadsheet(request: ParseRequest) -> ScratchTable:
    """Read every selected worksheet of a workbook into the request's scratch table."""
    kind = request.source.detected_type
    if kind in _ZIP_TYPES:
        check_office_zip(request.path, kind)

    # TODO: calamine decodes a whole sheet into memory before the first row is read, so a
    # sheet near Excel's row limit costs hundreds of MiB; the zip check bounds it, not more.
    try:
        workbook = CalamineWorkbook.from_path(str(request.path))
    except Exception as error:  # calamine raises its own error types and plain ValueErrors
        raise QuarantineError(f"not a readable {kind} workbook: {_first_line(error)}") from error

    try:
        return _load_workbook(request, workbook)
    finally:
        workbook.close()


def _load_workbook(request: ParseRequest, workbook: CalamineWorkbook) -> ScratchTable:
    scratch = ScratchTable(
        name=request.scratch_name, kind="tabular", columns=[], rows=0, has_position_columns=True
    )
    wanted = request.options.sheet
    plans: list[tuple[_SheetPlan, CalamineSheet]] = []
    skipped: list[str] = []
    for metadata in workbook.sheets_metadata:
        if metadata.typ != SheetTypeEnum.WorkSheet:
            skipped.append(metadata.name)
            continue
        if wanted and not fnmatch.fnmatchcase(metadata.name.casefold(), wanted.casefold()):
            skipped.append(metadata.name)
            continue
        sheet = _read_sheet(workbook, metadata.name)
        plan = _plan_sheet(
            sheet, metadata.name, request.options.skip_rows, request.options.header_row
        )
        plan.visible = metadata.visible == SheetVisibleEnum.Visible
        if plan.positions:
            plans.append((plan, sheet))
        else:
            skipped.append(metadata.name)

    scratch.notes["sheets"] = [_describe(plan) for plan, _ in plans]
    scratch.notes["sheets_skipped"] = skipped
    if not plans:
        return scratch

    columns, sources = _union_columns([plan for plan, _ in plans])
    create_scratch(request.con, request.scratch_name, [*POSITION_COLUMNS, *columns])
    types = dict(columns)
    for plan, sheet in plans:
        _insert_sheet(request, plan, sheet, types)

    scratch.columns = columns
    scratch.source_names = sources
    scratch.rows = count_rows(request.con, request.scratch_name)
    return scratch


def _read_sheet(workbook: CalamineWorkbook, name: str) -> CalamineSheet:
    try:
        return workbook.get_sheet_by_name(name)
    except Exception as error:
        raise QuarantineError(f"sheet cannot be read: {_first_line(error)}") from error


def _plan_sheet(
    sheet: CalamineSheet, name: str, skip_rows: int, header_row: int | None
) -> _SheetPlan:
    """First pass: where the rows start, which row is the header, the kinds of each column."""
    first_row, first_column = _origin(sheet)
    plan = _SheetPlan(name, True, first_row, first_column, skip_rows, None, [], [], 0)
    if sheet.end is None:
        return plan

    rows = _filled_rows(sheet, first_row, first_column)
    candidates: list[tuple[int, list[Cell]]] = []
    for index, row in rows:
        if index < skip_rows or _is_empty(row):
            continue
        candidates.append((index, row))
        if len(candidates) >= HEADER_SCAN_ROWS:
            break

    plan.header_index = _header_index(candidates, skip_rows, header_row)
    header = next((row for index, row in candidates if index == plan.header_index), [])
    plan.headers = ["" if cell == "" else _as_text(cell) for cell in header]
    plan.kinds = [set() for _ in plan.headers]

    first_data = skip_rows if plan.header_index is None else plan.header_index + 1
    batch = [row for index, row in candidates if index >= first_data]
    for index, row in rows:
        if index >= first_data and not _is_empty(row):
            batch.append(row)
            if len(batch) >= BATCH_ROWS:
                _observe(plan, batch)
                batch = []
    _observe(plan, batch)

    width = max(len(plan.headers), len(plan.kinds))
    headers = (plan.headers + [""] * width)[:width]
    kinds = (plan.kinds + [set() for _ in range(width)])[:width]
    # Columns with neither a header nor a value (spacers, formatted blanks) are left out.
    plan.positions = [i for i in range(width) if headers[i].strip() or kinds[i]]
    plan.headers = [headers[i] for i in plan.positions]
    plan.kinds = [kinds[i] for i in plan.positions]
    plan.names = column_names(plan.headers)
    return plan


def _origin(sheet: CalamineSheet) -> tuple[int, int]:
    """Absolute (row, column) of the first cell `iter_rows` yields."""
    if sheet.end is None or sheet.start is None:
        return 0, 0
    rows = 0
    width = 0
    for row in sheet.iter_rows():
        rows += 1
        width = len(row)
    end_row, end_column = sheet.end
    return end_row + 1 - rows, end_column + 1 - width


def _filled_rows(
    sheet: CalamineSheet, first_row: int, first_column: int
) -> Iterator[tuple[int, list[Cell]]]:
    """(absolute row index, cells) with merged ranges filled from their top-left cell."""
    covered = _merged_cells(sheet)
    anchors: dict[tuple[int, int], Cell] = {}
    anchor_cells = set(covered.values())
    for offset, row in enumerate(sheet.iter_rows()):
        index = first_row + offset
        if covered:
            for position, cell in enumerate(row):
                where = (index, first_column + position)
                if where in anchor_cells:
                    anchors[where] = cell
                elif where in covered:
                    row[position] = anchors.get(covered[where], cell)
        yield index, row


def _merged_cells(sheet: CalamineSheet) -> dict[tuple[int, int], tuple[int, int]]:
    covered: dict[tuple[int, int], tuple[int, int]] = {}
    for (top, left), (bottom, right) in sheet.merged_cell_ranges or []:
        if len(covered) + (bottom - top + 1) * (right - left + 1) > MAX_MERGED_CELLS:
            logger.warning("merged ranges too large to fill in sheet %r", sheet.name)
            break
        for row in range(top, bottom + 1):
            for column in range(left, right + 1):
                if (row, column) != (top, left):
                    covered[(row, column)] = (top, left)
    return covered


def _header_index(
    candidates: Sequence[tuple[int, list[Cell]]], skip_rows: int, header_row: int | None
) -> int | None:
    """The row index of the header: given by the route, or the first row that looks like one."""
    if header_row == 0 or not candidates:
        return None
    if header_row is not None:
        return skip_rows + header_row - 1

    width = max(len(row) - _trailing_empty(row) for _, row in candidates)
    for index, row in candidates:
        filled = [cell for cell in row if cell != ""]
        texts = [cell for cell in filled if isinstance(cell, str)]
        # Mostly text, spanning at least half the table, and mostly distinct: a title merged
        # across the table repeats one value and is passed over.
        if (
            len(texts) >= max(1, width / 2)
            and len(texts) >= 0.8 * len(filled)
            and 2 * len(set(texts)) >= len(texts)
        ):
            return index
    return None


def _observe(plan: _SheetPlan, batch: Sequence[Sequence[Cell]]) -> None:
    """Note the kinds of value in each column of a batch of data rows, column by column."""
    if not batch:
        return
    plan.data_rows += len(batch)
    width = max(len(row) for row in batch)
    if width > len(plan.kinds):
        plan.kinds.extend(set() for _ in range(width - len(plan.kinds)))
    rows = batch if all(len(row) == width for row in batch) else [_pad(row, width) for row in batch]
    for kinds, column in zip(plan.kinds, zip(*rows, strict=True), strict=False):
        kinds.update(_kinds(column))


def _kinds(column: Sequence[Cell]) -> set[str]:
    """The kinds of the non-empty values of a column: its Python types, with whole floats
    counted as ``int`` (a spreadsheet stores every number as a float)."""
    found = set()
    for kind in set(map(type, column)):
        if kind is str:
            if any(type(cell) is str and cell for cell in column):
                found.add("str")
        elif kind is float:
            floats = [cell for cell in column if type(cell) is float]
            whole = all(cell.is_integer() and abs(cell) < _BIGGEST_EXACT_FLOAT for cell in floats)
            found.add("int" if whole else "float")
        else:
            found.add(kind.__name__)
    return found


def _pad(row: Sequence[Cell], width: int) -> list[Cell]:
    return [*row, *([""] * (width - len(row)))]


def _column_type(kinds: set[str]) -> str | None:
    """The DuckDB type of a column whose values are of these kinds; None when all are empty."""
    if not kinds:
        return None
    exact = {
        frozenset({"bool"}): "BOOLEAN",
        frozenset({"int"}): "BIGINT",
        frozenset({"date"}): "DATE",
        frozenset({"time"}): "TIME",
        frozenset({"timedelta"}): "INTERVAL",
    }
    found = exact.get(frozenset(kinds))
    if found:
        return found
    if kinds <= {"int", "float"}:
        return "DOUBLE"
    if kinds <= {"date", "datetime"}:
        return "TIMESTAMP"
    return VARCHAR


def _union_columns(plans: Sequence[_SheetPlan]) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Columns of all sheets by name, in order of first appearance, with widened types."""
    types: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for plan in plans:
        for name, header, kinds in zip(plan.names, plan.headers, plan.kinds, strict=True):
            incoming = _column_type(kinds)
            current = types.get(name)
            if name not in types or current is None:
                types[name] = incoming
            elif incoming is not None:
                types[name] = widen(current, incoming)
            sources.setdefault(name, header)
    return [(name, type_name or VARCHAR) for name, type_name in types.items()], sources


def _insert_sheet(
    request: ParseRequest, plan: _SheetPlan, sheet: CalamineSheet, types: dict[str, str]
) -> None:
    """Second pass: convert the sheet's data rows batch by batch and append them.

    Batches are written as JSON arrays to a file that DuckDB's JSON reader then loads in one
    statement: JSON escapes any text a cell may hold, and reading it is several times faster
    than binding Python values one by one.
    """
    converters = [_CONVERTERS.get(types[name], _as_text) for name in plan.names]
    # A text column holding only text needs no conversion.
    converters = [
        None if convert is _as_text and kinds <= {"str"} else convert
        for convert, kinds in zip(converters, plan.kinds, strict=True)
    ]
    first_data = plan.skip_rows if plan.header_index is None else plan.header_index + 1
    positions = plan.positions
    needed = max(positions) + 1
    path = request.workdir / f"{request.scratch_name}-rows.json"
    batch: list[Sequence[Cell]] = []
    numbers: list[int] = []

    with path.open("w", encoding="utf-8", errors="replace") as handle:
        for index, row in _filled_rows(sheet, plan.first_row, plan.first_column):
            if index < first_data or _is_empty(row):
                continue
            if len(row) < needed:
                row = row + [""] * (needed - len(row))
            batch.append([row[position] for position in positions])
            numbers.append(index + 1)
            if len(batch) >= BATCH_ROWS:
                _write_batch(handle, converters, batch, numbers)
                batch, numbers = [], []
        _write_batch(handle, converters, batch, numbers)

    _load_batches(request, plan, types, path)
    path.unlink()


def _write_batch(
    handle: TextIO,
    converters: Sequence[Callable[[Cell], Any] | None],
    batch: list[Sequence[Cell]],
    numbers: list[int],
) -> None:
    """Append one JSON array per row: the row number, then each cell converted."""
    if not batch:
        return
    columns: list[Sequence[Any]] = [numbers]
    for convert, cells in zip(converters, zip(*batch, strict=True), strict=True):
        if convert is None:
            columns.append([None if cell == "" else cell for cell in cells])
        else:
            columns.append([None if cell == "" else convert(cell) for cell in cells])
    handle.write("\n".join(map(_ENCODE, zip(*columns, strict=True))))
    handle.write("\n")


def _load_batches(
    request: ParseRequest, plan: _SheetPlan, types: dict[str, str], path: Path
) -> None:
    """Append the rows written to `path` to the scratch table, cast to their column types."""
    names = ["_row_number", *plan.names]
    column_types = ["BIGINT", *(types[name] for name in plan.names)]
    for type_name in column_types:
        if not is_simple_type(type_name):
            raise ValueError(f"refusing to write type {type_name!r} into SQL")
    targets = ", ".join(["_sheet", *(quote(name) for name in names)])
    values = ", ".join(
        f"CAST(r[{position}] AS {type_name})"
        for position, type_name in enumerate(column_types, start=1)
    )
    request.con.execute(
        f"INSERT INTO {quote(request.scratch_name)} ({targets}) SELECT $2, {values} "
        "FROM read_json($1, format = 'newline_delimited', records = false, columns = $3)",
        [str(path), plan.name, {"r": "VARCHAR[]"}],
    )


def _as_text(cell: Cell) -> str:
    """A cell as text, spelled as DuckDB spells the same value cast to VARCHAR."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "true" if cell else "false"
    if isinstance(cell, float):
        return (
            str(int(cell)) if cell.is_integer() and abs(cell) < _BIGGEST_EXACT_FLOAT else repr(cell)
        )
    if isinstance(cell, datetime.datetime):
        return cell.isoformat(sep=" ")
    if isinstance(cell, datetime.date | datetime.time):
        return cell.isoformat()
    return str(cell)


def _as_timestamp(cell: Cell) -> str:
    if isinstance(cell, datetime.datetime):
        return cell.isoformat(sep=" ")
    return f"{cell.isoformat()} 00:00:00"


def _as_number(cell: Cell) -> float | str:
    # JSON has no spelling for infinities and NaN; DuckDB reads these strings as doubles.
    value = float(cell)
    return value if math.isfinite(value) else repr(value)


def _as_interval(cell: Cell) -> str:
    return f"{cell // datetime.timedelta(microseconds=1)} microseconds"


def _as_iso(cell: Cell) -> str:
    return str(cell.isoformat())


_ENCODE = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode


# How a cell becomes a value of its column's type; None where the cell already is one.
_CONVERTERS: dict[str, Callable[[Cell], Any] | None] = {
    "BIGINT": int,
    "DOUBLE": _as_number,
    "BOOLEAN": None,
    "DATE": _as_iso,
    "TIMESTAMP": _as_timestamp,
    "TIME": _as_iso,
    "INTERVAL": _as_interval,
    VARCHAR: _as_text,
}


def _describe(plan: _SheetPlan) -> dict[str, Any]:
    header = None if plan.header_index is None else plan.header_index + 1
    return {
        "name": plan.name,
        "visible": plan.visible,
        "header_row": header,
        "rows": plan.data_rows,
        "columns": len(plan.names),
    }


def _is_empty(row: list[Cell]) -> bool:
    return row.count("") == len(row)


def _trailing_empty(row: Sequence[Cell]) -> int:
    count = 0
    for cell in reversed(row):
        if cell != "":
            break
        count += 1
    return count


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
