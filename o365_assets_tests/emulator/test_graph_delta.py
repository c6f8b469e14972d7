"""Delta queries over real HTTPS: a paged initial sync, incremental changes after mail is
added, changed, moved and removed, and 410 once the sync state is gone."""

import datetime
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl
from o365_assets_tests.emulator.graph_client import Graph, assert_graph_error

IMMUTABLE = 'IdType="ImmutableId"'


@pytest.fixture
def emu(make_emulator: Callable[..., ThreadedEmulator]) -> ThreadedEmulator:
    return make_emulator(mail={"messages": 30, "large_attachment_bytes": 0})


@pytest.fixture
def graph(emu: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(emu) as client:
        yield client


@pytest.fixture
def control(emu: ThreadedEmulator) -> Iterator[EmulatorControl]:
    with EmulatorControl(emu.info) as client:
        yield client


def _sync(
    graph: Graph, first: str, prefer: str, **kwargs: Any
) -> tuple[list[dict[str, Any]], str, int]:
    """Follow a delta round to its deltaLink: (items, deltaLink, pages)."""
    items: list[dict[str, Any]] = []
    response = graph.get(first, prefer=prefer, **kwargs)
    pages = 0
    while True:
        assert response.status_code == 200, response.text[:300]
        assert "odata.maxpagesize" in response.headers["Preference-Applied"]
        body = response.json()
        pages += 1
        items.extend(body["value"])
        if "@odata.deltaLink" in body:
            assert "@odata.nextLink" not in body
            return items, body["@odata.deltaLink"], pages
        response = graph.get(body["@odata.nextLink"], prefer=prefer)


def _inbox_size(emu: ThreadedEmulator) -> int:
    mailbox = emu.state.mail.mailbox(emu.info["mailbox"])
    return len(mailbox.in_folder(mailbox.folder("inbox")))


def test_initial_sync_pages_through_every_message(graph: Graph, emu: ThreadedEmulator) -> None:
    items, delta_link, pages = _sync(
        graph,
        f"{graph.mailbox}/mailFolders/inbox/messages/delta",
        "odata.maxpagesize=5",
        params={"$select": "subject,receivedDateTime"},
    )
    total = _inbox_size(emu)
    assert len(items) == total
    assert len({item["id"] for item in items}) == total
    assert pages == -(-total // 5)
    assert all(
        set(item) == {"@odata.type", "@odata.etag", "id", "subject", "receivedDateTime"}
        for item in items
    )
    assert "$deltatoken=" in delta_link


def test_incremental_sync_reports_adds_updates_moves_and_removals(
    graph: Graph, control: EmulatorControl
) -> None:
    first = f"{graph.mailbox}/mailFolders/inbox/messages/delta"
    prefer = f"odata.maxpagesize=4, {IMMUTABLE}"
    items, delta_link, _ = _sync(graph, first, prefer, params={"$select": "subject"})
    ids = [item["id"] for item in items]
    archived = graph.get(f"{graph.mailbox}/mailFolders/archive/messages", prefer=IMMUTABLE)
    from_archive = archived.json()["value"][0]["id"]

    added = control.add_message(subject="brand new")
    control.update_message(ids[0], subject="changed subject")
    control.remove_message(ids[1])
    control.move_message(ids[2], "archive")
    control.move_message(from_archive, "inbox")

    changes, next_delta, _ = _sync(graph, delta_link, prefer)
    present = {item["id"]: item for item in changes if "@removed" not in item}
    removed = {item["id"]: item for item in changes if "@removed" in item}
    assert set(present) == {added["id"], ids[0], from_archive}
    assert present[ids[0]]["subject"] == "changed subject"
    assert set(removed) == {ids[1], ids[2]}
    assert all(item["@removed"] == {"reason": "deleted"} for item in removed.values())

    quiet, _, pages = _sync(graph, next_delta, prefer)
    assert quiet == [] and pages == 1


def test_removed_ids_without_immutable_ids_are_the_old_rest_ids(
    graph: Graph, control: EmulatorControl
) -> None:
    first = f"{graph.mailbox}/mailFolders/inbox/messages/delta"
    items, delta_link, _ = _sync(graph, first, "odata.maxpagesize=50")
    victim = items[0]["id"]
    control.move_message(victim, "archive")

    changes, _, _ = _sync(graph, delta_link, "odata.maxpagesize=50")
    assert [item["id"] for item in changes] == [victim]
    assert "@removed" in changes[0]


def test_filter_on_received_time_applies_to_the_first_and_later_rounds(
    graph: Graph, control: EmulatorControl, emu: ThreadedEmulator
) -> None:
    mailbox = emu.state.mail.mailbox(emu.info["mailbox"])
    received = sorted(m.received for m in mailbox.in_folder(mailbox.folder("inbox")))
    since = received[len(received) // 2]
    stamp = since.strftime("%Y-%m-%dT%H:%M:%SZ")

    items, delta_link, _ = _sync(
        graph,
        f"{graph.mailbox}/mailFolders/inbox/messages/delta",
        "odata.maxpagesize=3",
        params={"$filter": f"receivedDateTime ge {stamp}", "$select": "receivedDateTime"},
    )
    assert len(items) == sum(moment >= since for moment in received)

    old = since - datetime.timedelta(days=400)
    control.add_message(subject="old news", received=old)
    fresh = control.add_message(subject="fresh")
    changes, _, _ = _sync(graph, delta_link, f"odata.maxpagesize=3, {IMMUTABLE}")
    assert [item["id"] for item in changes] == [fresh["id"]]


def test_reset_makes_delta_and_skip_tokens_gone(graph: Graph, control: EmulatorControl) -> None:
    first = f"{graph.mailbox}/mailFolders/inbox/messages/delta"
    _, delta_link, _ = _sync(graph, first, "odata.maxpagesize=50")
    page = graph.get(first, prefer="odata.maxpagesize=2").json()
    skip_link = page["@odata.nextLink"]

    control.reset_delta()
    assert_graph_error(graph.get(delta_link), 410, "SyncStateNotFound")
    assert_graph_error(graph.get(skip_link), 410, "SyncStateNotFound")

    items, fresh_link, _ = _sync(graph, first, "odata.maxpagesize=50")
    assert items
    assert graph.get(fresh_link).status_code == 200

    control.reset_delta(code="resyncRequired")
    assert_graph_error(graph.get(fresh_link), 410, "resyncRequired")


def test_unknown_or_foreign_tokens_are_gone(graph: Graph) -> None:
    inbox_delta = f"{graph.mailbox}/mailFolders/inbox/messages/delta"
    assert_graph_error(graph.get(inbox_delta, params={"$deltatoken": "bm9wZQ.AAAA"}), 410)
    assert_graph_error(graph.get(inbox_delta, params={"$deltatoken": "garbage"}), 410)

    _, archive_link, _ = _sync(
        graph, f"{graph.mailbox}/mailFolders/archive/messages/delta", "odata.maxpagesize=9"
    )
    token = archive_link.split("$deltatoken=")[1]
    assert_graph_error(graph.get(inbox_delta, params={"$deltatoken": token}), 410)


def test_delta_refuses_a_bad_first_request(graph: Graph) -> None:
    path = f"{graph.mailbox}/mailFolders/inbox/messages/delta"
    assert_graph_error(graph.get(path, params={"$filter": "subject eq 'x'"}), 400)
    assert_graph_error(graph.get(path, params={"$orderby": "receivedDateTime"}), 400)
    assert_graph_error(graph.get(path, params={"$select": "nope"}), 400)
    assert_graph_error(graph.get(f"{graph.mailbox}/mailFolders/nowhere/messages/delta"), 404)
