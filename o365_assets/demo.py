"""Demo mode: with no tenant configured, the pipeline runs against the local emulator.

This module and the CLI are the only parts of the pipeline that import the emulator.
"""

import logging
import os
import signal
import ssl
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from o365_assets.emulator import EmulatorConfig, EmulatorProcess, pipeline_env, read_info
from o365_assets.emulator.server import pid_alive

log = logging.getLogger(__name__)


def emulator_state_dir(data_dir: Path) -> Path:
    return data_dir / "emulator"


def running_emulator(data_dir: Path) -> dict[str, Any] | None:
    """The emulator this data folder already started, if it still answers."""
    info = read_info(emulator_state_dir(data_dir))
    if info is None or not pid_alive(int(info.get("pid", 0))):
        return None
    context = ssl.create_default_context(cafile=info["ca_path"])
    try:
        with urllib.request.urlopen(  # noqa: S310 - a fixed https URL on loopback
            f"{info['base_url']}/_health", context=context, timeout=5
        ) as reply:
            return info if reply.status == 200 else None
    except OSError:
        return None


def ensure_emulator(data_dir: Path) -> dict[str, Any]:
    """Reuse the demo emulator of this data folder, or start one that outlives this process.

    Dagster runs each step in its own process, so the emulator runs detached and later steps,
    runs and the sensor find it again through `emulator.json`.
    """
    info = running_emulator(data_dir)
    if info is not None:
        return info
    config = EmulatorConfig(state_dir=emulator_state_dir(data_dir))
    process = EmulatorProcess(config, detach=True).start()
    log.warning(
        "O365_TENANT_ID is not set: using DEMO DATA from the local emulator at %s (pid %s). "
        "Set the O365_* variables to read a real mailbox.",
        process.info["base_url"],
        process.pid,
    )
    return process.info


def stop_emulator(data_dir: Path) -> None:
    """Stop the demo emulator of this data folder, if one runs."""
    info = running_emulator(data_dir)
    if info is not None:
        os.kill(int(info["pid"]), signal.SIGTERM)


@contextmanager
def emulator_scope(data_dir: Path) -> Iterator[None]:
    """Leave things as found: a demo emulator started inside the block is stopped after it."""
    was_running = running_emulator(data_dir) is not None
    try:
        yield
    finally:
        if not was_running:
            stop_emulator(data_dir)


def demo_env(data_dir: Path) -> dict[str, str]:
    """The `O365_*` settings of the demo emulator, starting it if needed."""
    return pipeline_env(ensure_emulator(data_dir))
