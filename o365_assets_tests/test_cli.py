"""The `o365-assets` command as a user runs it, against emulators over HTTPS."""

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from o365_assets.emulator import pipeline_env
from o365_assets.emulator.entra_browser import EmulatorBrowser

COMMAND = [sys.executable, "-m", "o365_assets.cli"]


def environment(info: dict, data_dir: Path, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("O365_")}
    return {**env, **pipeline_env(info), "O365_DATA_DIR": str(data_dir), **overrides}


def test_doctor_passes_for_a_granted_app_and_names_the_missing_grant_otherwise(emulator, tmp_path):
    granted = subprocess.run(
        [*COMMAND, "doctor"],
        env=environment(emulator.info, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    refused = subprocess.run(
        [*COMMAND, "doctor"],
        env=environment(
            emulator.info,
            tmp_path,
            O365_CLIENT_ID=emulator.info["unscoped_client_id"],
            O365_CLIENT_SECRET=emulator.info["unscoped_client_secret"],
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert granted.returncode == 0, granted.stdout + granted.stderr
    assert "[ok ] mailbox" in granted.stdout
    assert refused.returncode == 1
    mailbox_line = next(line for line in refused.stdout.splitlines() if "] mailbox" in line)
    assert mailbox_line.startswith("[FAIL]")
    assert "RBAC" in mailbox_line or "Mail.Read" in mailbox_line
    for secret in (emulator.info["client_secret"], emulator.info["unscoped_client_secret"]):
        assert secret not in granted.stdout + granted.stderr + refused.stdout + refused.stderr


def test_doctor_says_what_is_missing_from_the_configuration(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("O365_")}
    env |= {"O365_TENANT_ID": "contoso.example", "O365_DATA_DIR": str(tmp_path)}

    result = subprocess.run(
        [*COMMAND, "doctor"], env=env, capture_output=True, text=True, timeout=120
    )

    assert result.returncode == 1
    assert "[FAIL] configuration" in result.stdout
    assert "client_id" in result.stdout


def test_device_code_login_then_silent_refresh(emulator, tmp_path):
    env = environment(emulator.info, tmp_path, O365_AUTH_MODE="delegated")
    env.pop("O365_CLIENT_SECRET", None)
    login = subprocess.Popen(
        [*COMMAND, "login", "--device-code"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert login.stdout is not None
    prompt = login.stdout.readline()
    match = re.search(r"(https://\S+) and enter the code (\S+)", prompt)
    assert match, prompt

    signing_in = threading.Thread(
        target=lambda: EmulatorBrowser(emulator.info["ca_path"]).approve_device_code(
            match.group(1), match.group(2)
        )
    )
    signing_in.start()
    out, err = login.communicate(timeout=120)
    signing_in.join()

    assert login.returncode == 0, out + err
    assert "megan@contoso.example" in out
    doctor = subprocess.run(
        [*COMMAND, "doctor"], env=env, capture_output=True, text=True, timeout=120
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "delegated token for megan@contoso.example" in doctor.stdout


def test_the_emulator_command_prints_settings_that_reach_it(tmp_path):
    process = subprocess.Popen(
        [*COMMAND, "emulator", "--state-dir", str(tmp_path / "emu"), "--messages", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    try:
        settings = {}
        for line in process.stdout:
            if line.startswith("O365_"):
                name, _, value = line.strip().partition("=")
                settings[name] = value
            if line.startswith("# Stop"):
                break

        assert settings["O365_GRAPH_ENDPOINT"].startswith("https://127.0.0.1:")
        context = ssl.create_default_context(cafile=settings["O365_CA_BUNDLE"])
        health = f"{settings['O365_GRAPH_ENDPOINT']}/_health"
        with urllib.request.urlopen(health, context=context, timeout=10) as reply:  # noqa: S310
            assert reply.status == 200
    finally:
        process.terminate()
        process.communicate(timeout=30)
    # uvicorn shuts down cleanly, then lets the signal end the process as usual.
    assert process.returncode in (0, -signal.SIGTERM)
