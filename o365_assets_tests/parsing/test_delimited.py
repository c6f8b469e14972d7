"""Delimited text through the whole staging path, into a real DuckDB file."""

import datetime
from pathlib import Path

import duckdb
import pytest

from o365_assets.parsing import Route
from o365_assets_tests.parsing.conftest import Stage, columns, make_source, rows

TEXT = "name,city,amount\nZoë,Zürich,1.5\nRenée,Köln,2\nJosé,São Paulo,3.25\n€uro,Ĳmuiden,4\n"


@pytest.mark.parametrize(
    ("encoding", "prefix"),
    [("utf-8", b""), ("utf-8", b"\xef\xbb\xbf"), ("utf-16", b""), ("utf-16-be", b"\xfe\xff")],
)
def test_unicode_encodings_are_read_exactly(
    tmp_path: Path,
    con: duckdb.DuckDBPyConnection,
    stage: Stage,
    encoding: str,
    prefix: bytes,
) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(prefix + TEXT.encode(encoding))

    report = stage(make_source(path, "csv"))

    assert report.files[0].status == "staged", report.files[0].error
    assert rows(con, "SELECT name, city, amount FROM staging.people ORDER BY _row_number") == [
        ("Zoë", "Zürich", 1.5),
        ("Renée", "Köln", 2.0),
        ("José", "São Paulo", 3.25),
        ("€uro", "Ĳmuiden", 4.0),
    ]


def test_cp1252_is_detected_and_transcoded(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    text = "produit;prix;remarque\n" + "".join(
        f"Crème brûlée n°{i};{i},50 €;“très” bon – déjà vu\n" for i in range(200)
    )
    path = tmp_path / "menu.csv"
    path.write_bytes(text.encode("cp1252"))

    report = stage(make_source(path, "csv"))

    outcome = report.files[0]
    assert outcome.status == "staged", outcome.error
    assert outcome.notes["encoding"] == "cp1252"
    assert rows(con, "SELECT produit, prix, remarque FROM staging.menu WHERE _row_number = 8") == [
        ("Crème brûlée n°7", "7,50 €", "“très” bon – déjà vu")
    ]


def test_cp1252_bytes_after_a_long_ascii_start_are_not_lost(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    # The first megabyte is plain ASCII, so detection from the start says UTF-8; the accented
    # rows further down must still arrive intact, not dropped and not as U+FFFD.
    ascii_rows = "".join(f"{i},plain text row number {i:08d}\n" for i in range(40_000))
    path = tmp_path / "late.csv"
    path.write_bytes(("id,label\n" + ascii_rows + "40000,Café déjà\n").encode("cp1252"))

    report = stage(make_source(path, "csv"))

    assert report.files[0].status == "staged", report.files[0].error
    assert report.files[0].notes["encoding"] == "cp1252"
    assert rows(con, "SELECT count(*), max(label) FILTER (WHERE id = 40000) FROM staging.late") == [
        (40_001, "Café déjà")
    ]


def test_ragged_rows_are_kept_and_counted(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    lines = ["a,b,c"] + [f"{i},{i * 2},{i * 3}" for i in range(1, 3001)]
    lines[10] = "10,20"  # short
    lines[2500] = "2500,5000,7500,extra,more"  # long, far past the sniffer's first rows
    path = tmp_path / "ragged.csv"
    path.write_text("\n".join(lines) + "\n")

    report = stage(make_source(path, "csv"))

    outcome = report.files[0]
    assert outcome.status == "staged"
    assert outcome.rows == 3000
    assert outcome.notes["ragged_rows"] == 2
    assert outcome.notes["rejected_rows"] == 0
    assert list(columns(con, "ragged"))[-5:] == ["a", "b", "c", "column_4", "column_5"]
    assert rows(
        con, "SELECT a, b, c, column_4, column_5 FROM staging.ragged WHERE a IN (10, 2500)"
    ) == [(10, 20, None, None, None), (2500, 5000, 7500, "extra", "more")]


def test_headerless_file_gets_positional_names(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "export.csv"
    path.write_text("1,2026-01-05,alpha\n2,2026-01-06,beta\n3,2026-01-07,gamma\n")

    stage(make_source(path, "csv"))

    assert rows(con, "SELECT column_1, column_2, column_3 FROM staging.export ORDER BY 1") == [
        (1, datetime.date(2026, 1, 5), "alpha"),
        (2, datetime.date(2026, 1, 6), "beta"),
        (3, datetime.date(2026, 1, 7), "gamma"),
    ]


def test_hostile_headers_become_safe_columns_and_values_stay_as_written(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "hostile.csv"
    path.write_text(
        'select,"""quoted""","drop table x;--",_message_id,Amount,amount\n'
        "1,\"=cmd|' /C calc'!A0\",'; DROP TABLE staging.hostile; --,spoof,5,6\n"
    )

    report = stage(make_source(path, "csv"))

    assert report.files[0].status == "staged", report.files[0].error
    cols = columns(con, "hostile")
    # Repeated headers get a numeric suffix (DuckDB's reader numbers them from 1).
    assert [name for name in cols if not name.startswith("_")] == [
        "select",
        "quoted",
        "drop_table_x",
        "message_id",
        "amount",
        "amount_1",
    ]
    assert rows(
        con,
        'SELECT "select", quoted, drop_table_x, message_id, _message_id FROM staging.hostile',
    ) == [
        (
            1,
            "=cmd|' /C calc'!A0",
            "'; DROP TABLE staging.hostile; --",
            "spoof",
            report.files[0].message_id,
        )
    ]


def test_quoted_line_breaks_and_crlf(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(b'id,note\r\n1,"first line\r\nsecond line"\r\n2,"say ""hi"""\r\n')

    stage(make_source(path, "csv"))

    assert rows(con, "SELECT id, note FROM staging.notes ORDER BY id") == [
        (1, "first line\r\nsecond line"),
        (2, 'say "hi"'),
    ]


def test_a_column_that_changes_type_late_is_read_as_text(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    lines = ["id,code"] + [f"{i},{i}" for i in range(30_000)] + ["30000,N/A"]
    path = tmp_path / "codes.csv"
    path.write_text("\n".join(lines) + "\n")

    report = stage(make_source(path, "csv"))

    assert report.files[0].rows == 30_001
    assert columns(con, "codes")["code"] == "VARCHAR"
    assert columns(con, "codes")["id"] == "BIGINT"
    assert rows(con, "SELECT code FROM staging.codes WHERE id = 30000") == [("N/A",)]


def test_tsv_and_semicolons(tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage) -> None:
    tsv = tmp_path / "tabs.tsv"
    tsv.write_text("a\tb\n1\tx;y\n")
    semi = tmp_path / "semi.csv"
    semi.write_text("a;b\n1;x,y\n")

    stage(make_source(tsv, "tsv"), make_source(semi, "csv"))

    assert rows(con, "SELECT a, b FROM staging.tabs") == [(1, "x;y")]
    assert rows(con, "SELECT a, b FROM staging.semi") == [(1, "x,y")]


def test_route_options_read_a_text_file_with_a_banner(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "bank.txt"
    path.write_text("ACME BANK EXPORT\ngenerated 2026-12-01\nAccount|Balance\nA-1|10.5\nB-2|-3\n")
    route = Route.model_validate(
        {
            "name": "bank",
            "match": {"file_name": "bank*.txt"},
            "table": "balances",
            "options": {"delimiter": "|", "skip_rows": 2, "header_row": 1},
        }
    )

    report = stage(make_source(path, "txt"), routes=[route])

    assert report.files[0].route == "bank"
    assert report.files[0].parser == "duckdb_csv"
    assert rows(con, "SELECT account, balance FROM staging.balances ORDER BY 1") == [
        ("A-1", 10.5),
        ("B-2", -3.0),
    ]


def test_empty_file_is_staged_with_no_rows(tmp_path: Path, stage: Stage) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")

    report = stage(make_source(path, "csv"))

    assert report.files[0].status == "staged"
    assert report.files[0].rows == 0
    assert report.files[0].table is None


def test_binary_garbage_is_quarantined(tmp_path: Path, stage: Stage) -> None:
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 50)

    report = stage(make_source(path, "csv"))

    assert report.files[0].status == "quarantined"
    assert "not readable as delimited text" in (report.files[0].error or "")


def test_a_clean_file_is_read_once_and_a_ragged_one_twice(tmp_path: Path, stage: Stage) -> None:
    clean = tmp_path / "clean.csv"
    clean.write_text("a,b\n1,2\n3,4\n")
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")

    report = stage(make_source(clean, "csv"), make_source(ragged, "csv"))

    assert [outcome.notes["reads"] for outcome in report.files] == [1, 2]


def test_a_route_type_that_does_not_fit_fails_that_file_only(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    bad = tmp_path / "prices.csv"
    bad.write_text("item,price\ntea,2.50\ncake,call us\n")
    good = tmp_path / "other.csv"
    good.write_text("x\n1\n")
    route = Route.model_validate(
        {
            "name": "prices",
            "match": {"file_name": "prices*"},
            "table": "prices",
            "options": {"types": {"price": "DECIMAL(8,2)"}},
        }
    )

    report = stage(make_source(bad, "csv"), make_source(good, "csv"), routes=[route])

    assert [outcome.status for outcome in report.files] == ["failed", "staged"]
    assert "'price'" in (report.files[0].error or "")
    assert "DECIMAL(8,2)" in (report.files[0].error or "")
    assert rows(con, "SELECT x FROM staging.other") == [(1,)]
    assert rows(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'prices'") == [(0,)]


def test_route_type_on_delimited_text(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "prices.csv"
    path.write_text("Item Name,Price\ntea,2.50\ncake,3.1\n")
    route = Route.model_validate(
        {
            "name": "prices",
            "table": "prices",
            "options": {"rename": {"Item Name": "product"}, "types": {"price": "DECIMAL(8,2)"}},
        }
    )

    stage(make_source(path, "csv"), routes=[route])

    assert {k: v for k, v in columns(con, "prices").items() if k[0] != "_"} == {
        "product": "VARCHAR",
        "price": "DECIMAL(8,2)",
    }
    assert rows(con, "SELECT product, price::VARCHAR FROM staging.prices ORDER BY 1") == [
        ("cake", "3.10"),
        ("tea", "2.50"),
    ]
