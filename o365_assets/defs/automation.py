import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from o365_assets.defs.jobs import ingest_job
from o365_assets.defs.partitions import partition_timezone, received_date_partitions_def
from o365_assets.defs.resources import GraphResource
from o365_assets.ingest import newmail


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_mail_sensor(context: dg.SensorEvaluationContext, graph: GraphResource) -> dg.SensorResult:
    """Asks Graph, with one small request per folder, for mail received since the last tick and
    requests an ingest run for each received date it touches. Never opens DuckDB."""
    from o365_assets.graph.client import WELL_KNOWN_FOLDERS

    now = datetime.datetime.now(datetime.UTC)
    since = newmail.query_since(context.cursor, now)

    mailbox = graph.settings().mailbox
    arrived: list[tuple[str, datetime.datetime]] = []
    truncated = False
    with graph.client() as client:
        for name in graph.folder_names():
            folder = (
                name
                if name.lower() in WELL_KNOWN_FOLDERS
                else client.resolve_folder(mailbox, name).id
            )
            found = client.new_mail_since(mailbox, folder, since)
            arrived.extend((message.id, message.received_at) for message in found.messages)
            truncated = truncated or found.more

    plan = newmail.plan(context.cursor, arrived, partition_timezone(), now, truncated)
    valid = set(received_date_partitions_def.get_partition_keys())
    keys = [day.isoformat() for day in plan.dates if day.isoformat() in valid]
    context.log.info(
        "%d new messages since %s; requesting %s", len(plan.new_ids), since.isoformat(), keys
    )
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(partition_key=key, run_key=f"{key}:{plan.digest}") for key in keys
        ],
        cursor=plan.cursor,
    )


@dg.schedule(
    job=ingest_job,
    cron_schedule="0 3 * * *",
    execution_timezone=partition_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def daily_reconciliation(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    """Every night, re-sync the index and collect yesterday again: late mail, moved mail and any
    file that went missing are put right."""
    tz = ZoneInfo(partition_timezone())
    scheduled = context.scheduled_execution_time or datetime.datetime.now(tz)
    yesterday = scheduled.astimezone(tz).date() - datetime.timedelta(days=1)
    return dg.RunRequest(partition_key=yesterday.isoformat(), run_key=yesterday.isoformat())
