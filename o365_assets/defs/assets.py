import dagster as dg

from o365_assets.defs.partitions import (
    partition_date,
    partition_timezone,
    received_date_partitions_def,
)
from o365_assets.defs.render import markdown_table, table_schema
from o365_assets.defs.resources import (
    FileStoreResource,
    GraphResource,
    MailDatabaseResource,
    RulesResource,
)
from o365_assets.store.schema import ensure_schema

# The pipeline's layers (msal, parsers, detectors) are imported inside the assets: loading the
# definitions, which the UI, `dagster definitions validate` and every run do, stays quick.

GRAPH_POOL = "graph"
DUCKDB_POOL = "duckdb"


@dg.asset(pool=GRAPH_POOL, group_name="mailbox")
def token(context: dg.AssetExecutionContext, graph: GraphResource) -> dg.MaterializeResult:
    """Proof that the configured credential signs in and can open the shared mailbox: auth mode,
    tenant, granted roles or scopes and expiry. The token itself is never stored."""
    if graph.is_demo:
        context.log.warning("No tenant configured: this run reads DEMO DATA from the emulator.")

    with graph.client() as client:
        facts = client.credential_facts()
        access = client.check_access(graph.settings().mailbox)

    context.log.info(
        "Credential %s for tenant %s works; mailbox %s reachable (%s items in %s)",
        facts.auth_mode,
        facts.tenant_id,
        access.mailbox,
        access.total_items,
        access.folder_name,
    )
    return dg.MaterializeResult(
        metadata={
            **facts.as_metadata(),
            "expires_at": dg.MetadataValue.timestamp(facts.expires_at),
            "mailbox": access.mailbox,
            "demo": graph.is_demo,
        }
    )


@dg.asset(
    deps=[token],
    pool=DUCKDB_POOL,
    group_name="mailbox",
    check_specs=[
        dg.AssetCheckSpec("message_index_unique_ids", asset="message_index", blocking=True)
    ],
)
def message_index(
    context: dg.AssetExecutionContext, graph: GraphResource, duckdb: MailDatabaseResource
) -> dg.MaterializeResult:
    """Every message of the shared mailbox's folders, kept current by Graph delta queries in
    `mail.messages`; messages gone from the mailbox stay, flagged `removed`."""
    from o365_assets.ingest.checks import unique_message_ids
    from o365_assets.ingest.index import sync_index

    settings = graph.settings()

    with graph.client() as client, duckdb.get_connection() as con:
        ensure_schema(con)
        report = sync_index(
            client, con, settings.mailbox, graph.folder_names(), partition_timezone()
        )
        preview = con.execute(
            "SELECT received_at, sender, subject, has_attachments FROM mail.messages "
            "WHERE mailbox = ? AND NOT removed ORDER BY received_at DESC LIMIT 5",
            [settings.mailbox],
        ).fetchall()
        total = con.execute(
            "SELECT count(*) FROM mail.messages WHERE mailbox = ? AND NOT removed",
            [settings.mailbox],
        ).fetchone()
        unique_ok, unique_detail = unique_message_ids(con)

    for folder in report.resynced_folders:
        context.log.warning("Graph asked for a full resync of folder %s; done", folder)
    context.log.info(
        "Indexed %s: %d new, %d changed, %d removed, %d delta pages",
        settings.mailbox,
        report.new,
        report.changed,
        report.removed,
        report.pages,
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": int(total[0]) if total else 0,
            "dagster/column_schema": table_schema("mail.messages"),
            "new": report.new,
            "changed": report.changed,
            "removed": report.removed,
            "resynced_folders": ", ".join(report.resynced_folders) or "none",
            "preview": dg.MetadataValue.md(
                markdown_table(["received", "sender", "subject", "attachments"], preview)
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="message_index_unique_ids",
                passed=unique_ok,
                metadata={"detail": unique_detail},
            )
        ],
    )


@dg.asset(
    deps=[message_index],
    partitions_def=received_date_partitions_def,
    pool=DUCKDB_POOL,
    group_name="attachments",
    check_specs=[
        dg.AssetCheckSpec("attachment_files_intact", asset="attachment_files", blocking=True),
        dg.AssetCheckSpec("attachment_files_accounted", asset="attachment_files", blocking=True),
    ],
)
def attachment_files(
    context: dg.AssetExecutionContext,
    graph: GraphResource,
    duckdb: MailDatabaseResource,
    files: FileStoreResource,
    rules: RulesResource,
) -> dg.MaterializeResult:
    """The attachments worth keeping from the mail received on this day, as files under
    `attachments/YYYY/MM/DD/`, and a row in `mail.attachments` for every attachment seen with
    what was decided (kept, skipped, quarantined) and why."""
    from o365_assets.ingest.attachments import collect_partition
    from o365_assets.ingest.checks import attachment_checks

    day = partition_date(context)
    settings = graph.settings()
    store = files.store()

    with graph.client() as client, duckdb.get_connection() as con:
        ensure_schema(con)
        report = collect_partition(
            client, con, store, rules.rules(), settings.mailbox, day, partition_timezone()
        )
        checks = attachment_checks(con, store, day)

    for problem in report.problems:
        context.log.warning("%s", problem)
    context.log.info(
        "Partition %s: %d messages, %d attachments seen, %d kept (%d downloaded, %d reused), "
        "%d skipped, %d quarantined",
        day,
        report.messages,
        report.seen,
        report.kept,
        report.downloaded,
        report.reused,
        report.skipped,
        report.quarantined,
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.seen,
            "dagster/column_schema": table_schema("mail.attachments"),
            "kept": report.kept,
            "downloaded": report.downloaded,
            "reused": report.reused,
            "skipped": report.skipped,
            "quarantined": report.quarantined,
            "bytes_written": report.bytes_written,
            "reasons": dg.MetadataValue.md(
                markdown_table(["decision", "reason", "count"], report.reason_counts())
            ),
            "folder": dg.MetadataValue.path(f"{store.root}/{day:%Y/%m/%d}"),
        },
        check_results=[
            dg.AssetCheckResult(check_name=name, passed=ok, metadata={"detail": detail})
            for name, (ok, detail) in checks.items()
        ],
    )


@dg.asset(
    deps=[attachment_files],
    partitions_def=received_date_partitions_def,
    pool=DUCKDB_POOL,
    group_name="staging",
    check_specs=[
        dg.AssetCheckSpec("parsed_staging_lineage", asset="parsed_staging", blocking=True),
        dg.AssetCheckSpec("parsed_staging_not_all_failed", asset="parsed_staging", blocking=True),
        dg.AssetCheckSpec("parsed_staging_failures", asset="parsed_staging", blocking=False),
    ],
)
def parsed_staging(
    context: dg.AssetExecutionContext,
    duckdb: MailDatabaseResource,
    files: FileStoreResource,
    rules: RulesResource,
) -> dg.MaterializeResult:
    """The contents of this day's kept attachments as rows of `staging.*` tables: tables from
    spreadsheets, CSV and JSON routed by rule or by file name, documents as text rows in
    `staging.documents`; every row traces back to its message and attachment. Reads only the
    stored files: restaging needs no Graph call."""
    from o365_assets.ingest.checks import staging_checks
    from o365_assets.ingest.staging import staging_sources
    from o365_assets.parsing import STAGED, stage_partition

    day = partition_date(context)
    store = files.store()

    with duckdb.get_connection() as con:
        ensure_schema(con)
        sources = staging_sources(con, store, day)
        report = stage_partition(con, day, sources, rules.rules().routes)
        checks = staging_checks(con, day)

    for change in report.schema_changes:
        context.log.info(
            "Schema change in %s: %s %s (%s -> %s)",
            change.table,
            change.change,
            change.column or "",
            change.old_type or "",
            change.new_type or "",
        )
    for outcome in report.files:
        if outcome.status != STAGED:
            context.log.warning(
                "%r not staged (%s): %s", outcome.source_name, outcome.status, outcome.error
            )
    context.log.info(
        "Partition %s: %d files staged, %d failed, %d quarantined, %d rows in %d tables",
        day,
        report.staged,
        report.failed,
        report.quarantined,
        report.rows,
        len(report.rows_per_table),
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": report.rows,
            "staged_files": report.staged,
            "failed_files": report.failed,
            "quarantined_files": report.quarantined,
            "rows_per_table": dg.MetadataValue.md(
                markdown_table(["table", "rows"], sorted(report.rows_per_table.items()))
            ),
            "schema_changes": dg.MetadataValue.md(
                markdown_table(
                    ["table", "column", "change", "from", "to", "file"],
                    [
                        (c.table, c.column, c.change, c.old_type, c.new_type, c.source_name)
                        for c in report.schema_changes
                    ],
                )
            ),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=name,
                passed=ok,
                severity=dg.AssetCheckSeverity.WARN
                if name == "parsed_staging_failures"
                else dg.AssetCheckSeverity.ERROR,
                metadata={"detail": detail},
            )
            for name, (ok, detail) in checks.items()
        ],
    )
