"""Word documents through the whole staging path."""

from pathlib import Path

import duckdb

from o365_assets_tests.parsing import files
from o365_assets_tests.parsing.conftest import Stage, make_source, rows


def test_sections_and_tables_in_reading_order(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_docx(tmp_path / "visit.docx")

    report = stage(make_source(path, "docx"))

    assert report.files[0].status == "staged", report.files[0].error
    assert report.files[0].notes == {"sections": 3, "tables": 1}
    assert rows(
        con,
        "SELECT _row_number, part, heading, text, title, author FROM staging.documents ORDER BY 1",
    ) == [
        (1, "section", None, "Preamble before any heading.", "Site visit", "Inspector Gadget"),
        (
            2,
            "section",
            "Findings",
            "The roof leaks.\nThe door squeaks.",
            "Site visit",
            "Inspector Gadget",
        ),
        (
            3,
            "table",
            "Findings",
            "Item\tCost\tDue\nRoof\t1200\t2027-01-31\nDoor (all in)\tsoon",
            "Site visit",
            "Inspector Gadget",
        ),
        (4, "section", "Next steps", "Call the roofer.", "Site visit", "Inspector Gadget"),
    ]


def test_corrupt_docx_is_quarantined(tmp_path: Path, stage: Stage) -> None:
    whole = files.write_docx(tmp_path / "whole.docx").read_bytes()
    cut = tmp_path / "cut.docx"
    cut.write_bytes(whole[: len(whole) // 3])
    not_word = tmp_path / "other.docx"
    files.write_xlsx(not_word, {"S": [["a"]]})

    report = stage(make_source(cut, "docx"), make_source(not_word, "docx"))

    assert [outcome.status for outcome in report.files] == ["quarantined", "quarantined"]
    assert all(outcome.error for outcome in report.files)
