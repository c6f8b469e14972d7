import datetime
import hashlib
import os

import dagster as dg

from o365_assets.defs.assets import attachment_files
from o365_assets.defs.partitions import received_date_partitions_def
from o365_assets.emulator.control import EmulatorControl
from o365_assets.store.schema import KEPT
from o365_assets_tests.defs.conftest import build_pipeline

IMAGE_TYPES = ("png", "jpg", "gif", "bmp", "tiff", "webp", "svg", "ico")


def check_results(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {
        evaluation.check_name: evaluation.passed
        for evaluation in result.get_asset_check_evaluations()
    }


def materializations(
    result: dg.ExecuteInProcessResult, asset: str
) -> list[dg.AssetMaterialization]:
    return result.asset_materializations_for_node(asset)


def test_the_whole_pipeline_stores_what_the_mailbox_holds(pipeline):
    index = pipeline.run("index_job")
    assert index.success
    assert check_results(index) == {"message_index_unique_ids": True}

    dates = pipeline.dates_with_mail()
    assert dates, "the demo mailbox spreads mail over several days"
    for key in dates:
        result = pipeline.run("partition_job", key)
        assert result.success, key
        assert all(check_results(result).values()), check_results(result)

    # The pipeline reads the inbox (the default O365_FOLDERS); the demo mailbox has more.
    records = [r for r in pipeline.control.records() if r["folder"].lower() == "inbox"]
    indexed = {row[0] for row in pipeline.query("SELECT id FROM mail.messages")}
    assert {r["message_id"] for r in records} <= indexed

    kept = pipeline.query(
        "SELECT message_id, attachment_id, sha256, path, detected_type FROM mail.attachments "
        "WHERE decision = ?",
        [KEPT],
    )
    assert kept
    assert not [row for row in kept if row[4] in IMAGE_TYPES]
    store_root = pipeline.data_dir / "attachments"
    for _, _, sha256, path, _ in kept:
        assert hashlib.sha256((store_root / path).read_bytes()).hexdigest() == sha256

    # Every file attachment Graph lists was judged, and what was kept is byte-identical to
    # what the mailbox holds.
    by_id = {(r["message_id"], r["attachment_id"]): r for r in records if r["depth"] == 0}
    rows = pipeline.query(
        "SELECT message_id, attachment_id, decision, sha256, kind FROM mail.attachments "
        "WHERE parent_attachment_id IS NULL"
    )
    assert {(m, a) for m, a, *_ in rows} == set(by_id)
    for message_id, attachment_id, decision, sha256, kind in rows:
        if decision == KEPT and kind == "file":
            assert sha256 == by_id[(message_id, attachment_id)]["sha256"]

    # Attachments of attached messages were unpacked and judged too.
    nested = [r for r in records if r["depth"] > 0 and r["expected_type"] in ("csv", "pdf", "xlsx")]
    kept_hashes = {row[2] for row in kept}
    assert nested and all(r["sha256"] in kept_hashes for r in nested)

    staged = pipeline.query("SELECT count(*) FROM mail.parse_log WHERE status = 'staged'")[0][0]
    documents = pipeline.query("SELECT count(*) FROM staging.documents")[0][0]
    assert staged > 0 and documents > 0


def test_rematerialising_a_partition_downloads_and_duplicates_nothing(pipeline):
    assert pipeline.run("index_job").success
    key = max(pipeline.dates_with_mail(), key=lambda d: _attachments_on(pipeline, d))
    first = pipeline.run("partition_job", key)
    before = pipeline.query("SELECT * EXCLUDE (decided_at) FROM mail.attachments ORDER BY ALL")
    staged_before = pipeline.query("SELECT status, rows FROM mail.parse_log ORDER BY ALL")
    pipeline.control.reset_stats()

    second = pipeline.run("partition_job", key)

    assert first.success and second.success
    metadata = materializations(second, "attachment_files")[0].metadata
    assert metadata["downloaded"].value == 0
    assert metadata["reused"].value == metadata["kept"].value > 0
    assert (
        pipeline.query("SELECT * EXCLUDE (decided_at) FROM mail.attachments ORDER BY ALL") == before
    )
    assert pipeline.query("SELECT status, rows FROM mail.parse_log ORDER BY ALL") == staged_before
    # Graph saw the listing only: the folder, one page of the day's messages with their
    # attachments, and for a message with a link its attachments again plus the link's
    # details. No download.
    links, link_messages = pipeline.query(
        "SELECT count(*), count(DISTINCT message_id) FROM mail.attachments "
        "WHERE received_date = ? AND kind = 'reference'",
        [key],
    )[0]
    assert pipeline.control.stats()["totals"]["requests"] == 2 + link_messages + links


def test_a_missing_or_damaged_file_is_fetched_again(pipeline):
    assert pipeline.run("index_job").success
    key = max(pipeline.dates_with_mail(), key=lambda d: _attachments_on(pipeline, d))
    assert pipeline.run("partition_job", key).success
    paths = [
        row[0]
        for row in pipeline.query(
            "SELECT DISTINCT path FROM mail.attachments WHERE received_date = ? AND decision = ? "
            "ORDER BY path",
            [key, KEPT],
        )
    ]
    root = pipeline.data_dir / "attachments"
    (root / paths[0]).unlink()
    (root / paths[-1]).write_bytes(b"damaged")

    result = pipeline.run("partition_job", key)

    assert result.success
    assert all(check_results(result).values())
    metadata = materializations(result, "attachment_files")[0].metadata
    assert metadata["downloaded"].value == 2
    # Repaired where they were: every row that named those files is whole again.
    after = pipeline.query(
        "SELECT DISTINCT path FROM mail.attachments WHERE received_date = ? AND decision = ? "
        "ORDER BY path",
        [key, KEPT],
    )
    assert [row[0] for row in after] == paths


def test_the_partitions_cover_every_day_with_mail_including_today(pipeline):
    assert pipeline.run("index_job").success
    keys = set(received_date_partitions_def.get_partition_keys())

    assert set(pipeline.dates_with_mail()) <= keys
    assert attachment_files.partitions_def == received_date_partitions_def


def _attachments_on(pipeline, key: str) -> int:
    return pipeline.query(
        "SELECT count(*) FROM mail.messages WHERE received_date = ? AND has_attachments", [key]
    )[0][0]


def test_images_shown_in_the_body_stay_out_even_when_the_rules_keep_images(make_emulator, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("keep_types: [csv, png]\n")
    emu = make_emulator(mail={"messages": 24, "days": 4, "large_attachment_bytes": 0})
    photo = b"\x89PNG\r\n\x1a\n" + os.urandom(3000)
    EmulatorControl(emu.info).add_message(
        subject="Site photo",
        received=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=2),
        attachments=[EmulatorControl.file("site.png", photo, "image/png")],
    )

    with dg.instance_for_test() as instance:
        pipeline = build_pipeline(emu.info, tmp_path / "data", instance, rules)
        assert pipeline.run("index_job").success
        for key in pipeline.dates_with_mail():
            assert pipeline.run("partition_job", key).success
        rows = pipeline.query(
            "SELECT name, is_inline, decision, reason FROM mail.attachments "
            "WHERE detected_type = 'png' OR name LIKE '%.png'"
        )
        pipeline.control.close()

    by_reason = {(name, reason) for name, _, _, reason in rows}
    assert ("site.png", "type png allowed") in by_reason
    assert ("logo.png", "image shown in the message body (cid:)") in by_reason
    assert ("logo.png", "inline image") in by_reason
    assert all(decision != KEPT for name, _, decision, _ in rows if name != "site.png")
