"""The HTTP layer against the emulator's fault knobs: TLS trust with `REQUESTS_CA_BUNDLE` set,
random 429/503/504, the request budget, the concurrency limit, connections dropped mid-body,
a bandwidth cap, and tokens that expire in the middle of a listing."""

import email.utils
import hashlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from o365_assets.emulator.control import EmulatorControl
from o365_assets.graph import (
    ConfigurationError,
    GraphClient,
    ThrottledTooLong,
    build_credential,
)
from o365_assets.graph.transport import RetryPolicy, parse_retry_after, trust_context
from o365_assets_tests.graph.support import SettingsFor

SYSTEM_BUNDLE = requests.utils.DEFAULT_CA_BUNDLE_PATH


class Waits:
    """Observes the transport's waits between attempts (and still waits)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        time.sleep(seconds)


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def inbox_attachments(control: EmulatorControl, mailbox: str) -> list[dict[str, Any]]:
    return [
        r
        for r in control.records(mailbox)
        if r["folder"] == "inbox" and r["depth"] == 0 and r["kind"] != "reference"
    ]


def test_the_extra_ca_is_added_even_with_requests_ca_bundle_set(
    emulator: Any, settings_for: SettingsFor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", SYSTEM_BUNDLE)
    monkeypatch.setenv("CURL_CA_BUNDLE", SYSTEM_BUNDLE)
    # Plain requests: the variable silently replaces a session's own CA.
    naive = requests.Session()
    naive.verify = emulator.info["ca_path"]
    with pytest.raises(requests.exceptions.SSLError):
        naive.get(f"{emulator.info['base_url']}/_health", timeout=10)
    naive.close()

    with GraphClient(settings_for(emulator.info)) as graph:
        access = graph.check_access()

    assert access.folder_name == "Inbox"


def test_the_trust_keeps_public_roots_and_adds_the_ca(emulator: Any) -> None:
    context = trust_context(Path(emulator.info["ca_path"]))

    issuers = [dict(x[0] for x in cert["subject"]) for cert in context.get_ca_certs()]
    assert any(i.get("organizationName") == "o365-assets emulator" for i in issuers)
    assert len(issuers) > 50


def test_without_the_ca_tls_fails_at_once_and_says_how_to_fix_it(
    emulator: Any, settings_for: SettingsFor
) -> None:
    settings = settings_for(emulator.info, ca_bundle=None)

    with build_credential(settings) as credential, pytest.raises(ConfigurationError) as caught:
        credential.acquire_token()

    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert "O365_CA_BUNDLE" in str(caught.value)
    assert credential.transport.sent["entra"] == 1


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    assert 28 <= (parse_retry_after(date, now=now) or 0) <= 31
    assert parse_retry_after(email.utils.formatdate(now - 60, usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_without_retry_after_is_capped_and_jittered() -> None:
    policy = RetryPolicy(max_attempts=10, max_wait_s=100, base_s=0.5, cap_s=4)

    waits = [policy.delay(attempt, {}) for attempt in range(1, 9) for _ in range(50)]

    assert all(0 <= w <= 4 for w in waits)
    assert max(waits) > 2 and min(waits) < 0.5
    assert policy.delay(3, {"Retry-After": "2"}) == 2.0
    assert not policy.allows(10, 0, 0) and not policy.allows(2, 99, 2)


def test_random_429_503_504_are_retried_after_their_retry_after(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator(faults={"error_rate": 0.4, "seed": 11, "retry_after_s": 1})
    waits = Waits()

    with GraphClient(settings_for(emu.info)) as graph, EmulatorControl(emu.info) as control:
        graph.transport.sleep = waits
        inbox = graph.resolve_folder(None, "inbox")
        listed = list(graph.list_messages(None, inbox.id, page_size=20))
        statuses = control.stats()["apps"][emu.info["client_id"]]["statuses"]

    injected = sum(statuses.get(code, 0) for code in ("429", "503", "504"))
    assert len(listed) == inbox.total_item_count
    assert injected >= 1
    assert waits.delays == [1.0] * injected


def test_a_spent_request_budget_fails_plainly_without_waiting_for_nothing(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator(faults={"request_budget": 3, "budget_window_s": 600})
    waits = Waits()

    with GraphClient(settings_for(emu.info, retry_max_wait_s=30)) as graph:
        graph.transport.sleep = waits
        for _ in range(3):
            graph.resolve_folder(None, "inbox")
        with pytest.raises(ThrottledTooLong) as caught:
            graph.resolve_folder(None, "inbox")

    assert caught.value.status == 429
    assert "retry budget is spent" in str(caught.value)
    assert waits.delays == []


@pytest.mark.parametrize("ours", [2, 4])
def test_requests_in_flight_per_mailbox_stay_within_the_limit(
    make_emulator: Any, settings_for: SettingsFor, ours: int
) -> None:
    emu = make_emulator(faults={"concurrency_limit": 2, "latency_ms": 60, "retry_after_s": 1})
    settings = settings_for(emu.info, max_concurrency=ours)
    lock = threading.Lock()
    inside = [0]
    most = [0]

    def consume(chunks: Iterator[bytes]) -> str:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            time.sleep(0.05)
            return sha256_of(chunks)
        finally:
            with lock:
                inside[0] -= 1

    with GraphClient(settings) as graph, EmulatorControl(emu.info) as control:
        records = inbox_attachments(control, emu.info["mailbox"])[:8]
        control.reset_stats()
        with ThreadPoolExecutor(max_workers=8) as pool:
            got = list(
                pool.map(
                    lambda r: graph.download_attachment(
                        None, r["message_id"], r["attachment_id"], consume
                    ),
                    records,
                )
            )
        throttled = control.stats()["totals"]["throttled"]

    # Eight threads, never more than `ours` downloads at once; where that is above the
    # mailbox's limit, Graph's 429s are waited out and every download still completes.
    assert got == [r["sha256"] for r in records]
    assert 2 <= most[0] <= ours
    if ours > 2:
        assert throttled > 0


def test_a_connection_dropped_mid_body_is_downloaded_again_whole(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator(faults={"drop_rate": 0.3, "seed": 5})
    calls: list[str] = []

    def consume(chunks: Iterator[bytes]) -> str:
        calls.append("call")
        return sha256_of(chunks)

    with GraphClient(settings_for(emu.info)) as graph, EmulatorControl(emu.info) as control:
        records = inbox_attachments(control, emu.info["mailbox"])[:20]
        got = [
            graph.download_attachment(None, r["message_id"], r["attachment_id"], consume)
            for r in records
        ]
        dropped = control.stats()["totals"]["dropped"]

    assert got == [r["sha256"] for r in records]
    assert dropped >= 1
    assert len(calls) > len(records)


def test_a_slow_large_download_arrives_in_bounded_chunks(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator(
        mail={"messages": 2, "large_attachment_bytes": 0},
        faults={"bandwidth_bytes_per_s": 8_000_000},
    )
    sizes: list[int] = []

    def consume(chunks: Iterator[bytes]) -> str:
        digest = hashlib.sha256()
        for chunk in chunks:
            sizes.append(len(chunk))
            digest.update(chunk)
        return digest.hexdigest()

    settings = settings_for(emu.info, download_chunk_bytes=64 * 1024)
    with GraphClient(settings) as graph, EmulatorControl(emu.info) as control:
        added = control.add_message(
            subject="big", attachments=[EmulatorControl.generated("large", "big.bin", 3_000_000)]
        )
        record = next(r for r in control.records() if r["message_id"] == added["id"])
        got = graph.download_attachment(None, added["id"], record["attachment_id"], consume)

    assert got == record["sha256"]
    assert sum(sizes) == 3_000_000
    assert max(sizes) <= 64 * 1024 and len(sizes) >= 3_000_000 // (64 * 1024)


def test_a_token_expiring_mid_listing_is_renewed_after_one_401(
    make_emulator: Any, settings_for: SettingsFor, caplog: pytest.LogCaptureFixture
) -> None:
    emu = make_emulator(faults={"token_lifetime_s": 1, "latency_ms": 60})
    caplog.set_level(logging.INFO, logger="o365_assets.graph.transport")

    with GraphClient(settings_for(emu.info)) as graph, EmulatorControl(emu.info) as control:
        inbox = graph.resolve_folder(None, "inbox")
        listed = list(graph.list_messages(None, inbox.id, page_size=1))
        apps = control.stats()["apps"].values()

    # A refused token names no app, so count 401s across the emulator's counters.
    refused = sum(app["statuses"].get("401", 0) for app in apps)
    assert len(listed) == inbox.total_item_count
    assert refused >= 1
    assert "answered 401; asking for a fresh token" in caplog.text


def test_one_log_line_per_request_without_query_or_token(
    client: GraphClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    inbox = client.resolve_folder(None, "inbox")
    token = client.credential.acquire_token().value

    lines = [r.getMessage() for r in caplog.records if r.name == "o365_assets.graph.transport"]
    assert any(line.startswith("GET /v1.0/users/") and "-> 200 in" in line for line in lines)
    assert inbox.id
    assert not any("$select" in line or "?" in line for line in lines)
    assert token not in caplog.text
    assert "Bearer ey" not in caplog.text
