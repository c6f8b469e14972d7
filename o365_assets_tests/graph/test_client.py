"""The Graph client against the emulator over real HTTPS: folders, delta sync and resync,
immutable ids, listings, the new-mail check, attachment batches, streamed downloads, and the
errors a person meets (unscoped app, unknown mailbox) without a secret in sight."""

import datetime
import hashlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from o365_assets.emulator.control import EmulatorControl
from o365_assets.graph import (
    FileAttachment,
    GraphClient,
    GraphError,
    GraphSettings,
    ItemAttachment,
    MailboxNotFound,
    NotDownloadable,
    PermissionProblem,
    ReferenceAttachment,
    SyncStateLost,
)
from o365_assets_tests.graph.support import SettingsFor

UTC = datetime.UTC


def sha256_of(chunks: Iterator[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


@pytest.fixture
def private(
    make_emulator: Any, settings_for: SettingsFor
) -> Iterator[tuple[EmulatorControl, GraphClient]]:
    """An emulator of this test's own (it will be changed): its control and a client."""
    emu = make_emulator()
    with GraphClient(settings_for(emu.info)) as graph, EmulatorControl(emu.info) as control:
        yield control, graph


def sync_all(graph: GraphClient, folder_id: str, link: str | None = None) -> tuple[list[Any], str]:
    pages = list(graph.iter_delta(None, folder_id, link))
    delta_link = pages[-1].delta_link
    assert delta_link is not None
    assert all(page.delta_link is None for page in pages[:-1])
    return pages, delta_link


def test_check_access_opens_the_mailbox(client: GraphClient, emulator: Any) -> None:
    access = client.check_access(emulator.info["mailbox"])

    assert access.mailbox == emulator.info["mailbox"]
    assert access.folder_name == "Inbox"
    assert access.total_items and access.total_items > 0


def test_folders_resolve_by_well_known_name_display_name_and_id(client: GraphClient) -> None:
    inbox = client.resolve_folder(None, "Inbox")
    archive = client.resolve_folder(None, "archive")

    assert client.resolve_folder(None, "inbox").id == inbox.id
    assert client.resolve_folder(None, inbox.id).id == inbox.id
    assert client.resolve_folder(None, "Archive").id == archive.id
    with pytest.raises(MailboxNotFound, match="O365_FOLDERS"):
        client.resolve_folder(None, "No Such Folder")


def test_folder_names_are_found_by_a_filtered_request_each(
    make_emulator: Any, settings_for: SettingsFor
) -> None:
    emu = make_emulator()
    store = emu.state.mail
    with store.lock:
        mailbox = store.mailbox(emu.info["mailbox"])
        inbox_folder = mailbox.folder("inbox")
        reports = mailbox.add_folder("Bob's Reports", mailbox.root())
        nested = mailbox.add_folder("Q&A #1 + más", inbox_folder)

    with GraphClient(settings_for(emu.info)) as graph, EmulatorControl(emu.info) as control:
        graph.credential.acquire_token()
        control.reset_stats()
        found = graph.resolve_folder(None, "bob's reports")
        one = control.stats()["totals"]["requests"]
        under_inbox = graph.resolve_folder(None, "Inbox/q&a #1 + MÁS")
        sent = graph.resolve_folder(None, "Sent Items")
        with pytest.raises(MailboxNotFound, match='no subfolder "Bob\'s"'):
            graph.resolve_folder(None, "inbox/Bob's")

    assert (found.id, found.display_name) == (reports.id, "Bob's Reports")
    assert one == 1
    assert under_inbox.id == nested.id and under_inbox.parent_folder_id == inbox_folder.id
    assert sent.display_name == "Sent Items"


def test_delta_lists_everything_then_only_changes(
    private: tuple[EmulatorControl, GraphClient],
) -> None:
    control, graph = private
    inbox = graph.resolve_folder(None, "inbox")

    pages, link = sync_all(graph, inbox.id)
    first_ids = {m.id for page in pages for m in page.messages}
    assert pages[0].full_sync and not pages[0].resynced
    assert len(first_ids) == inbox.total_item_count

    added = control.add_message(subject="new invoice")
    gone = next(iter(first_ids))
    control.remove_message(gone)
    pages, link2 = sync_all(graph, inbox.id, link)

    changed = [m for page in pages for m in page.messages]
    removed = [r.id for page in pages for r in page.removed]
    assert [m.id for m in changed] == [added["id"]]
    assert changed[0].subject == "new invoice"
    assert removed == [gone]
    assert not pages[0].full_sync
    assert link2 != link


def test_delta_pages_stay_small_and_follow_next_links(
    private: tuple[EmulatorControl, GraphClient],
) -> None:
    _, graph = private
    inbox = graph.resolve_folder(None, "inbox")

    pages = list(graph.iter_delta(None, inbox.id, page_size=7))

    assert len(pages) > 2
    assert all(len(page.messages) <= 7 for page in pages)
    assert [page.page_number for page in pages] == list(range(1, len(pages) + 1))
    assert sum(len(page.messages) for page in pages) == inbox.total_item_count


@pytest.mark.parametrize("code", ["SyncStateNotFound", "resyncRequired"])
def test_a_lost_delta_state_starts_over_and_says_so(
    private: tuple[EmulatorControl, GraphClient], code: str
) -> None:
    control, graph = private
    inbox = graph.resolve_folder(None, "inbox")
    _, link = sync_all(graph, inbox.id)

    control.reset_delta(code)
    pages, new_link = sync_all(graph, inbox.id, link)

    assert pages[0].resynced and pages[0].full_sync and pages[0].page_number == 1
    assert sum(len(page.messages) for page in pages) == inbox.total_item_count
    assert new_link != link


def test_state_lost_is_read_from_the_error_code_in_any_case(app_settings: GraphSettings) -> None:
    with GraphClient(app_settings) as graph:
        lost = graph._error_from(400, {}, {"error": {"code": "ReSyncRequired"}}, "delta", "m")
        other = graph._error_from(
            400, {}, {"error": {"code": "BadRequest", "message": "x"}}, "d", "m"
        )

    assert isinstance(lost, SyncStateLost)
    assert not isinstance(other, SyncStateLost)


def test_ids_are_immutable_when_mail_moves(private: tuple[EmulatorControl, GraphClient]) -> None:
    control, graph = private
    added = control.add_message(subject="will move")
    inbox = graph.resolve_folder(None, "inbox")
    archive = graph.resolve_folder(None, "archive")

    listed = {m.id for m in graph.list_messages(None, inbox.id)}
    control.move_message(added["id"], "archive")
    moved = {m.id: m for m in graph.list_messages(None, archive.id)}

    assert added["id"] in listed
    assert added["id"] in moved
    assert moved[added["id"]].parent_folder_id == archive.id


def test_messages_of_a_day_with_their_attachments_in_one_listing(
    private: tuple[EmulatorControl, GraphClient],
) -> None:
    control, graph = private
    day = datetime.datetime(2031, 5, 17, tzinfo=UTC)
    for hour in (1, 9, 23):
        control.add_message(
            subject=f"report {hour}",
            received=day + datetime.timedelta(hours=hour),
            attachments=[EmulatorControl.file(f"r{hour}.csv", b"a,b\n1,2\n", "text/csv")],
        )
    control.add_message(subject="no attachment", received=day + datetime.timedelta(hours=2))
    control.add_message(subject="next day", received=day + datetime.timedelta(days=1, hours=1))
    inbox = graph.resolve_folder(None, "inbox")

    listed = list(
        graph.list_messages(
            None,
            inbox.id,
            received_from=day,
            received_before=day + datetime.timedelta(days=1),
            with_attachments_only=True,
            expand_attachments=True,
        )
    )

    assert sorted(m.subject or "" for m in listed) == ["report 1", "report 23", "report 9"]
    for message in listed:
        assert message.attachments is not None
        assert [a.name for a in message.attachments] == [f"r{message.subject[7:]}.csv"]  # type: ignore[index]


def test_new_mail_check_is_one_request_newest_first(
    private: tuple[EmulatorControl, GraphClient],
) -> None:
    control, graph = private
    now = datetime.datetime.now(UTC).replace(microsecond=0)
    for minutes in (3, 2, 1):
        control.add_message(
            subject=f"{minutes} ago", received=now - datetime.timedelta(minutes=minutes)
        )
    inbox = graph.resolve_folder(None, "inbox")
    control.reset_stats()

    found = graph.new_mail_since(None, inbox.id, now - datetime.timedelta(minutes=2, seconds=30))
    capped = graph.new_mail_since(None, inbox.id, now - datetime.timedelta(minutes=10), limit=2)

    assert [m.received_at for m in found.messages] == [
        now - datetime.timedelta(minutes=1),
        now - datetime.timedelta(minutes=2),
    ]
    assert not found.more
    assert len(capped.messages) == 2 and capped.more
    assert found.newest == now - datetime.timedelta(minutes=1)
    assert control.stats()["totals"]["requests"] == 2


def test_attachment_batches_match_the_mailbox(client: GraphClient, emulator: Any) -> None:
    with EmulatorControl(emulator.info) as control:
        records = control.records(emulator.info["mailbox"])
    inbox_records = [r for r in records if r["folder"] == "inbox" and r["depth"] == 0]
    message_ids = sorted({r["message_id"] for r in inbox_records})

    listed = client.list_attachments(None, message_ids)

    assert sorted(listed) == message_ids
    by_id = {a.id: a for attachments in listed.values() for a in attachments}
    assert sorted(by_id) == sorted(r["attachment_id"] for r in inbox_records)
    for record in inbox_records:
        attachment = by_id[record["attachment_id"]]
        assert attachment.kind == record["kind"]
        assert attachment.name == record["name"]
        assert attachment.is_inline == record["is_inline"]
        if isinstance(attachment, ReferenceAttachment):
            assert attachment.source_url


def test_downloads_give_the_exact_bytes_and_references_are_refused(
    client: GraphClient, emulator: Any
) -> None:
    with EmulatorControl(emulator.info) as control:
        records = control.records(emulator.info["mailbox"])
    top = [r for r in records if r["folder"] == "inbox" and r["depth"] == 0]
    listed = client.list_attachments(None, {r["message_id"] for r in top})
    kinds: set[str] = set()

    for record in top:
        attachment = next(
            a for a in listed[record["message_id"]] if a.id == record["attachment_id"]
        )
        if isinstance(attachment, ReferenceAttachment):
            with pytest.raises(NotDownloadable, match="link"):
                client.download_attachment(None, record["message_id"], attachment, sha256_of)
            kinds.add("reference")
            continue
        got = client.download_attachment(None, record["message_id"], attachment, sha256_of)
        assert got == record["sha256"], record["name"]
        kinds.add(attachment.kind)

    assert kinds == {"file", "item", "reference"}


def test_inline_images_are_told_by_the_cid_in_the_body(client: GraphClient, emulator: Any) -> None:
    with EmulatorControl(emulator.info) as control:
        records = control.records(emulator.info["mailbox"])
        with_cid = [r for r in records if r["depth"] == 0 and r["content_id"]]
        control.reset_stats()
        record = with_cid[0]
        body = client.message_body(None, record["message_id"])
        attachment = client.get_attachment(None, record["message_id"], record["attachment_id"])
        requests_made = control.stats()["totals"]["requests"]
        others = [
            client.get_attachment(None, r["message_id"], r["attachment_id"]) for r in with_cid[1:]
        ]

    assert {r["is_inline"] for r in with_cid} == {True, False}
    assert requests_made == 2
    assert body is not None and body.content_type == "html"
    assert f'src="cid:{record["content_id"]}"' in (body.content or "")
    assert isinstance(attachment, FileAttachment)
    assert attachment.content_id == record["content_id"]
    assert (attachment.name, attachment.size) == (record["name"], record["size"])
    assert attachment.model_extra is not None and "contentBytes" not in attachment.model_extra
    for other, source in zip(others, with_cid[1:], strict=True):
        assert isinstance(other, FileAttachment)
        assert other.content_id == source["content_id"]
        assert other.is_inline == source["is_inline"]


def test_a_single_attachment_of_each_kind_reads_whole(client: GraphClient, emulator: Any) -> None:
    with EmulatorControl(emulator.info) as control:
        records = control.records(emulator.info["mailbox"])
    first = {r["kind"]: r for r in reversed(records) if r["depth"] == 0}

    read = {
        kind: client.get_attachment(None, r["message_id"], r["attachment_id"])
        for kind, r in first.items()
    }

    assert isinstance(read["item"], ItemAttachment)
    assert isinstance(read["reference"], ReferenceAttachment)
    assert read["reference"].source_url
    assert isinstance(read["file"], FileAttachment)
    assert {kind: a.id for kind, a in read.items()} == {
        kind: r["attachment_id"] for kind, r in first.items()
    }


def test_a_text_body_and_a_vanished_message(private: tuple[EmulatorControl, GraphClient]) -> None:
    control, graph = private
    plain = control.add_message(subject="plain", body="just text", body_type="text")
    gone = control.add_message(subject="gone", body="<p>soon gone</p>")
    control.remove_message(gone["id"])

    body = graph.message_body(None, plain["id"])
    with pytest.raises(GraphError) as caught:
        graph.message_body(None, gone["id"])

    assert body is not None and (body.content_type, body.content) == ("text", "just text")
    assert caught.value.status == 404


def test_an_attached_message_comes_as_mime(private: tuple[EmulatorControl, GraphClient]) -> None:
    control, graph = private
    eml = (
        b"From: a@example.com\r\nTo: b@example.com\r\nSubject: inner\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    )
    added = control.add_message(
        subject="outer", attachments=[EmulatorControl.item(eml, "inner.eml")]
    )
    listed = graph.list_attachments(None, [added["id"]])[added["id"]]

    item = listed[0]
    mime = graph.download_attachment(None, added["id"], item, lambda chunks: b"".join(chunks))

    assert isinstance(item, ItemAttachment)
    assert b"Subject: inner" in mime


def test_a_message_that_vanished_is_left_out(private: tuple[EmulatorControl, GraphClient]) -> None:
    control, graph = private
    kept = control.add_message(
        subject="kept", attachments=[EmulatorControl.file("a.txt", b"a", "text/plain")]
    )
    gone = control.add_message(subject="gone")
    control.remove_message(gone["id"])

    listed = graph.list_attachments(None, [kept["id"], gone["id"]])

    assert list(listed) == [kept["id"]]
    assert isinstance(listed[kept["id"]][0], FileAttachment)


def test_an_app_without_the_mailbox_is_told_which_grant_is_missing(
    emulator: Any, settings_for: SettingsFor, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(
        emulator.info,
        client_id=emulator.info["unscoped_client_id"],
        client_secret=emulator.info["unscoped_client_secret"],
    )
    caplog.set_level(logging.DEBUG)

    with GraphClient(settings) as graph:
        token = graph.credential.acquire_token().value
        with pytest.raises(PermissionProblem) as caught:
            graph.check_access(emulator.info["mailbox"])

    text = str(caught.value)
    assert caught.value.status == 403
    assert caught.value.code == "ErrorAccessDenied"
    assert caught.value.request_id
    assert "Mail.Read application permission" in text
    assert f"RBAC for Applications assignment for {emulator.info['mailbox']}" in text
    for secret in (token, emulator.info["unscoped_client_secret"]):
        assert secret not in text
        assert secret not in caplog.text


def test_delegated_refusal_names_the_mailbox_permission(
    emulator: Any, settings_for: SettingsFor
) -> None:
    with GraphClient(settings_for(emulator.info, "delegated")) as graph:
        problem = graph._error_from(
            403,
            {},
            {"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}},
            "open folder",
            "shared@contoso.example",
        )

    assert isinstance(problem, PermissionProblem)
    assert "Mail.Read.Shared" in str(problem)
    assert "Full Access (or Read) permission on shared@contoso.example" in str(problem)


def test_an_unknown_mailbox_is_named(client: GraphClient) -> None:
    with pytest.raises(MailboxNotFound) as caught:
        client.check_access("nobody@contoso.example")

    assert "nobody@contoso.example" in str(caught.value)
    assert "O365_MAILBOX" in str(caught.value)


def test_a_link_to_another_host_never_gets_the_token(client: GraphClient) -> None:
    inbox = client.resolve_folder(None, "inbox")
    elsewhere = "https://attacker.example/v1.0/users/x/mailFolders/inbox/messages/delta"

    with pytest.raises(Exception, match="refusing to send the token"):
        next(client.iter_delta(None, inbox.id, elsewhere))
