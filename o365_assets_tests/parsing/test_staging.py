"""The staging contract: lineage, routing, drift, idempotence, isolation of bad files."""

import datetime
import json
from pathlib import Path

import duckdb

from o365_assets.parsing import PARSER_VERSIONS, Route, SchemaChange, stage_partition
from o365_assets.parsing.staging import LINEAGE_COLUMNS
from o365_assets_tests.parsing import files
from o365_assets_tests.parsing.conftest import DAY, Stage, columns, make_source, rows

LINEAGE = [name for name, _ in LINEAGE_COLUMNS]


def _mixed_partition(tmp_path: Path) -> list[Path]:
    csv = tmp_path / "Sales 2026-12-01.csv"
    csv.write_text("id,amount\n1,10\n2,20\n")
    workbook = files.write_xlsx(
        tmp_path / "stock.xlsx", {"A": [["sku"], ["x"]], "B": [["sku"], ["y"]]}
    )
    pdf = files.write_pdf(tmp_path / "letter.pdf", ["Dear all", "Regards"])
    return [csv, workbook, pdf]


def test_every_row_carries_its_lineage(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    csv, workbook, pdf = _mixed_partition(tmp_path)
    sources = [make_source(csv, "csv"), make_source(workbook, "xlsx"), make_source(pdf, "pdf")]

    report = stage(*sources)

    assert report.rows_per_table == {
        "staging.sales": 2,
        "staging.stock": 2,
        "staging.documents": 2,
    }
    for table in ("sales", "stock", "documents"):
        assert list(columns(con, table))[: len(LINEAGE)] == LINEAGE
        missing = " OR ".join(f"{name} IS NULL" for name in LINEAGE if name != "_sheet")
        assert rows(con, f"SELECT count(*) FROM staging.{table} WHERE {missing}") == [(0,)]
    for source in sources:
        found = rows(
            con,
            "SELECT DISTINCT _message_id, _attachment_id, _sha256, _received_date, _source_name, "
            f"_parser_version FROM {report.files[sources.index(source)].table}",
        )
        assert found == [
            (
                source.message_id,
                source.attachment_id,
                source.sha256,
                DAY,
                source.source_name,
                PARSER_VERSIONS[source.detected_type],
            )
        ]
    assert rows(con, "SELECT _sheet, _row_number, sku FROM staging.stock ORDER BY 1") == [
        ("A", 2, "x"),
        ("B", 2, "y"),
    ]
    assert rows(con, "SELECT _sheet, _row_number, amount FROM staging.sales ORDER BY 2") == [
        (None, 1, 10),
        (None, 2, 20),
    ]


def test_restaging_a_partition_replaces_it_exactly(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    csv, workbook, pdf = _mixed_partition(tmp_path)
    sources = [make_source(csv, "csv"), make_source(workbook, "xlsx"), make_source(pdf, "pdf")]
    other_day = DAY - datetime.timedelta(days=1)
    stage(make_source(csv, "csv", received_date=other_day), received_date=other_day)
    snapshot = (
        "SELECT * EXCLUDE (_loaded_at) FROM staging.{} ORDER BY _attachment_id, _sheet, _row_number"
    )

    stage(*sources)
    first = {table: rows(con, snapshot.format(table)) for table in ("sales", "stock", "documents")}
    again = stage(*sources)
    second = {table: rows(con, snapshot.format(table)) for table in ("sales", "stock", "documents")}

    assert first == second
    assert again.schema_changes == ()
    assert rows(
        con, "SELECT received_date, count(*) FROM mail.parse_log GROUP BY 1 ORDER BY 1"
    ) == [
        (other_day, 1),
        (DAY, 3),
    ]

    # The partition now holds the CSV alone: the workbook's and the PDF's rows go.
    stage(sources[0])
    assert rows(con, "SELECT count(*) FROM staging.stock") == [(0,)]
    assert rows(con, "SELECT count(*) FROM staging.documents") == [(0,)]
    assert rows(
        con, "SELECT _received_date, count(*) FROM staging.sales GROUP BY 1 ORDER BY 1"
    ) == [
        (other_day, 2),
        (DAY, 2),
    ]


def test_schema_drift_between_two_files_of_one_route(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    first = tmp_path / "a.csv"
    first.write_text("id,amount,day,gone\n1,10,2026-12-01,x\n")
    second = tmp_path / "b.csv"
    second.write_text("id,amount,day,extra,empty\n2,2.5,n/a,new,\n")
    third = tmp_path / "c.csv"
    third.write_text("id,amount,day\n3,4,2026-12-02\n")
    route = Route.model_validate({"name": "all", "table": "feed"})

    report = stage(
        make_source(first, "csv"),
        make_source(second, "csv"),
        make_source(third, "csv"),
        routes=[route],
    )

    assert {
        (c.source_name, c.column, c.change, c.old_type, c.new_type) for c in report.schema_changes
    } == {
        ("a.csv", None, "created", None, None),
        ("b.csv", "amount", "widened", "BIGINT", "DOUBLE"),
        ("b.csv", "day", "widened", "DATE", "VARCHAR"),
        ("b.csv", "extra", "added", None, "VARCHAR"),
        ("b.csv", "empty", "added", None, "VARCHAR"),
    }
    assert len(report.schema_changes) == 5
    assert all(isinstance(change, SchemaChange) for change in report.schema_changes)
    assert rows(con, "SELECT id, amount, day, gone, extra FROM staging.feed ORDER BY id") == [
        (1, 10.0, "2026-12-01", "x", None),
        (2, 2.5, "n/a", None, "new"),
        (3, 4.0, "2026-12-02", None, None),
    ]


def test_an_empty_column_does_not_widen_a_typed_one(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    first = tmp_path / "a.csv"
    first.write_text("id,amount\n1,10\n")
    second = tmp_path / "b.csv"
    second.write_text("id,amount\n2,\n3,\n")
    route = Route.model_validate({"name": "all", "table": "feed"})

    report = stage(make_source(first, "csv"), make_source(second, "csv"), routes=[route])

    assert [change.change for change in report.schema_changes] == ["created"]
    assert columns(con, "feed")["amount"] == "BIGINT"


def test_one_bad_file_never_fails_the_others(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    good = tmp_path / "good.csv"
    good.write_text("a\n1\n")
    corrupt = tmp_path / "corrupt.pdf"
    corrupt.write_bytes(b"%PDF-1.7 truncated")
    missing = tmp_path / "missing.csv"
    missing.write_text("a\n1\n")
    missing_source = make_source(missing, "csv")
    missing.unlink()
    unknown = make_source(good, "exe", name="tool.exe")
    elsewhere = make_source(good, "csv", received_date=DAY + datetime.timedelta(days=3))
    con.execute("CREATE SCHEMA IF NOT EXISTS staging")
    con.execute("CREATE TABLE staging.foreign_table (x INTEGER)")
    clash = make_source(good, "csv", name="Foreign Table.csv")

    report = stage(
        make_source(good, "csv"),
        make_source(corrupt, "pdf"),
        missing_source,
        unknown,
        elsewhere,
        clash,
    )

    assert [outcome.status for outcome in report.files] == [
        "staged",
        "quarantined",
        "failed",
        "failed",
        "failed",
        "failed",
    ]
    assert (report.staged, report.quarantined, report.failed) == (1, 1, 4)
    assert [outcome.error for outcome in report.files][2:5] == [
        "the stored file is missing",
        "no parser reads detected type 'exe'",
        "received on 2026-12-04, not in this partition",
    ]
    assert "not a staging table" in (report.files[5].error or "")
    assert rows(con, "SELECT a FROM staging.good") == [(1,)]
    assert rows(con, "SELECT count(*) FROM staging.foreign_table") == [(0,)]
    assert rows(con, "SELECT status, count(*) FROM mail.parse_log GROUP BY 1 ORDER BY 1") == [
        ("failed", 4),
        ("quarantined", 1),
        ("staged", 1),
    ]


def test_parse_log_records_each_file(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "ragged.csv"
    path.write_text("a,b\n1,2\n3\n")
    route = Route.model_validate({"name": "feed route", "table": "feed"})

    stage(make_source(path, "csv"), routes=[route])

    [(parser, version, status, table, count, error, route_name, notes)] = rows(
        con,
        "SELECT parser, parser_version, status, staging_table, rows, error, route, notes "
        "FROM mail.parse_log",
    )
    assert (parser, version, status, table, count, error, route_name) == (
        "duckdb_csv",
        PARSER_VERSIONS["csv"],
        "staged",
        "staging.feed",
        2,
        None,
        "feed route",
    )
    details = json.loads(str(notes))
    assert details["ragged_rows"] == 1
    assert details["warnings"] == ["1 ragged rows kept: short ones padded with NULLs"]


def test_tabular_files_never_mix_with_documents(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "Documents.csv"
    path.write_text("a\n1\n")
    to_documents = Route.model_validate(
        {"name": "wrong", "match": {"file_name": "other*"}, "table": "documents"}
    )
    other = tmp_path / "other.csv"
    other.write_text("a\n1\n")

    report = stage(make_source(path, "csv"), make_source(other, "csv"), routes=[to_documents])

    assert report.files[0].table == "staging.documents_data"
    assert report.files[1].status == "failed"
    assert "documents table" in (report.files[1].error or "")


def test_a_database_file_named_like_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("a\n1\n")
    con = duckdb.connect(str(tmp_path / "staging.duckdb"))
    try:
        report = stage_partition(con, DAY, [make_source(path, "csv")])

        assert report.files[0].status == "staged", report.files[0].error
        assert con.execute('SELECT a FROM "staging"."staging"."a"').fetchall() == [(1,)]
    finally:
        con.close()


def test_lineage_is_stored_once_per_file_and_read_through_the_view(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    csv, workbook, _ = _mixed_partition(tmp_path)
    sources = [make_source(csv, "csv"), make_source(workbook, "xlsx")]

    stage(*sources)

    stored = rows(
        con,
        "SELECT column_name FROM duckdb_columns() "
        "WHERE schema_name = 'staging_rows' AND table_name = 'sales' ORDER BY column_index",
    )
    row_columns = ["_file", "_received_date", "_sheet", "_row_number"]
    assert [name for (name,) in stored] == [*row_columns, "id", "amount"]
    keys = rows(con, "SELECT attachment_id, file_id FROM mail.parse_log ORDER BY attachment_id")
    assert len({key for _, key in keys}) == 2
    for attachment_id, file_id in keys:
        table = "sales" if attachment_id == sources[0].attachment_id else "stock"
        assert rows(con, f"SELECT DISTINCT _file FROM staging_rows.{table}") == [(file_id,)]

    # The views name no database: a renamed copy of the file, attached under another name,
    # reads the same rows with the same lineage.
    con.execute("CHECKPOINT")
    copy = tmp_path / "renamed copy.duckdb"
    copy.write_bytes((tmp_path / "o365.duckdb").read_bytes())
    con.execute(f"ATTACH '{copy}' AS elsewhere (READ_ONLY)")
    query = "SELECT _attachment_id, _row_number, amount FROM {}.staging.sales ORDER BY 2"
    assert rows(con, query.format("elsewhere")) == rows(con, query.format("o365"))
    assert rows(con, query.format("elsewhere")) == [
        (sources[0].attachment_id, 1, 10),
        (sources[0].attachment_id, 2, 20),
    ]


def test_row_numbers_follow_the_file_when_it_is_read_in_parallel(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "ledger.csv"
    # Large enough for DuckDB to split the read between threads.
    duckdb.execute(
        f"COPY (SELECT i AS id, 'entry number ' || i AS label FROM range(1500000) r(i)) "
        f"TO '{path}' (HEADER)"
    )
    con.execute("SET threads = 4")

    report = stage(make_source(path, "csv"))

    assert report.files[0].rows == 1_500_000
    assert rows(
        con, "SELECT count(*), count(*) FILTER (WHERE _row_number <> id + 1) FROM staging.ledger"
    ) == [(1_500_000, 0)]


def test_a_table_of_the_earlier_layout_is_moved_without_losing_a_row(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    # A database staged before lineage moved out of the rows: no parse_log.file_id, and
    # staging.sales a table whose every row carries the ten lineage columns.
    earlier = DAY - datetime.timedelta(days=1)
    con.execute("CREATE SCHEMA mail; CREATE SCHEMA staging")
    con.execute(
        "CREATE TABLE mail.parse_log (message_id VARCHAR NOT NULL, attachment_id VARCHAR "
        "NOT NULL, sha256 VARCHAR, received_date DATE, source_name VARCHAR, detected_type "
        "VARCHAR, parser VARCHAR, parser_version VARCHAR, status VARCHAR NOT NULL, "
        "staging_table VARCHAR, rows BIGINT, error VARCHAR, parsed_at TIMESTAMPTZ NOT NULL, "
        "route VARCHAR, notes VARCHAR)"
    )
    loaded = datetime.datetime(2026, 11, 30, 8, 0, tzinfo=datetime.UTC)
    con.execute(
        "INSERT INTO mail.parse_log VALUES ('m0', 'a0', 'cafe', $1, 'Sales old.csv', 'csv', "
        "'duckdb_csv', '1.0', 'staged', 'staging.sales', 2, NULL, $2, NULL, NULL)",
        [earlier, loaded],
    )
    lineage = ", ".join(f"{name} {type_name}" for name, type_name in LINEAGE_COLUMNS)
    con.execute(f"CREATE TABLE staging.sales ({lineage}, id BIGINT, amount BIGINT)")
    con.execute(
        "INSERT INTO staging.sales VALUES "
        "('m0', 'a0', 'cafe', $1, 'Sales old.csv', NULL, 1, 'duckdb_csv', '1.0', $2, 7, 70), "
        "('m0', 'a0', 'cafe', $1, 'Sales old.csv', NULL, 2, 'duckdb_csv', '1.0', $2, 8, 80)",
        [earlier, loaded],
    )
    csv, _, _ = _mixed_partition(tmp_path)

    stage(make_source(csv, "csv"))

    assert rows(
        con,
        "SELECT _message_id, _sha256, _received_date, _row_number, _loaded_at, id, amount "
        "FROM staging.sales WHERE _message_id = 'm0' ORDER BY _row_number",
    ) == [
        ("m0", "cafe", earlier, 1, loaded, 7, 70),
        ("m0", "cafe", earlier, 2, loaded, 8, 80),
    ]
    assert rows(con, "SELECT count(*) FROM staging.sales") == [(4,)]
    assert rows(
        con, "SELECT table_type FROM information_schema.tables WHERE table_schema = 'staging'"
    ) == [("VIEW",)]
