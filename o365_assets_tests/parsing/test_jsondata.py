"""JSON and JSON Lines through the whole staging path."""

import json
from pathlib import Path

import duckdb
import pytest

from o365_assets_tests.parsing.conftest import Stage, columns, make_source, rows


def test_array_of_objects_keeps_nested_values_as_json(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    records = [
        {"id": 1, "customer": {"name": "Zoë", "tags": ["a", "b"]}, "select": "x"},
        {"id": 2, "customer": {"name": "Bob"}, "total": 2.5},
    ]
    path = tmp_path / "orders.json"
    path.write_text(json.dumps(records), encoding="utf-8")

    report = stage(make_source(path, "json"))

    assert report.files[0].status == "staged", report.files[0].error
    assert {k: v for k, v in columns(con, "orders").items() if k[0] != "_"} == {
        "id": "BIGINT",
        "customer": "JSON",
        "select": "VARCHAR",
        "total": "DOUBLE",
    }
    assert rows(
        con,
        "SELECT id, customer->>'$.name', customer->'$.tags'->>0, \"select\", total "
        "FROM staging.orders ORDER BY _row_number",
    ) == [(1, "Zoë", "a", "x", None), (2, "Bob", None, None, 2.5)]


def test_json_lines_with_a_late_key_and_a_bom(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    lines = [json.dumps({"n": n}) for n in range(25_000)] + [json.dumps({"n": 0, "late": "x"})]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode())

    report = stage(make_source(path, "jsonl"))

    assert report.files[0].rows == 25_001
    assert rows(con, "SELECT _row_number, late FROM staging.events WHERE late IS NOT NULL") == [
        (25_001, "x")
    ]


def test_utf16_json(tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage) -> None:
    path = tmp_path / "cities.json"
    path.write_bytes(json.dumps([{"city": "Zürich"}], ensure_ascii=False).encode("utf-16"))

    stage(make_source(path, "json"))

    assert rows(con, "SELECT city FROM staging.cities") == [("Zürich",)]


@pytest.mark.parametrize("content", [b'{"a": 1,', b"[1, 2", b"\x00\x01\x02 not json"])
def test_broken_json_is_quarantined(tmp_path: Path, stage: Stage, content: bytes) -> None:
    path = tmp_path / "broken.json"
    path.write_bytes(content)

    report = stage(make_source(path, "json"))

    assert report.files[0].status == "quarantined"
    assert (report.files[0].error or "").startswith("not valid JSON")
