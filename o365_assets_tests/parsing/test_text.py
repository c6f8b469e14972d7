"""Plain text and HTML files through the whole staging path."""

from pathlib import Path

import duckdb
import pytest

from o365_assets.parsing import documents
from o365_assets.parsing.text import html_to_text
from o365_assets_tests.parsing.conftest import Stage, make_source, rows


def test_plain_text_in_cp1252(tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("Prix: 12 €\r\nCafé crème – très bon\r\n".encode("cp1252"))

    report = stage(make_source(path, "txt"))

    assert report.files[0].notes["encoding"] == "cp1252"
    assert rows(con, "SELECT part, text FROM staging.documents") == [
        ("body", "Prix: 12 €\nCafé crème – très bon\n")
    ]


def test_long_text_is_split_into_chunks_at_line_ends(
    tmp_path: Path,
    con: duckdb.DuckDBPyConnection,
    stage: Stage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(documents, "MAX_PART_CHARS", 100)
    monkeypatch.setattr("o365_assets.parsing.text.MAX_PART_CHARS", 100)
    lines = [f"line {n:04d} " + "x" * 20 + "\n" for n in range(50)]
    path = tmp_path / "log.txt"
    path.write_text("".join(lines))

    stage(make_source(path, "txt"))

    chunks = rows(con, "SELECT part, text FROM staging.documents ORDER BY _row_number")
    assert {part for part, _ in chunks} == {"chunk"}
    assert "".join(str(text) for _, text in chunks) == "".join(lines)
    assert all(str(text).endswith("\n") and len(str(text)) <= 100 for _, text in chunks)


def test_html_file_text_and_title(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = tmp_path / "page.html"
    path.write_text(
        "<!doctype html><html><head><title>Price  list</title>"
        "<script>document.write('<p>injected</p>')</script></head><body>"
        "<h1>Prices</h1><table><tr><th>Item</th><th>Price</th></tr>"
        "<tr><td>Tea</td><td>2&nbsp;&euro;</td></tr></table>"
        "<template><p>hidden</p></template><p>Valid&nbsp;today</p><img src=x onerror=alert(1)>"
        "</body></html>",
        encoding="utf-8",
    )

    stage(make_source(path, "html"))

    assert rows(con, "SELECT title, text FROM staging.documents") == [
        ("Price list", "Prices\nItem\tPrice\nTea\t2 €\nValid today")
    ]


def test_html_without_closing_tags_keeps_its_text() -> None:
    title, text = html_to_text("<html><head><title>t</title><body><p>one<p>two<br>three")

    assert (title, text) == ("t", "one\ntwo\nthree")
