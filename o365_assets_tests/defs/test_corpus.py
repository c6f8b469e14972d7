"""Every real-world message of the shared corpus through the whole pipeline: indexed, every
attachment judged and accounted for, nothing crashing a run."""

import dagster as dg

from o365_assets_tests.defs.conftest import build_pipeline
from o365_assets_tests.defs.test_assets import check_results


def test_the_real_world_corpus_goes_through_the_whole_pipeline(make_emulator, corpus_eml, tmp_path):
    files = sorted(corpus_eml.glob("*.eml"))
    emu = make_emulator(mail={"messages": 0, "days": 3, "eml_dir": str(corpus_eml)})

    with dg.instance_for_test() as instance:
        pipeline = build_pipeline(emu.info, tmp_path / "data", instance)
        assert pipeline.run("index_job").success
        for key in pipeline.dates_with_mail():
            result = pipeline.run("partition_job", key)
            assert result.success, key
            checks = check_results(result)
            assert checks["attachment_files_intact"], key
            assert checks["attachment_files_accounted"], key
            assert checks["parsed_staging_lineage"], key

    indexed = pipeline.query("SELECT count(*) FROM mail.messages WHERE NOT removed")[0][0]
    assert indexed == len(files)

    # Every attachment Graph lists has exactly one row with a decision and a reason.
    listed = {
        (r["message_id"], r["attachment_id"]) for r in pipeline.control.records() if r["depth"] == 0
    }
    recorded = pipeline.query(
        "SELECT message_id, attachment_id, decision, reason FROM mail.attachments "
        "WHERE parent_attachment_id IS NULL"
    )
    assert {(m, a) for m, a, _, _ in recorded} == listed
    assert all(decision and reason for _, _, decision, reason in recorded)

    decisions = dict(pipeline.query("SELECT decision, count(*) FROM mail.attachments GROUP BY 1"))
    # The corpus holds executables in disguise and broken archives: some are quarantined,
    # and plenty of real documents are kept.
    assert decisions.get("quarantined", 0) > 0
    assert decisions.get("kept", 0) > 10
    pipeline.control.close()
