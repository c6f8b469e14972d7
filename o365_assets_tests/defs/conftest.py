"""A whole pipeline per test: an emulator over HTTPS, a DuckDB file and a file store in
`tmp_path`, and the project's own asset, sensor and job definitions wired to them."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from o365_assets.defs.assets import attachment_files, message_index, parsed_staging, token
from o365_assets.defs.automation import daily_reconciliation, new_mail_sensor
from o365_assets.defs.jobs import index_job, ingest_job, partition_job
from o365_assets.defs.resources import (
    FileStoreResource,
    GraphResource,
    MailDatabaseResource,
    RulesResource,
)
from o365_assets.emulator.control import EmulatorControl


@dataclass
class Pipeline:
    defs: dg.Definitions
    instance: dg.DagsterInstance
    resources: dict[str, Any]
    control: EmulatorControl
    info: dict[str, Any]
    data_dir: Path

    @property
    def database(self) -> Path:
        return self.data_dir / "o365.duckdb"

    def run(self, job: str, partition_key: str | None = None) -> dg.ExecuteInProcessResult:
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=self.instance, partition_key=partition_key, raise_on_error=False
        )

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.database), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def dates_with_mail(self) -> list[str]:
        return [
            row[0].isoformat()
            for row in self.query(
                "SELECT DISTINCT received_date FROM mail.messages WHERE NOT removed ORDER BY 1"
            )
        ]


def graph_resource(info: dict[str, Any], data_dir: Path) -> GraphResource:
    return GraphResource(
        tenant_id=info["tenant_id"],
        client_id=info["client_id"],
        client_secret=info["client_secret"],
        mailbox=info["mailbox"],
        authority_host=info["base_url"],
        graph_endpoint=info["base_url"],
        ca_bundle=info["ca_path"],
        data_dir=str(data_dir),
    )


def build_pipeline(
    info: dict[str, Any],
    data_dir: Path,
    instance: dg.DagsterInstance,
    rules_path: Path | None = None,
) -> Pipeline:
    resources: dict[str, Any] = {
        "graph": graph_resource(info, data_dir),
        "duckdb": MailDatabaseResource(database=str(data_dir / "o365.duckdb")),
        "files": FileStoreResource(data_dir=str(data_dir)),
        "rules": RulesResource(path=str(rules_path) if rules_path else None),
    }
    defs = dg.Definitions(
        assets=[token, message_index, attachment_files, parsed_staging],
        jobs=[ingest_job, index_job, partition_job],
        sensors=[new_mail_sensor],
        schedules=[daily_reconciliation],
        resources=resources,
    )
    return Pipeline(defs, instance, resources, EmulatorControl(info), info, data_dir)


@pytest.fixture
def pipeline(make_emulator, tmp_path: Path) -> Iterator[Pipeline]:
    emu = make_emulator(mail={"messages": 24, "days": 4, "large_attachment_bytes": 2_000_000})
    with dg.instance_for_test() as instance:
        built = build_pipeline(emu.info, tmp_path / "data", instance)
        yield built
        built.control.close()
