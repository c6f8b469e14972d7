"""Attached e-mail messages through the whole staging path, including a real-world corpus."""

import datetime
from pathlib import Path

import duckdb
import pytest

from o365_assets_tests.parsing import files
from o365_assets_tests.parsing.conftest import Stage, make_source, rows

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "eml"


def test_headers_and_plain_body(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    path = files.write_eml(tmp_path / "fwd.eml", attachment=b"\x00\x01")

    report = stage(make_source(path, "eml"))

    assert report.files[0].status == "staged"
    assert report.files[0].notes["attachments"] == 1
    assert rows(
        con,
        "SELECT part, text, email_from, email_to, email_cc, email_subject, email_date, "
        "email_message_id, title FROM staging.documents",
    ) == [
        (
            "body",
            "Hello,\nthe figures are attached.",
            "Zoë Example <zoe@acme.example>",
            "finance@acme.example, Bob <bob@acme.example>",
            "audit@acme.example",
            "Résumé of December",
            datetime.datetime(2026, 12, 1, 8, 30, tzinfo=datetime.UTC),
            "<abc.123@acme.example>",
            "Résumé of December",
        )
    ]


def test_html_only_body_is_reduced_to_text(
    tmp_path: Path, con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    html = (
        "<html><head><style>p {color: red}</style><script>alert('x')</script></head>"
        "<body><p>Dear team,</p><p>totals: <b>42</b> &amp; rising</p></body></html>"
    )
    path = files.write_eml(tmp_path / "html.eml", html=html, text=None)

    stage(make_source(path, "eml"))

    assert rows(con, "SELECT text FROM staging.documents") == [("Dear team,\ntotals: 42 & rising",)]


def test_a_file_without_message_headers_is_quarantined(tmp_path: Path, stage: Stage) -> None:
    path = tmp_path / "noise.eml"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))

    report = stage(make_source(path, "eml"))

    assert report.files[0].status == "quarantined"
    assert "not an e-mail message" in (report.files[0].error or "")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared e-mail corpus is not beside the repo")
def test_every_message_of_the_real_world_corpus_is_accounted_for(
    con: duckdb.DuckDBPyConnection, stage: Stage
) -> None:
    messages = sorted(CORPUS.glob("*.eml"))
    assert len(messages) > 100

    report = stage(*(make_source(path, "eml") for path in messages))

    statuses = {outcome.source_name: outcome.status for outcome in report.files}
    assert set(statuses.values()) <= {"staged", "quarantined"}, [
        (o.source_name, o.error) for o in report.files if o.status == "failed"
    ]
    assert report.staged >= len(messages) - 5
    big5 = rows(
        con,
        "SELECT text FROM staging.documents "
        "WHERE _source_name = 'enmime__chardet-success-big-5.eml'",
    )
    # Declared as us-ascii but written in Big5: the text is detected, not left as U+FFFD.
    assert big5 and "\ufffd" not in str(big5[0][0])
    staged = {name for name, status in statuses.items() if status == "staged"}
    assert rows(con, "SELECT count(DISTINCT _source_name) FROM staging.documents") == [
        (len(staged),)
    ]
    assert rows(con, "SELECT count(*) FROM mail.parse_log") == [(len(messages),)]
