import datetime

import duckdb
import pytest

from o365_assets.store import mail
from o365_assets.store.schema import KEPT, SKIPPED, ensure_schema

DAY = datetime.date(2026, 11, 30)


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "o365.duckdb"))
    ensure_schema(connection)
    yield connection
    connection.close()


def message(mid: str, subject: str = "hello", day: datetime.date = DAY) -> mail.MessageRow:
    received = datetime.datetime.combine(day, datetime.time(9, 30), tzinfo=datetime.UTC)
    return mail.MessageRow(
        id=mid,
        internet_message_id=f"<{mid}@example>",
        mailbox="shared@example.com",
        folder="inbox",
        received_at=received,
        received_date=day,
        sender="a@example.com",
        subject=subject,
        has_attachments=True,
    )


def test_upsert_counts_new_and_changed_and_keeps_one_row_per_id(con):
    first = mail.upsert_messages(con, [message("m1"), message("m2")])
    second = mail.upsert_messages(con, [message("m2", "edited"), message("m3"), message("m3", "x")])

    assert (first.new, first.changed) == (2, 0)
    assert (second.new, second.changed) == (1, 1)
    rows = con.execute("SELECT id, subject FROM mail.messages ORDER BY id").fetchall()
    assert rows == [("m1", "hello"), ("m2", "edited"), ("m3", "x")]


def test_removed_messages_stay_flagged_and_come_back_when_seen_again(con):
    mail.upsert_messages(con, [message("m1"), message("m2")])

    assert mail.mark_removed(con, "shared@example.com", "archive", ["m1"]) == 0
    assert mail.mark_removed(con, "shared@example.com", "inbox", ["m1", "m1", "unknown"]) == 1
    assert mail.mark_removed(con, "shared@example.com", "inbox", ["m1"]) == 0
    assert [m.id for m in mail.messages_received_on(con, "shared@example.com", DAY)] == ["m2"]

    mail.upsert_messages(con, [message("m1")])
    assert len(mail.messages_received_on(con, "shared@example.com", DAY)) == 2


def test_a_sync_from_scratch_flags_what_it_did_not_list(con):
    mail.upsert_messages(con, [message("m1"), message("m2"), message("m3")])

    assert mail.mark_unseen_removed(con, "shared@example.com", "inbox", ["m2"]) == 2
    assert [m.id for m in mail.messages_received_on(con, "shared@example.com", DAY)] == ["m2"]


def test_sync_state_is_replaced_and_cleared(con):
    mail.set_sync_state(con, "mb", "inbox", "delta_link", "one")
    mail.set_sync_state(con, "mb", "inbox", "delta_link", "two")
    assert mail.get_sync_state(con, "mb", "inbox", "delta_link") == "two"
    assert mail.get_sync_state(con, "mb", "archive", "delta_link") is None

    mail.set_sync_state(con, "mb", "inbox", "delta_link", None)
    assert mail.get_sync_state(con, "mb", "inbox", "delta_link") is None


def attachment(aid: str, decision: str = KEPT, sha: str | None = "ab" * 32) -> mail.AttachmentRow:
    return mail.AttachmentRow(
        message_id="m1",
        attachment_id=aid,
        parent_attachment_id=None,
        name=f"{aid}.csv",
        content_type="text/csv",
        detected_type="csv",
        size=10,
        kind="file",
        is_inline=False,
        decision=decision,
        reason="allowed type csv",
        sha256=sha,
        path=f"2026/11/30/{aid}.csv" if decision == KEPT else None,
        source_url=None,
        received_date=DAY,
    )


def test_replacing_a_date_leaves_exactly_the_new_rows(con):
    mail.replace_attachments_for_date(con, DAY, [attachment("a1"), attachment("a2")])
    mail.replace_attachments_for_date(con, DAY, [attachment("a2", SKIPPED, None)])

    rows = mail.attachments_for_date(con, DAY)
    assert [(r.attachment_id, r.decision) for r in rows] == [("a2", SKIPPED)]
    assert mail.path_for_sha256(con, "ab" * 32) is None


def test_a_failed_replacement_keeps_the_previous_rows(con):
    mail.replace_attachments_for_date(con, DAY, [attachment("a1")])
    broken = attachment("a2")
    broken = mail.AttachmentRow(**{**broken.__dict__, "kind": None})  # violates NOT NULL

    with pytest.raises(duckdb.ConstraintException):
        mail.replace_attachments_for_date(con, DAY, [attachment("a3"), broken])

    assert [r.attachment_id for r in mail.attachments_for_date(con, DAY)] == ["a1"]


def test_recurring_content_is_counted_by_distinct_message(con):
    rows = [attachment("a1"), attachment("a2")]
    other = mail.AttachmentRow(**{**attachment("a3").__dict__, "message_id": "m2"})
    mail.replace_attachments_for_date(con, DAY, [*rows, other])

    assert mail.inline_image_counts(con, ["ab" * 32, "cd" * 32]) == {"ab" * 32: 2}
    assert mail.path_for_sha256(con, "ab" * 32) == "2026/11/30/a1.csv"
