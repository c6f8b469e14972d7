"""`o365-assets run`: the whole pipeline, headless, into the local Dagster instance.

Runs are recorded in the instance, so `make dev` shows them afterwards in the UI.
"""

import datetime
import os
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import duckdb

from o365_assets.defs.partitions import received_date_partitions_def
from o365_assets.defs.resources import data_dir
from o365_assets.ingest.checks import qualified_staging_table


@dataclass
class RunSummary:
    ok: bool = True
    failures: list[str] = field(default_factory=list)
    partitions: int = 0
    messages: int = 0
    decisions: list[tuple[str, str, int]] = field(default_factory=list)
    staged_rows: list[tuple[str, int]] = field(default_factory=list)
    parse_status: list[tuple[str, int]] = field(default_factory=list)
    files_folder: str = ""
    database: str = ""
    demo: bool = False

    def render(self) -> str:
        lines = ["", "o365-assets run: " + ("done" if self.ok else "FAILED")]
        if self.demo:
            lines.append("  (demo data from the local emulator; set O365_TENANT_ID for real mail)")
        lines.append(f"  messages indexed:      {self.messages}")
        lines.append(f"  partitions processed:  {self.partitions}")
        lines.append("  attachments:")
        for decision, reason, count in self.decisions:
            lines.append(f"    {count:6d}  {decision:<12} {reason}")
        lines.append("  files parsed:")
        for status, count in self.parse_status:
            lines.append(f"    {count:6d}  {status}")
        lines.append("  staged rows:")
        for table, count in self.staged_rows:
            lines.append(f"    {count:8d}  {table}")
        lines.append(f"  files:     {self.files_folder}")
        lines.append(f"  database:  {self.database}")
        lines.extend(f"  failure: {failure}" for failure in self.failures)
        return "\n".join(lines)


def run_everything() -> RunSummary:
    """Check the credential, sync the index, then collect and stage every date that has mail."""
    from o365_assets.definitions import defs
    from o365_assets.demo import emulator_scope

    directory = Path(data_dir())
    summary = RunSummary(demo=not os.environ.get("O365_TENANT_ID"))
    instance = dg.DagsterInstance.get()

    with emulator_scope(directory):
        index = defs.resolve_job_def("index_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        if not index.success:
            summary.ok = False
            summary.failures.append("index_job failed; see `make dev` for the run's logs")
            return summary

        database = directory / "o365.duckdb"
        for day in _dates_with_mail(database):
            result = defs.resolve_job_def("partition_job").execute_in_process(
                instance=instance, partition_key=day.isoformat(), raise_on_error=False
            )
            summary.partitions += 1
            if not result.success:
                summary.ok = False
                summary.failures.append(f"partition {day} failed")
        _fill(summary, database, directory)
    return summary


def _dates_with_mail(database: Path) -> list[datetime.date]:
    valid = set(received_date_partitions_def.get_partition_keys())
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            "SELECT DISTINCT received_date FROM mail.messages "
            "WHERE NOT removed AND received_date IS NOT NULL ORDER BY 1"
        ).fetchall()
    return [row[0] for row in rows if row[0].isoformat() in valid]


def _fill(summary: RunSummary, database: Path, directory: Path) -> None:
    summary.database = str(database.resolve())
    summary.files_folder = str((directory / "attachments").resolve())
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute("SELECT count(*) FROM mail.messages WHERE NOT removed").fetchone()
        summary.messages = int(row[0]) if row else 0
        summary.decisions = [
            (str(d), str(r), int(n))
            for d, r, n in con.execute(
                "SELECT decision, reason, count(*) FROM mail.attachments "
                "GROUP BY ALL ORDER BY decision, count(*) DESC, reason"
            ).fetchall()
        ]
        summary.parse_status = [
            (str(s), int(n))
            for s, n in con.execute(
                "SELECT status, count(*) FROM mail.parse_log GROUP BY 1 ORDER BY 1"
            ).fetchall()
        ]
        tables = con.execute(
            "SELECT view_name FROM duckdb_views() WHERE schema_name = 'staging' ORDER BY 1"
        ).fetchall()
        for (table,) in tables:
            counted = con.execute(f"SELECT count(*) FROM {qualified_staging_table(table)}")
            summary.staged_rows.append((f"staging.{table}", int(counted.fetchone()[0])))
