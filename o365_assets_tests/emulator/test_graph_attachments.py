"""Attachments over real HTTPS: list, get and `$value` for file, item and reference
attachments, checked byte for byte against the emulator's records."""

import base64
import email
import hashlib
from collections.abc import Iterator
from email import policy
from typing import Any

import pytest

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl
from o365_assets_tests.emulator.graph_client import Graph, assert_graph_error


@pytest.fixture(scope="module")
def graph(emulator: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(emulator) as client:
        yield client


@pytest.fixture(scope="module")
def records(emulator: ThreadedEmulator) -> list[dict[str, Any]]:
    with EmulatorControl(emulator.info) as control:
        return control.records()


def _attachment_path(graph: Graph, record: dict[str, Any]) -> str:
    return f"{graph.mailbox}/messages/{record['message_id']}/attachments/{record['attachment_id']}"


def _one(records: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in records if all(r[key] == value for key, value in match.items())]
    assert found, match
    return found[0]


def test_every_top_level_value_matches_its_record(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    top_level = [r for r in records if r["depth"] == 0 and r["kind"] != "reference"]
    assert len(top_level) > 50
    for record in top_level:
        assert (
            graph.sha256_of_value(f"{_attachment_path(graph, record)}/$value") == record["sha256"]
        ), record["name"]


def test_list_has_types_and_select_drops_content(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    record = _one(records, kind="item", depth=0)
    path = f"{graph.mailbox}/messages/{record['message_id']}/attachments"
    full = graph.get(path).json()["value"]
    assert full[0]["@odata.type"] == "#microsoft.graph.itemAttachment"
    assert "item" not in full[0]

    csv_message = _one(records, kind="file", expected_type="csv", depth=0)
    listed = graph.get(f"{graph.mailbox}/messages/{csv_message['message_id']}/attachments").json()[
        "value"
    ]
    by_id = {attachment["id"]: attachment for attachment in listed}
    attachment = by_id[csv_message["attachment_id"]]
    assert attachment["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert (
        hashlib.sha256(base64.b64decode(attachment["contentBytes"])).hexdigest()
        == (csv_message["sha256"])
    )
    for name in ("id", "name", "contentType", "size", "isInline", "lastModifiedDateTime"):
        assert name in attachment

    slim = graph.get(
        f"{graph.mailbox}/messages/{csv_message['message_id']}/attachments",
        params={"$select": "id,name,size,isInline"},
    ).json()["value"]
    for item in slim:
        assert "contentBytes" not in item
        assert set(item) <= {"@odata.type", "id", "name", "size", "isInline"}


def test_file_attachment_get_has_content_bytes(graph: Graph, records: list[dict[str, Any]]) -> None:
    record = _one(records, expected_type="xlsx", depth=0)
    body = graph.get(_attachment_path(graph, record)).json()
    assert body["@odata.type"] == "#microsoft.graph.fileAttachment"
    assert body["name"] == record["name"]
    assert body["size"] == record["size"]
    assert hashlib.sha256(base64.b64decode(body["contentBytes"])).hexdigest() == record["sha256"]


def test_inline_logo_has_content_id_and_the_uninlined_one_too(
    records: list[dict[str, Any]],
) -> None:
    logos = [r for r in records if r["name"] == "logo.png"]
    inline = [r for r in logos if r["is_inline"]]
    not_inline = [r for r in logos if not r["is_inline"]]
    assert len(inline) > 5 and len(not_inline) == 1
    assert len({r["sha256"] for r in logos}) == 1
    assert not_inline[0]["content_id"] == inline[0]["content_id"]


def test_large_attachment_streams_with_content_length(
    graph: Graph, records: list[dict[str, Any]], emulator: ThreadedEmulator
) -> None:
    record = _one(records, name="ledger-export.csv")
    assert record["size"] == emulator.state.config.mail.large_attachment_bytes
    with graph.get(f"{_attachment_path(graph, record)}/$value", stream=True) as response:
        assert response.status_code == 200
        assert int(response.headers["Content-Length"]) == record["size"]
        digest = hashlib.sha256()
        received = 0
        for chunk in response.iter_content(256 * 1024):
            digest.update(chunk)
            received += len(chunk)
    assert received == record["size"]
    assert digest.hexdigest() == record["sha256"]


def test_large_attachment_json_streams_its_base64(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    record = _one(records, name="ledger-export.csv")
    response = graph.get(_attachment_path(graph, record))
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == len(response.content)
    data = base64.b64decode(response.json()["contentBytes"])
    assert hashlib.sha256(data).hexdigest() == record["sha256"]


def test_item_attachment_value_is_mime_with_the_inner_attachments(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    item = _one(records, kind="item", depth=0, subject="FW: Q3 figures")
    inner = [r for r in records if r["parent_attachment_id"] == item["attachment_id"]]
    assert {r["name"] for r in inner} == {"q3_figures.csv", "Q3 commentary.pdf"}

    response = graph.get(f"{_attachment_path(graph, item)}/$value")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("message/rfc822")
    assert hashlib.sha256(response.content).hexdigest() == item["sha256"]

    parsed = email.message_from_bytes(response.content, policy=policy.default)
    found = {
        part.get_filename(): hashlib.sha256(part.get_payload(decode=True)).hexdigest()
        for part in parsed.iter_attachments()
    }
    assert found == {r["name"]: r["sha256"] for r in inner}


def test_item_nested_two_deep_keeps_the_innermost_file(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    outer = _one(records, kind="item", depth=0, subject="FW: FW: Regional workbook")
    middle = _one(records, kind="item", depth=1, parent_attachment_id=outer["attachment_id"])
    innermost = _one(records, depth=2, parent_attachment_id=middle["attachment_id"])
    assert innermost["expected_type"] == "xlsx"

    # The outer attachment's MIME is the middle message, which carries the innermost one.
    mime = graph.get(f"{_attachment_path(graph, outer)}/$value").content
    middle_message = email.message_from_bytes(mime, policy=policy.default)
    assert middle_message["Subject"] == "FW: Regional workbook"
    attached = list(middle_message.iter_attachments())
    assert [part.get_content_type() for part in attached] == [
        "message/rfc822",
        "application/json",
    ]
    innermost_message = attached[0].get_content()
    files = list(innermost_message.iter_attachments())
    assert [part.get_filename() for part in files] == [innermost["name"]]
    assert hashlib.sha256(files[0].get_payload(decode=True)).hexdigest() == innermost["sha256"]


def test_item_is_expanded_only_when_asked(graph: Graph, records: list[dict[str, Any]]) -> None:
    item = _one(records, kind="item", depth=0, subject="FW: Q3 figures")
    plain = graph.get(_attachment_path(graph, item)).json()
    assert plain["@odata.type"] == "#microsoft.graph.itemAttachment"
    assert "item" not in plain

    expanded = graph.get(
        _attachment_path(graph, item), params={"$expand": "microsoft.graph.itemattachment/item"}
    ).json()
    assert expanded["item"]["@odata.type"] == "#microsoft.graph.message"
    assert expanded["item"]["subject"] == "Q3 figures"


def test_reference_attachment_has_a_link_and_no_value(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    record = _one(records, kind="reference")
    body = graph.get(_attachment_path(graph, record)).json()
    assert body["@odata.type"] == "#microsoft.graph.referenceAttachment"
    assert body["sourceUrl"].startswith("https://")
    assert "contentBytes" not in body
    assert_graph_error(graph.get(f"{_attachment_path(graph, record)}/$value"), 405)


def test_unknown_attachment_is_404(graph: Graph, records: list[dict[str, Any]]) -> None:
    record = records[0]
    path = f"{graph.mailbox}/messages/{record['message_id']}/attachments/AAESAnope="
    assert_graph_error(graph.get(path), 404, "ErrorItemNotFound")
    assert_graph_error(graph.get(f"{path}/$value"), 404)


def test_attachments_through_the_folder_path(graph: Graph, records: list[dict[str, Any]]) -> None:
    record = _one(records, expected_type="pdf", depth=0, folder="inbox")
    path = (
        f"{graph.mailbox}/mailFolders/inbox/messages/{record['message_id']}"
        f"/attachments/{record['attachment_id']}/$value"
    )
    assert graph.sha256_of_value(path) == record["sha256"]
    wrong_folder = path.replace("/mailFolders/inbox/", "/mailFolders/archive/")
    assert_graph_error(graph.get(wrong_folder), 404)
