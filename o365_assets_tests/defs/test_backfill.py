"""A backfill as the UI launches it: the daemon dequeues the runs, several run at once, and the
pools of `.dagster_home/dagster.yaml` keep DuckDB to one writer and Graph inside its limits."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from o365_assets.emulator import pipeline_env
from o365_assets.emulator.control import EmulatorControl

PROJECT = Path(__file__).resolve().parents[2]
DEFINITIONS = ["-m", "o365_assets.definitions"]


def dagster(env: dict[str, str], cwd: Path, *args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.timeout(900)
def test_a_backfill_of_every_day_completes_without_lock_errors_or_throttling(
    make_emulator, tmp_path
):
    emu = make_emulator(mail={"messages": 15, "days": 3, "large_attachment_bytes": 0})
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT / ".dagster_home" / "dagster.yaml", home / "dagster.yaml")
    data = tmp_path / "data"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("O365_")},
        **pipeline_env(emu.info),
        "O365_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
    }
    dagster(env, tmp_path, "asset", "materialize", *DEFINITIONS, "--select", "token,message_index")
    with duckdb.connect(str(data / "o365.duckdb"), read_only=True) as con:
        keys = [
            row[0].isoformat()
            for row in con.execute(
                "SELECT DISTINCT received_date FROM mail.messages ORDER BY 1"
            ).fetchall()
        ]
    assert len(keys) >= 3

    daemon = subprocess.Popen(
        [sys.executable, "-m", "dagster._daemon", "run", *DEFINITIONS],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        dagster(
            env,
            tmp_path,
            "job",
            "backfill",
            *DEFINITIONS,
            "-j",
            "partition_job",
            "--partitions",
            ",".join(keys),
            "--noprompt",
        )
        runs = wait_for_runs(home, len(keys), timeout=840)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)

    assert [run.status for run in runs] == [dg.DagsterRunStatus.SUCCESS] * len(keys)
    assert sorted(run.tags["dagster/partition"] for run in runs) == keys
    with EmulatorControl(emu.info) as control:
        assert control.stats()["totals"]["throttled"] == 0
    with duckdb.connect(str(data / "o365.duckdb"), read_only=True) as con:
        days = con.execute("SELECT count(DISTINCT received_date) FROM mail.attachments").fetchone()
    assert days == (len(keys),)


def wait_for_runs(home: Path, count: int, timeout: float) -> list[dg.DagsterRun]:
    """The backfill's runs once every run is over; the sensor, running by default under the
    daemon, may have asked for runs of its own meanwhile, which must finish too."""
    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            runs = instance.get_runs()
            backfill = [run for run in runs if run.job_name == "partition_job"]
            if len(backfill) >= count and all(run.is_finished for run in runs):
                return backfill
            assert time.monotonic() < deadline, [(r.job_name, r.status) for r in runs]
            time.sleep(1)
