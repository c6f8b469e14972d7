"""PDF files through the whole staging path."""

from pathlib import Path

import duckdb

from o365_assets_tests.parsing import files
from o365_assets_tests.parsing.conftest import Stage, make_source, rows


def test_one_row_per_page_with_properties(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_pdf(tmp_path / "statement.pdf", ["Opening balance 100", "", "Total 42"])

    report = stage(make_source(path, "pdf"))

    outcome = report.files[0]
    assert outcome.status == "staged"
    assert outcome.table == "staging.documents"
    assert outcome.notes["pages"] == 3
    assert outcome.notes["pages_without_text"] == 1
    assert rows(
        con, "SELECT _row_number, part, text, title, author FROM staging.documents ORDER BY 1"
    ) == [
        (1, "page", "Opening balance 100", "Monthly statement", "Finance Team"),
        (2, "page", "", "Monthly statement", "Finance Team"),
        (3, "page", "Total 42", "Monthly statement", "Finance Team"),
    ]


def test_encrypted_pdf_is_quarantined_with_the_reason(tmp_path: Path, stage: Stage) -> None:
    plain = files.write_pdf(tmp_path / "plain.pdf", ["secret figures"])
    locked = files.write_encrypted_pdf(tmp_path / "locked.pdf", plain)

    report = stage(make_source(locked, "pdf"))

    assert report.files[0].status == "quarantined"
    assert "password" in (report.files[0].error or "")


def test_truncated_pdf_is_quarantined(tmp_path: Path, stage: Stage) -> None:
    whole = files.write_pdf(tmp_path / "whole.pdf", ["page one", "page two"]).read_bytes()
    path = tmp_path / "cut.pdf"
    path.write_bytes(whole[:200])

    report = stage(make_source(path, "pdf"))

    assert report.files[0].status == "quarantined"
    assert "not a readable PDF" in (report.files[0].error or "")
