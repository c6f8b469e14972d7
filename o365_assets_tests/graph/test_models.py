"""Reply shapes: unknown fields are kept, a missing needed field is named, attachments are
told apart by their `@odata.type`."""

import pytest

from o365_assets.graph import FileAttachment, ReferenceAttachment, ResponseShapeError
from o365_assets.graph.models import Message, RemovedMessage, parse_attachment, parse_model

MESSAGE = {
    "id": "AAkALm1",
    "receivedDateTime": "2031-05-17T09:00:00Z",
    "lastModifiedDateTime": "2031-05-17T09:01:00Z",
    "subject": None,
    "from": {"emailAddress": {"name": "Ann", "address": "ann@example.com"}},
    "hasAttachments": True,
    "internetMessageId": "<1@example.com>",
    "parentFolderId": "AC4A",
    "@odata.etag": 'W/"x"',
    "flag": {"flagStatus": "notFlagged"},
}


def test_a_message_keeps_fields_graph_added() -> None:
    message = parse_model(Message, MESSAGE, "message 0")

    assert message.subject is None
    assert message.sender is not None and message.sender.email_address is not None
    assert message.sender.email_address.address == "ann@example.com"
    assert message.received_at.isoformat() == "2031-05-17T09:00:00+00:00"
    assert message.model_extra is not None and "flag" in message.model_extra


@pytest.mark.parametrize("field", ["receivedDateTime", "hasAttachments", "parentFolderId", "from"])
def test_a_missing_needed_field_is_named(field: str) -> None:
    reply = {k: v for k, v in MESSAGE.items() if k != field}

    with pytest.raises(ResponseShapeError) as caught:
        parse_model(Message, reply, "delta page 2, item 5")

    assert f"delta page 2, item 5: {field}: Field required" in str(caught.value)


def test_a_malformed_value_is_named_without_echoing_it() -> None:
    reply = {**MESSAGE, "receivedDateTime": "<script>alert(1)</script>"}

    with pytest.raises(ResponseShapeError) as caught:
        parse_model(Message, reply, "message 3")

    assert "receivedDateTime" in str(caught.value)
    assert "script" not in str(caught.value)


def test_removed_entries_carry_only_their_id() -> None:
    removed = parse_model(RemovedMessage, {"id": "x", "@removed": {"reason": "deleted"}}, "item")

    assert removed.id == "x" and removed.removed.reason == "deleted"


def test_attachments_are_told_apart_by_odata_type() -> None:
    base = {"id": "a", "name": "r.csv", "contentType": "text/csv", "size": 10, "isInline": False}

    file = parse_attachment({**base, "@odata.type": "#microsoft.graph.fileAttachment"}, "a")
    link = parse_attachment(
        {**base, "@odata.type": "#microsoft.graph.referenceAttachment", "sourceUrl": "https://x"},
        "a",
    )

    assert isinstance(file, FileAttachment) and file.kind == "file"
    assert isinstance(link, ReferenceAttachment) and link.source_url == "https://x"
    with pytest.raises(ResponseShapeError, match="attachment 4"):
        parse_attachment({**base, "@odata.type": "#microsoft.graph.calendarThing"}, "attachment 4")
    with pytest.raises(ResponseShapeError, match="size"):
        parse_attachment({"@odata.type": "#microsoft.graph.fileAttachment", "id": "a"}, "a")
