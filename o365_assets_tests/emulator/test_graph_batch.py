"""JSON batching over real HTTPS: limits, dependsOn, base64 bodies, per-item statuses."""

import base64
import hashlib
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl
from o365_assets_tests.emulator.graph_client import Graph, assert_graph_error


@pytest.fixture(scope="module")
def graph(emulator: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(emulator) as client:
        yield client


def _batch(graph: Graph, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    response = graph.post("/$batch", json={"requests": requests})
    assert response.status_code == 200, response.text[:300]
    return {item["id"]: item for item in response.json()["responses"]}


def test_twenty_requests_each_with_its_own_reply(graph: Graph) -> None:
    requests = [
        {
            "id": str(n),
            "method": "GET",
            "url": f"{graph.mailbox}/messages?$top=1&$skip={n}&$select=subject",
        }
        for n in range(20)
    ]
    replies = _batch(graph, requests)
    assert set(replies) == {str(n) for n in range(20)}
    subjects = set()
    for reply in replies.values():
        assert reply["status"] == 200
        assert reply["headers"]["Content-Type"].startswith("application/json")
        subjects.add(reply["body"]["value"][0]["id"])
    assert len(subjects) == 20


def test_twenty_one_requests_are_refused(graph: Graph) -> None:
    requests = [{"id": str(n), "method": "GET", "url": f"{graph.mailbox}"} for n in range(21)]
    assert_graph_error(graph.post("/$batch", json={"requests": requests}), 400, "BadRequest")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"requests": []}',
        b'{"requests": [{"id": "1"}]}',
        b'{"requests": [{"id": "1", "method": "GET", "url": "/me"},'
        b' {"id": "1", "method": "GET", "url": "/me"}]}',
        b'{"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["9"]}]}',
        b'{"requests": [{"id": "1", "method": "GET", "url": "/me", "dependsOn": ["2"]},'
        b' {"id": "2", "method": "GET", "url": "/me", "dependsOn": ["1"]}]}',
    ],
)
def test_malformed_batches_are_400(graph: Graph, body: bytes) -> None:
    response = graph.post("/$batch", data=body, headers={"Content-Type": "application/json"})
    assert_graph_error(response, 400)


def test_batch_needs_a_token(emulator: ThreadedEmulator) -> None:
    with Graph(emulator, token="") as anonymous:
        response = anonymous.post("/$batch", json={"requests": []})
    assert_graph_error(response, 401, "InvalidAuthenticationToken")


def test_depends_on_orders_items_and_a_failed_dependency_fails_its_dependents(
    graph: Graph,
) -> None:
    mailbox = graph.mailbox
    requests = [
        {"id": "c", "method": "GET", "url": f"{mailbox}/mailFolders/inbox", "dependsOn": ["b"]},
        {"id": "b", "method": "GET", "url": f"{mailbox}/mailFolders/archive", "dependsOn": ["a"]},
        {"id": "a", "method": "GET", "url": f"{mailbox}/mailFolders/sentitems"},
        {"id": "x", "method": "GET", "url": f"{mailbox}/messages/AAMkAGnope="},
        {"id": "y", "method": "GET", "url": f"{mailbox}/mailFolders/inbox", "dependsOn": ["x"]},
    ]
    response = graph.post("/$batch", json={"requests": requests})
    order = [item["id"] for item in response.json()["responses"]]
    assert order.index("a") < order.index("b") < order.index("c")
    replies = {item["id"]: item for item in response.json()["responses"]}
    assert replies["c"]["body"]["displayName"] == "Inbox"
    assert replies["x"]["status"] == 404
    assert replies["x"]["body"]["error"]["code"] == "ErrorItemNotFound"
    assert replies["y"]["status"] == 424


def test_value_bodies_come_back_base64(graph: Graph, emulator: ThreadedEmulator) -> None:
    with EmulatorControl(emulator.info) as control:
        record = next(
            r for r in control.records() if r["expected_type"] == "pdf" and r["depth"] == 0
        )
    url = (
        f"{graph.mailbox}/messages/{record['message_id']}/attachments/"
        f"{record['attachment_id']}/$value"
    )
    replies = _batch(graph, [{"id": "1", "method": "GET", "url": url}])
    reply = replies["1"]
    assert reply["status"] == 200
    assert reply["headers"]["Content-Type"] == "application/pdf"
    data = base64.b64decode(reply["body"])
    assert data.startswith(b"%PDF")
    assert hashlib.sha256(data).hexdigest() == record["sha256"]


def test_item_paths_are_percent_decoded_as_over_plain_http(
    graph: Graph, emulator: ThreadedEmulator
) -> None:
    with EmulatorControl(emulator.info) as control:
        record = next(r for r in control.records() if r["depth"] == 0)
    message_id = record["message_id"]
    assert "=" in message_id
    encoded = (
        f"/users/{quote(emulator.info['mailbox'], safe='')}/messages/{quote(message_id, safe='')}"
    )
    assert "%3D" in encoded and "%40" in encoded
    attachment = f"{encoded}/attachments/{quote(record['attachment_id'], safe='')}"

    immutable = 'IdType="ImmutableId"'
    plain = graph.get(f"{encoded}?$select=subject", prefer=immutable)
    replies = _batch(
        graph,
        [
            {
                "id": "1",
                "method": "GET",
                "url": f"{encoded}?$select=subject",
                "headers": {"Prefer": immutable},
            },
            {"id": "2", "method": "GET", "url": f"{attachment}?$select=name"},
        ],
    )

    assert plain.status_code == 200, plain.text[:300]
    assert replies["1"]["status"] == 200, replies["1"]["body"]
    assert replies["1"]["body"]["id"] == plain.json()["id"] == message_id
    assert replies["1"]["body"]["subject"] == record["subject"]
    assert replies["2"]["status"] == 200, replies["2"]["body"]
    assert replies["2"]["body"]["name"] == record["name"]


def test_items_honour_their_own_headers(graph: Graph) -> None:
    requests = [
        {
            "id": "1",
            "method": "GET",
            "url": f"{graph.mailbox}/messages?$top=1&$select=subject",
            "headers": {"Prefer": 'IdType="ImmutableId"'},
        },
        {"id": "2", "method": "GET", "url": f"{graph.mailbox}/messages?$top=1&$select=subject"},
    ]
    replies = _batch(graph, requests)
    assert replies["1"]["headers"]["Preference-Applied"] == 'IdType="ImmutableId"'
    assert replies["1"]["body"]["value"][0]["id"] != replies["2"]["body"]["value"][0]["id"]


def test_each_item_can_be_throttled(make_emulator: Callable[..., ThreadedEmulator]) -> None:
    emu = make_emulator(
        mail={"messages": 5, "large_attachment_bytes": 0},
        faults={"request_budget": 3, "budget_window_s": 600},
    )
    with Graph(emu) as graph:
        requests = [
            {"id": str(n), "method": "GET", "url": f"{graph.mailbox}/mailFolders/inbox"}
            for n in range(6)
        ]
        replies = _batch(graph, requests)
    statuses = sorted(reply["status"] for reply in replies.values())
    assert statuses == [200, 200, 200, 429, 429, 429]
    for reply in replies.values():
        if reply["status"] == 429:
            assert int(reply["headers"]["Retry-After"]) >= 1
            assert reply["body"]["error"]["code"] == "ApplicationThrottled"
