import dagster as dg

from o365_assets.defs.assets import attachment_files, message_index, parsed_staging, token

# Refresh the index, then collect and stage one received date: what the sensor and the daily
# reconciliation ask for.
ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=[token, message_index, attachment_files, parsed_staging],
    description="Sync the message index, then collect and stage one received date.",
)

# The unpartitioned head of the graph alone, for the headless run before its partitions.
index_job = dg.define_asset_job(
    "index_job",
    selection=[token, message_index],
    description="Check the credential and sync the message index.",
)

# Collect and stage one received date from the index as it stands (backfills use this shape).
partition_job = dg.define_asset_job(
    "partition_job",
    selection=[attachment_files, parsed_staging],
    description="Collect and stage one received date from the current index.",
)
