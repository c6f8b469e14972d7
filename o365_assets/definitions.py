"""The one `Definitions` object of the o365_assets code location."""

import dagster as dg

from o365_assets.defs.assets import attachment_files, message_index, parsed_staging, token
from o365_assets.defs.automation import daily_reconciliation, new_mail_sensor
from o365_assets.defs.jobs import index_job, ingest_job, partition_job
from o365_assets.defs.resources import build_resources

defs = dg.Definitions(
    assets=[token, message_index, attachment_files, parsed_staging],
    jobs=[ingest_job, index_job, partition_job],
    sensors=[new_mail_sensor],
    schedules=[daily_reconciliation],
    resources=build_resources(),
)
