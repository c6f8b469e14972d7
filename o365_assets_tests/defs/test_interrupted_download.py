"""A materialisation killed in the middle of a large download, then run again, as a user's
machine would see it: the `dagster` command line, a real instance, SIGKILL."""

import datetime
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from o365_assets.emulator import pipeline_env
from o365_assets.emulator.control import EmulatorControl
from o365_assets.store.schema import KEPT

LARGE = 40_000_000
BANDWIDTH = 4_000_000


def materialize(env: dict[str, str], cwd: Path, select: str, partition: str | None = None):
    command = [
        sys.executable,
        "-m",
        "dagster",
        "asset",
        "materialize",
        "-m",
        "o365_assets.definitions",
        "--select",
        select,
    ]
    if partition:
        command += ["--partition", partition]
    return subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(process: subprocess.Popen, timeout: float = 240) -> None:
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr.decode(errors="replace")[-3000:]


def test_a_killed_download_leaves_no_partial_file_and_the_rerun_completes(make_emulator, tmp_path):
    emu = make_emulator(mail={"messages": 3, "days": 1, "large_attachment_bytes": 0})
    control = EmulatorControl(emu.info)
    now = datetime.datetime.now(datetime.UTC)
    added = control.add_message(
        subject="Month-end ledger",
        received=now - datetime.timedelta(minutes=5),
        attachments=[EmulatorControl.generated("large", name="ledger.csv", size=LARGE)],
    )
    today = (now - datetime.timedelta(minutes=5)).date().isoformat()

    data = tmp_path / "data"
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {
        **os.environ,
        **pipeline_env(emu.info),
        "O365_DATA_DIR": str(data),
        "DAGSTER_HOME": str(home),
    }
    finish(materialize(env, tmp_path, "token,message_index"))

    control.set_faults(bandwidth_bytes_per_s=BANDWIDTH)
    partial = data / "attachments" / ".partial"
    process = materialize(env, tmp_path, "attachment_files", today)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size > 5_000_000 for p in partial.glob("*.part")):
        assert process.poll() is None, "the run ended before the download was under way"
        assert time.monotonic() < deadline, "the large download never started"
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)

    day_folder = data / "attachments" / today.replace("-", "/")
    assert list(partial.glob("*.part")), "the killed run left its temporary file"
    assert not (day_folder / "ledger.csv").exists(), "no partial file under a final name"

    control.set_faults(bandwidth_bytes_per_s=None)
    finish(materialize(env, tmp_path, "attachment_files", today))

    assert not list(partial.glob("*.part"))
    records = {r["attachment_id"]: r for r in control.records()}
    (attachment,) = added["attachments"]
    with duckdb.connect(str(data / "o365.duckdb"), read_only=True) as con:
        kept = con.execute(
            "SELECT attachment_id, path, sha256 FROM mail.attachments "
            "WHERE received_date = ? AND decision = ?",
            [today, KEPT],
        ).fetchall()
    assert attachment["attachment_id"] in {row[0] for row in kept}
    for attachment_id, path, sha256 in kept:
        assert _sha256(data / "attachments" / path) == sha256
        if attachment_id in records and records[attachment_id]["kind"] == "file":
            assert sha256 == records[attachment_id]["sha256"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
