"""Throttling and fault knobs, seen from a client over real HTTPS.

Nothing here asserts a timing: each knob is shown by what a client observes (statuses,
Retry-After, broken reads, counters), and the random ones by a sequence that repeats for a seed.
"""

import hashlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import msal
import pytest
import requests

from o365_assets.emulator import EmulatorConfig, FaultSettings, MailboxSettings, ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl, EmulatorControlError
from o365_assets_tests.emulator.graph_client import Graph, app_token, assert_graph_error

SMALL = MailboxSettings(messages=12, large_attachment_bytes=0)


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedEmulator]:
    config = EmulatorConfig(state_dir=tmp_path_factory.mktemp("faults"), mail=SMALL)
    with ThreadedEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def control(emu: ThreadedEmulator) -> Iterator[EmulatorControl]:
    """Each test starts from the default knobs, fresh budgets and zeroed counters."""
    with EmulatorControl(emu.info) as client:
        client.set_faults(**FaultSettings().model_dump())
        client.reset_stats()
        yield client
        client.set_faults(**FaultSettings().model_dump())


@pytest.fixture
def graph(emu: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(emu) as client:
        yield client


def _app_stats(control: EmulatorControl, emu: ThreadedEmulator) -> dict[str, Any]:
    stats: dict[str, Any] = control.stats()["apps"][emu.info["client_id"]]
    return stats


def test_more_than_four_concurrent_requests_are_throttled(
    emu: ThreadedEmulator, control: EmulatorControl
) -> None:
    # Each request holds its slot for a second, so eight fired together overlap.
    control.set_faults(latency_ms=1000)
    clients = [Graph(emu) for _ in range(8)]
    for client in clients:
        client.get("/users/nobody@contoso.example")  # open the connection first
    start = threading.Barrier(len(clients))
    results: list[requests.Response] = []

    def fire(client: Graph) -> None:
        start.wait()
        results.append(client.get(f"{client.mailbox}/mailFolders/inbox"))

    threads = [threading.Thread(target=fire, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for client in clients:
        client.close()

    statuses = sorted(response.status_code for response in results)
    throttled = [response for response in results if response.status_code == 429]
    assert len(results) == 8
    assert statuses.count(200) >= 4
    assert throttled
    for response in throttled:
        assert_graph_error(response, 429, "ApplicationThrottled")
        assert int(response.headers["Retry-After"]) >= 1
    stats = _app_stats(control, emu)
    assert stats["throttled_by_reason"]["concurrency"] == len(throttled)


def _succeed_n_times(graph: Graph, n: int, honour_retry_after: bool) -> int:
    """Make `n` successful requests; returns how many 429s it took."""
    throttled = 0
    successes = 0
    deadline = time.monotonic() + 30
    for _ in range(1000):
        if successes == n or time.monotonic() > deadline:
            break
        response = graph.get(f"{graph.mailbox}/mailFolders/inbox")
        if response.status_code == 200:
            successes += 1
            continue
        assert response.status_code == 429
        throttled += 1
        wait = float(response.headers["Retry-After"]) if honour_retry_after else 0.05
        time.sleep(wait)
    assert successes == n
    return throttled


def test_a_client_that_ignores_retry_after_sees_more_429s(
    emu: ThreadedEmulator, control: EmulatorControl, graph: Graph
) -> None:
    knobs = {"request_budget": 5, "budget_window_s": 2.0}
    control.set_faults(**knobs)
    control.reset_stats()
    impatient = _succeed_n_times(graph, 8, honour_retry_after=False)
    impatient_stats = _app_stats(control, emu)

    control.set_faults(**knobs)
    control.reset_stats()
    patient = _succeed_n_times(graph, 8, honour_retry_after=True)
    patient_stats = _app_stats(control, emu)

    assert impatient_stats["statuses"]["429"] == impatient
    assert patient_stats["statuses"]["429"] == patient
    assert patient_stats["statuses"]["200"] == impatient_stats["statuses"]["200"] == 8
    assert impatient > patient
    assert impatient_stats["throttled_by_reason"] == {"budget": impatient}


def test_request_budget_throttles_until_the_window_frees(
    control: EmulatorControl, graph: Graph
) -> None:
    control.set_faults(request_budget=3, budget_window_s=600)
    path = f"{graph.mailbox}/mailFolders/inbox"
    assert [graph.get(path).status_code for _ in range(3)] == [200, 200, 200]

    refused = graph.get(path)
    assert_graph_error(refused, 429, "ApplicationThrottled")
    assert 590 <= int(refused.headers["Retry-After"]) <= 600

    control.set_faults(request_budget=None)
    assert graph.get(path).status_code == 200


def _statuses(graph: Graph, count: int) -> list[int]:
    return [graph.get(f"{graph.mailbox}/mailFolders/inbox").status_code for _ in range(count)]


def test_error_rate_gives_the_same_statuses_for_the_same_seed(
    control: EmulatorControl, graph: Graph
) -> None:
    control.set_faults(seed=11, error_rate=0.5, retry_after_s=0)
    first = _statuses(graph, 20)
    control.set_faults(seed=11, error_rate=0.5)
    again = _statuses(graph, 20)
    control.set_faults(seed=12, error_rate=0.5)
    other = _statuses(graph, 20)

    assert first == again
    assert first != other
    assert 200 in first
    assert {429, 503, 504} & set(first)

    control.set_faults(seed=11, error_rate=0.5)
    for _ in range(20):
        response = graph.get(f"{graph.mailbox}/mailFolders/inbox")
        if response.status_code != 200:
            assert_graph_error(response, response.status_code)
            assert "Retry-After" in response.headers


def test_error_statuses_can_be_narrowed(control: EmulatorControl, graph: Graph) -> None:
    control.set_faults(error_rate=1.0, error_statuses=[503])
    assert set(_statuses(graph, 5)) == {503}
    control.set_faults(error_rate=0.0)
    assert set(_statuses(graph, 5)) == {200}


def test_a_dropped_connection_is_a_broken_read(
    emu: ThreadedEmulator, control: EmulatorControl, graph: Graph
) -> None:
    path = f"{graph.mailbox}/messages"
    control.set_faults(drop_rate=1.0)
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        graph.get(path, params={"$top": "5"})

    record = next(r for r in control.records() if r["expected_type"] == "xlsx")
    value = f"{graph.mailbox}/messages/{record['message_id']}/attachments/{record['attachment_id']}"
    with Graph(emu) as fresh, fresh.get(f"{value}/$value", stream=True) as response:
        assert response.status_code == 200
        received = b""
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            for chunk in response.iter_content(1024):
                received += chunk
        assert 0 < len(received) < record["size"]

    control.set_faults(drop_rate=0.0)
    with Graph(emu) as fresh:
        assert fresh.sha256_of_value(f"{value}/$value") == record["sha256"]
    assert _app_stats(control, emu)["dropped"] == 2


def test_drops_follow_the_seed(emu: ThreadedEmulator, control: EmulatorControl) -> None:
    def outcomes() -> list[bool]:
        seen = []
        for _ in range(16):
            with Graph(emu) as fresh:
                try:
                    fresh.get(f"{fresh.mailbox}/mailFolders/inbox").json()
                    seen.append(True)
                except (requests.exceptions.ChunkedEncodingError, requests.ConnectionError):
                    seen.append(False)
        return seen

    control.set_faults(seed=5, drop_rate=0.5)
    first = outcomes()
    control.set_faults(seed=5, drop_rate=0.5)
    assert outcomes() == first
    assert True in first and False in first


def test_bandwidth_cap_keeps_the_bytes_intact(control: EmulatorControl, graph: Graph) -> None:
    record = next(r for r in control.records() if r["expected_type"] == "xlsx")
    control.set_faults(bandwidth_bytes_per_s=20_000)
    assert control.faults()["bandwidth_bytes_per_s"] == 20_000
    value = f"{graph.mailbox}/messages/{record['message_id']}/attachments/{record['attachment_id']}"
    with graph.get(f"{value}/$value", stream=True) as response:
        data = b"".join(response.iter_content(512))
    assert hashlib.sha256(data).hexdigest() == record["sha256"]


def test_short_token_lifetime_expires_tokens(
    emu: ThreadedEmulator, control: EmulatorControl
) -> None:
    control.set_faults(token_lifetime_s=1)
    info = emu.info
    http = requests.Session()
    http.trust_env = False
    http.verify = info["ca_path"]
    try:
        app = msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"{info['base_url']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=http,
        )
        result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    finally:
        http.close()
    assert result["expires_in"] == 1
    time.sleep(2.1)
    with Graph(emu, token=result["access_token"]) as graph:
        response = graph.get(f"{graph.mailbox}/mailFolders/inbox")
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


def test_bad_knobs_are_refused_and_counters_are_per_app(
    emu: ThreadedEmulator, control: EmulatorControl, graph: Graph
) -> None:
    with pytest.raises(EmulatorControlError, match="400"):
        control.set_faults(error_rate=2)
    with pytest.raises(EmulatorControlError, match="400"):
        control.set_faults(no_such_knob=1)

    control.reset_stats()
    graph.get(f"{graph.mailbox}/mailFolders/inbox")
    unscoped = app_token(emu, client_id=emu.info["unscoped_client_id"])
    with Graph(emu, token=unscoped) as other:
        other.get(f"{other.mailbox}/mailFolders/inbox")
    apps = control.stats()["apps"]
    assert apps[emu.info["client_id"]]["statuses"] == {"200": 1}
    assert apps[emu.info["unscoped_client_id"]]["statuses"] == {"403": 1}


def _wait_for_no_request_in_flight(control: EmulatorControl) -> int:
    """The emulator's count of requests in flight, once it reaches 0 or 10 s have passed."""
    deadline = time.monotonic() + 10
    while (in_flight := int(control.stats()["in_flight"])) and time.monotonic() < deadline:
        time.sleep(0.02)
    return in_flight


def test_slots_come_back_after_a_drop_and_after_clients_that_leave(
    make_emulator: Any,
) -> None:
    emu = make_emulator(mail={"messages": 5, "large_attachment_bytes": 0})
    with EmulatorControl(emu.info) as control, Graph(emu) as graph:
        added = control.add_message(
            subject="large", attachments=[EmulatorControl.generated("large", "big.csv", 32 << 20)]
        )
        [record] = added["attachments"]
        value = f"{graph.mailbox}/messages/{added['id']}/attachments/{record['attachment_id']}"

        control.set_faults(drop_rate=1.0)
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
            graph.get(f"{graph.mailbox}/messages", params={"$top": "5"})
        control.set_faults(drop_rate=0.0)
        after_drop = _wait_for_no_request_in_flight(control)

        with Graph(emu) as leaving:
            response = leaving.get(f"{value}/$value", stream=True)
            assert response.status_code == 200
            assert next(response.iter_content(1024))
            while_streaming = control.stats()["in_flight"]
            response.close()
        after_leaving_mid_body = _wait_for_no_request_in_flight(control)

        control.set_faults(latency_ms=300)
        with Graph(emu) as impatient, pytest.raises(requests.exceptions.ReadTimeout):
            impatient.session.get(f"{impatient.root}{value}/$value", timeout=(10, 0.05))
        after_leaving_early = _wait_for_no_request_in_flight(control)
        control.set_faults(latency_ms=0)

        assert graph.sha256_of_value(f"{value}/$value") == record["sha256"]
        dropped = control.stats()["totals"]["dropped"]

    assert after_drop == 0
    assert while_streaming == 1
    assert after_leaving_mid_body == 0
    assert after_leaving_early == 0
    assert dropped == 1


@pytest.mark.parametrize("knobs", [{}, {"bandwidth_bytes_per_s": 20_000}])
def test_a_client_keeping_four_requests_in_flight_is_never_throttled(
    emu: ThreadedEmulator, control: EmulatorControl, knobs: dict[str, Any]
) -> None:
    control.set_faults(**knobs)
    record = next(r for r in control.records() if r["expected_type"] == "csv")
    value = f"/messages/{record['message_id']}/attachments/{record['attachment_id']}/$value"
    outcomes: list[tuple[int, str]] = []

    def one_after_another(pair: tuple[Graph, Graph]) -> None:
        # Turn about on two connections, as a pooled client does: the next request may come
        # on one connection before the server has wound up the reply on the other.
        for n in range(40):
            client = pair[n % 2]
            with client.get(f"{client.mailbox}{value}", stream=True) as response:
                # The reply is over for the client once it holds the last byte.
                digest = hashlib.sha256(response.content).hexdigest()
                outcomes.append((response.status_code, digest))

    pairs = [(Graph(emu), Graph(emu)) for _ in range(4)]
    threads = [threading.Thread(target=one_after_another, args=(pair,)) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for pair in pairs:
        for client in pair:
            client.close()

    assert control.faults()["concurrency_limit"] == 4
    assert outcomes == [(200, record["sha256"])] * 160
    assert _app_stats(control, emu)["throttled"] == 0
