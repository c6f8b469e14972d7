"""Workbooks through the whole staging path, into a real DuckDB file."""

import datetime
from pathlib import Path

import duckdb
import pytest

from o365_assets.parsing import Route, containers, spreadsheets
from o365_assets_tests.parsing import files
from o365_assets_tests.parsing.conftest import Stage, columns, make_source, rows


def test_every_sheet_lands_in_one_table_with_sheet_and_row_number(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_report_workbook(tmp_path / "Quarterly Report 2026-12.xlsx")

    report = stage(make_source(path, "xlsx"))

    outcome = report.files[0]
    assert outcome.status == "staged", outcome.error
    assert outcome.table == "staging.quarterly_report"
    assert outcome.rows == 5
    assert [sheet["header_row"] for sheet in outcome.notes["sheets"]] == [4, 1, 1]
    assert [sheet["visible"] for sheet in outcome.notes["sheets"]] == [True, True, False]
    data = {name: kind for name, kind in columns(con, "quarterly_report").items() if name[0] != "_"}
    assert data == {
        "region": "VARCHAR",
        "amount": "DOUBLE",
        "day": "TIMESTAMP",
        "double_amount": "BIGINT",
        "reason": "VARCHAR",
        "code": "VARCHAR",
        "label": "VARCHAR",
    }
    assert rows(
        con,
        "SELECT _sheet, _row_number, region, amount, day, double_amount, reason, code, label "
        "FROM staging.quarterly_report ORDER BY _sheet DESC, _row_number",
    ) == [
        ("Sales", 5, "North", 10.0, datetime.datetime(2026, 1, 2), 20, None, None, None),
        ("Sales", 6, "North", 2.5, datetime.datetime(2026, 1, 2, 3, 4, 5), 5, None, None, None),
        (
            "Sales",
            7,
            "=cmd|' /C calc'!A0",
            4.0,
            datetime.datetime(2026, 1, 3),
            None,
            None,
            None,
            None,
        ),
        ("Returns", 2, "South", 3.0, None, None, "damaged", None, None),
        ("Lookup", 2, None, None, None, None, None, "N", "North"),
    ]


def test_formula_injection_is_staged_as_plain_text(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    payloads = ["=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", '@HYPERLINK("http://x")']
    book = files.write_xlsx(tmp_path / "inject.xlsx", {"S": [["cell"], *[[p] for p in payloads]]})
    # openpyxl would store "=..." as a formula; force every value to be a plain string cell.
    import openpyxl

    workbook = openpyxl.load_workbook(book)
    for cell in workbook["S"]["A"][1:]:
        cell.data_type = "s"
    workbook.save(book)

    stage(make_source(book, "xlsx"))

    assert [
        value for (value,) in rows(con, "SELECT cell FROM staging.inject ORDER BY 1")
    ] == sorted(payloads)


def test_route_selects_sheets_renames_and_types(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_xlsx(
        tmp_path / "orders.xlsx",
        {
            "Orders": [["Order ID", "Total (€)", "Placed"], [1, "10.50", "2026-01-02"]],
            "Notes": [["Anything"], ["ignored"]],
        },
    )
    route = Route.model_validate(
        {
            "name": "orders",
            "match": {"file_name": "orders*", "detected_type": ["xlsx"]},
            "table": "orders",
            "options": {
                "sheet": "ord*",
                "rename": {"Order ID": "order_number", "total": "total_eur"},
                "types": {"total_eur": "DECIMAL(10,2)", "placed": "DATE"},
            },
        }
    )

    report = stage(make_source(path, "xlsx"), routes=[route])

    assert report.files[0].status == "staged", report.files[0].error
    assert report.files[0].notes["sheets_skipped"] == ["Notes"]
    assert {k: v for k, v in columns(con, "orders").items() if k[0] != "_"} == {
        "order_number": "BIGINT",
        "total_eur": "DECIMAL(10,2)",
        "placed": "DATE",
    }
    assert rows(con, "SELECT order_number, total_eur::VARCHAR, placed FROM staging.orders") == [
        (1, "10.50", datetime.date(2026, 1, 2))
    ]


def test_a_route_type_that_does_not_fit_fails_the_file_with_the_reason(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_xlsx(tmp_path / "bad.xlsx", {"S": [["when"], ["not a date"]]})
    route = Route.model_validate(
        {"name": "typed", "table": "typed", "options": {"types": {"when": "DATE"}}}
    )

    report = stage(make_source(path, "xlsx"), routes=[route])

    assert report.files[0].status == "failed"
    assert "when" in (report.files[0].error or "")
    assert "DATE" in (report.files[0].error or "")


def test_mixed_column_keeps_numbers_as_written(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_xlsx(
        tmp_path / "mixed.xlsx",
        {"S": [["code", "flag"], [5, True], ["A7", False], [2.5, None], [None, True]]},
    )

    stage(make_source(path, "xlsx"))

    assert rows(con, "SELECT code, flag FROM staging.mixed ORDER BY _row_number") == [
        ("5", True),
        ("A7", False),
        ("2.5", None),
        (None, True),
    ]


def test_sheet_without_a_header_gets_positional_names(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_xlsx(tmp_path / "numbers.xlsx", {"S": [[1, 2.5], [3, 4.5]]})

    stage(make_source(path, "xlsx"))

    assert rows(con, "SELECT _row_number, column_1, column_2 FROM staging.numbers ORDER BY 1") == [
        (1, 1, 2.5),
        (2, 3, 4.5),
    ]


def test_rows_cross_batches_in_order(
    tmp_path: Path,
    con: duckdb.DuckDBPyConnection,
    stage: Stage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spreadsheets, "BATCH_ROWS", 7)
    data = [["n", "square"], *[[n, n * n] for n in range(1, 51)]]
    path = files.write_xlsx(tmp_path / "squares.xlsx", {"S": data})

    report = stage(make_source(path, "xlsx"))

    assert report.files[0].rows == 50
    assert rows(con, "SELECT count(*), sum(square), max(_row_number) FROM staging.squares") == [
        (50, sum(n * n for n in range(1, 51)), 51)
    ]
    assert rows(con, "SELECT count(*) FROM staging.squares WHERE _row_number <> n + 1") == [(0,)]


def test_xls_and_ods(tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage) -> None:
    xls = files.write_xls(tmp_path / "stock.xls")
    ods = files.write_ods(tmp_path / "stock.ods")

    report = stage(make_source(xls, "xls"), make_source(ods, "ods"))

    assert [outcome.status for outcome in report.files] == ["staged", "staged"]
    assert rows(
        con, "SELECT _source_name, item, qty, since FROM staging.stock ORDER BY 1, _row_number"
    ) == [
        ("stock.ods", "bolt", 12.0, datetime.date(2026, 1, 2)),
        ("stock.xls", "bolt", 12.0, datetime.date(2026, 2, 3)),
        ("stock.xls", "bolt", 7.5, datetime.date(2026, 2, 4)),
    ]


def test_zip_bomb_is_refused_before_opening(tmp_path: Path, stage: Stage) -> None:
    path = files.write_zip_bomb_xlsx(tmp_path / "bomb.xlsx")

    report = stage(make_source(path, "xlsx"))

    assert report.files[0].status == "quarantined"
    assert "zip bomb" in (report.files[0].error or "")


def test_a_workbook_inflating_past_the_total_limit_is_refused(
    tmp_path: Path, stage: Stage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(containers, "MAX_UNCOMPRESSED_BYTES", 4096)
    path = files.write_xlsx(tmp_path / "big.xlsx", {"S": [["a"], *[[n] for n in range(500)]]})

    report = stage(make_source(path, "xlsx"))

    assert report.files[0].status == "quarantined"
    assert "would inflate" in (report.files[0].error or "")


@pytest.mark.parametrize("kind", ["xlsx", "xls", "ods"])
def test_truncated_workbooks_are_quarantined(tmp_path: Path, stage: Stage, kind: str) -> None:
    writers = {
        "xlsx": lambda p: files.write_xlsx(p, {"S": [["a"], [1]]}),
        "xls": files.write_xls,
        "ods": files.write_ods,
    }
    whole = writers[kind](tmp_path / f"whole.{kind}").read_bytes()
    path = tmp_path / f"cut.{kind}"
    path.write_bytes(whole[: len(whole) // 2])

    report = stage(make_source(path, kind))

    assert report.files[0].status == "quarantined"
    assert report.files[0].error


def test_password_protected_workbook_is_quarantined(tmp_path: Path, stage: Stage) -> None:
    # Excel saves a protected workbook as an OLE compound file holding an encrypted package.
    path = tmp_path / "locked.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4096))

    report = stage(make_source(path, "xlsx"))

    assert report.files[0].status == "quarantined"
    assert "encrypted" in (report.files[0].error or "")


def test_cell_text_and_times_arrive_exactly(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    texts = ["line\nbreak\r\nend", 'say "hi", ok', "tab\there", "é€😀", "  padded  ", "[1, 2]"]
    rows_in = [["text", "at", "took"]]
    rows_in += [
        [text, datetime.time(8, n, 30), datetime.timedelta(hours=n, minutes=5)]
        for n, text in enumerate(texts)
    ]
    path = files.write_xlsx(tmp_path / "texts.xlsx", {"S": rows_in})

    stage(make_source(path, "xlsx"))

    assert {k: v for k, v in columns(con, "texts").items() if k[0] != "_"} == {
        "text": "VARCHAR",
        "at": "TIME",
        "took": "INTERVAL",
    }
    assert rows(con, 'SELECT text, "at", took FROM staging.texts ORDER BY _row_number') == [
        (row[0], row[1], row[2]) for row in rows_in[1:]
    ]
