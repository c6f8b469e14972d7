import datetime
import json

import dagster as dg

from o365_assets.defs.automation import daily_reconciliation, new_mail_sensor
from o365_assets.emulator.control import EmulatorControl


def high_water(cursor: str | None) -> datetime.datetime:
    assert cursor is not None
    return datetime.datetime.fromisoformat(json.loads(cursor)["high_water"])


def tick(pipeline, cursor: str | None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        cursor=cursor,
        instance=pipeline.instance,
        resources={"graph": pipeline.resources["graph"]},
    )
    result = new_mail_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_the_sensor_requests_new_mail_once_and_then_what_arrives(pipeline):
    first = tick(pipeline, None)
    second = tick(pipeline, first.cursor)

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    assert today in [r.partition_key for r in first.run_requests]
    assert second.run_requests == []
    assert first.cursor is not None and second.cursor is not None

    pipeline.control.add_message(
        subject="Late invoice",
        received=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1),
        attachments=[EmulatorControl.file("invoice.csv", b"id,total\n1,9.50\n", "text/csv")],
    )
    third = tick(pipeline, second.cursor)

    assert [r.partition_key for r in third.run_requests] == [today]
    assert high_water(third.cursor) > high_water(second.cursor)
    assert third.run_requests[0].run_key != first.run_requests[-1].run_key
    assert tick(pipeline, third.cursor).run_requests == []


def test_a_requested_run_brings_the_new_mail_into_the_index_and_the_store(pipeline):
    first = tick(pipeline, None)
    pipeline.control.add_message(
        subject="Report",
        received=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1),
        attachments=[EmulatorControl.file("report.csv", b"a,b\n1,2\n", "text/csv")],
    )
    (request,) = tick(pipeline, first.cursor).run_requests

    result = pipeline.run("ingest_job", request.partition_key)

    assert result.success
    names = [row[0] for row in pipeline.query("SELECT name FROM mail.attachments")]
    assert "report.csv" in names
    assert pipeline.query("SELECT count(*) FROM staging.report")[0][0] == 1


def test_the_nightly_run_reconciles_yesterday():
    scheduled = datetime.datetime(2026, 12, 3, 3, 0, tzinfo=datetime.UTC)
    context = dg.build_schedule_context(scheduled_execution_time=scheduled)

    request = daily_reconciliation(context)

    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-12-02"
