import datetime
import os
from zoneinfo import ZoneInfo

import dagster as dg

DEFAULT_LOOKBACK_DAYS = 30


def partition_timezone() -> str:
    return os.environ.get("O365_TIMEZONE") or "UTC"


def _start_date() -> str:
    configured = os.environ.get("O365_START_DATE")
    if configured:
        return configured
    today = datetime.datetime.now(ZoneInfo(partition_timezone())).date()
    return (today - datetime.timedelta(days=DEFAULT_LOOKBACK_DAYS)).isoformat()


# One partition per day of received mail, in the mailbox's timezone; today's is open too, so
# that mail arriving now lands somewhere.
received_date_partitions_def = dg.DailyPartitionsDefinition(
    start_date=_start_date(), timezone=partition_timezone(), end_offset=1
)


def partition_date(context: dg.AssetExecutionContext) -> datetime.date:
    return datetime.date.fromisoformat(context.partition_key)
