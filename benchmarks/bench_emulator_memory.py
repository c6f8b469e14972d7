"""How much memory the emulator needs to serve a large attachment, and how fast it serves it.

Starts the emulator as a child process (as a user runs it) with a generated large attachment,
downloads it through `$value` with requests (chunks discarded, sha256 checked against the
emulator's record), and samples the emulator process's RSS while it streams. Then does the same
for the attachment's JSON, whose `contentBytes` the emulator base64-encodes as it sends.

Prints, beside its goal:
- the emulator's peak RSS growth during the `$value` download (goal: under 64 MiB for 1 GiB);
- the same during the JSON download (no goal; shows base64 is streamed too);
- throughput of both, and how long the emulator took to start (it hashes the file once).

    .venv/bin/python benchmarks/bench_emulator_memory.py [--size-mib 1024]
"""

import argparse
import base64
import hashlib
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msal
import psutil
import requests

from o365_assets.emulator import EmulatorConfig, EmulatorProcess
from o365_assets.emulator.control import EmulatorControl

MIB = 1024 * 1024
GOAL_MIB = 64


class RssSampler:
    """Samples a process's resident set size in a background thread."""

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        self.process = psutil.Process(pid)
        self.interval_s = interval_s
        self.baseline = self.process.memory_info().rss
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval_s)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.baseline) / MIB


def access_token(info: dict[str, Any], http: requests.Session) -> str:
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=f"{info['base_url']}/{info['tenant_id']}",
        instance_discovery=False,
        http_client=http,
    )
    result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    if "access_token" not in result:
        raise RuntimeError(f"no token: {result.get('error_description')}")
    return str(result["access_token"])


def download_value(http: requests.Session, url: str, pid: int) -> tuple[str, int, float, float]:
    """Stream `$value`, discarding chunks: (sha256, bytes, seconds, RSS growth MiB)."""
    digest = hashlib.sha256()
    received = 0
    with RssSampler(pid) as sampler:
        start = time.perf_counter()
        with http.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MIB):
                digest.update(chunk)
                received += len(chunk)
        seconds = time.perf_counter() - start
    return digest.hexdigest(), received, seconds, sampler.growth_mib


def download_json(http: requests.Session, url: str, pid: int) -> tuple[str, int, float, float]:
    """Stream the attachment's JSON and decode `contentBytes` on the fly (the client side
    holds only a window of it): (sha256, JSON bytes, seconds, emulator RSS growth MiB)."""
    digest = hashlib.sha256()
    received = 0
    marker = b'"contentBytes":"'
    carry = b""
    inside = False
    with RssSampler(pid) as sampler:
        start = time.perf_counter()
        with http.get(url, stream=True, timeout=600) as response:
            response.raise_for_status()
            for chunk in response.iter_content(MIB):
                received += len(chunk)
                data = carry + chunk
                if not inside:
                    at = data.find(marker)
                    if at < 0:
                        carry = data[-len(marker) :]
                        continue
                    inside = True
                    data = data[at + len(marker) :]
                end = data.find(b'"')
                if end >= 0:
                    data = data[:end]
                usable = len(data) - len(data) % 4
                digest.update(base64.b64decode(data[:usable]))
                carry = data[usable:]
                if end >= 0:
                    if carry:
                        digest.update(base64.b64decode(carry))
                    carry = b""
                    inside = False
                    marker = b"\x00never"
        seconds = time.perf_counter() - start
    return digest.hexdigest(), received, seconds, sampler.growth_mib


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory() as state_dir:
        config = EmulatorConfig.model_validate(
            {
                "state_dir": state_dir,
                "mail": {"messages": 20, "large_attachment_bytes": size},
            }
        )
        started = time.perf_counter()
        with EmulatorProcess(config) as emulator:
            startup = time.perf_counter() - started
            info = emulator.info
            with EmulatorControl(info) as control:
                record = next(r for r in control.records() if r["size"] == size)
            with requests.Session() as http:
                http.trust_env = False
                http.verify = info["ca_path"]
                http.headers["Authorization"] = f"Bearer {access_token(info, http)}"
                attachment = (
                    f"{info['base_url']}/v1.0/users/{info['mailbox']}/messages/"
                    f"{record['message_id']}/attachments/{record['attachment_id']}"
                )
                value = download_value(http, f"{attachment}/$value", emulator.pid)
                as_json = download_json(http, attachment, emulator.pid)

    report = {
        "attachment_mib": args.size_mib,
        "emulator_startup_s": round(startup, 2),
        "value_rss_growth_mib": round(value[3], 1),
        "value_goal_mib": GOAL_MIB,
        "value_within_goal": value[3] < GOAL_MIB,
        "value_throughput_mib_s": round(value[1] / MIB / value[2], 1),
        "value_sha256_matches": value[0] == record["sha256"] and value[1] == size,
        "json_rss_growth_mib": round(as_json[3], 1),
        "json_throughput_mib_s": round(as_json[1] / MIB / as_json[2], 1),
        "json_sha256_matches": as_json[0] == record["sha256"],
    }
    print(json.dumps(report, indent=2))
    return 0 if report["value_sha256_matches"] and report["json_sha256_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
