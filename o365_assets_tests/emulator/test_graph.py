"""Graph mail over real HTTPS: folders, message listing with each query option, paging,
immutable ids, and the error replies clients depend on."""

import datetime
from collections.abc import Callable, Iterator

import msal
import pytest
import requests

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl
from o365_assets_tests.emulator.graph_client import (
    Graph,
    app_token,
    assert_graph_error,
    delegated_token,
)


@pytest.fixture(scope="module")
def graph(emulator: ThreadedEmulator) -> Iterator[Graph]:
    client = Graph(emulator)
    yield client
    # An idle keep-alive connection would hold up the emulator's shutdown.
    client.close()


def _inbox_total(emulator: ThreadedEmulator) -> int:
    mailbox = emulator.state.mail.mailbox(emulator.info["mailbox"])
    return len(mailbox.in_folder(mailbox.folder("inbox")))


# -- folders ------------------------------------------------------------------------------------


def test_folders_list_well_known_ones_and_resolve_by_name_and_id(graph: Graph) -> None:
    listed = graph.get(f"{graph.mailbox}/mailFolders", params={"$top": "50"}).json()["value"]
    names = {folder["displayName"] for folder in listed}
    assert {"Inbox", "Archive", "Sent Items", "Deleted Items"} <= names

    by_name = graph.get(f"{graph.mailbox}/mailFolders/inbox").json()
    inbox = next(folder for folder in listed if folder["displayName"] == "Inbox")
    assert by_name["id"] == inbox["id"]
    by_id = graph.get(f"{graph.mailbox}/mailFolders/{inbox['id']}").json()
    assert by_id["displayName"] == "Inbox"
    assert by_id["totalItemCount"] > 0
    assert graph.get(f"{graph.mailbox}/mailFolders/ARCHIVE").json()["displayName"] == "Archive"

    children = graph.get(f"{graph.mailbox}/mailFolders/inbox/childFolders").json()["value"]
    assert [child["displayName"] for child in children] == ["Invoices"]
    assert children[0]["parentFolderId"] == inbox["id"]


def test_folder_paging_and_select(graph: Graph) -> None:
    page = graph.get(f"{graph.mailbox}/mailFolders", params={"$top": "2"}).json()
    assert len(page["value"]) == 2
    assert "@odata.nextLink" in page
    everything = graph.all_pages(f"{graph.mailbox}/mailFolders", params={"$top": "2"})
    assert len(everything) == 6

    selected = graph.get(f"{graph.mailbox}/mailFolders", params={"$select": "displayName"})
    assert set(selected.json()["value"][0]) == {"id", "displayName"}


def test_folders_filter_on_display_name_in_any_letter_case(graph: Graph) -> None:
    path = f"{graph.mailbox}/mailFolders"

    def names(url: str, clause: str) -> list[str]:
        response = graph.get(url, params={"$filter": clause})
        assert response.status_code == 200, response.text[:300]
        return sorted(folder["displayName"] for folder in response.json()["value"])

    assert names(path, "displayName eq 'sent items'") == ["Sent Items"]
    assert names(f"{path}/inbox/childFolders", "displayName eq 'INVOICES'") == ["Invoices"]
    assert names(path, "displayName eq 'Inbox' or displayName eq 'Archive'") == [
        "Archive",
        "Inbox",
    ]
    assert names(path, "displayName eq 'Bob''s reports'") == []
    assert "Inbox" in names(path, "totalItemCount gt 0 and displayName ne 'Archive'")
    assert "Inbox" not in names(path, "displayName ne 'inbox'")
    for clause in ("noSuchProperty eq 'x'", "displayName eq 3", "totalItemCount gt 'x'"):
        assert_graph_error(graph.get(path, params={"$filter": clause}), 400)


def test_unknown_folder_is_404(graph: Graph) -> None:
    assert_graph_error(graph.get(f"{graph.mailbox}/mailFolders/nosuchfolder"), 404)


# -- messages -----------------------------------------------------------------------------------


def test_message_json_has_the_fields_graph_returns(graph: Graph) -> None:
    body = graph.get(f"{graph.mailbox}/mailFolders/inbox/messages", params={"$top": "1"}).json()
    assert body["@odata.context"].endswith("/messages")
    message = body["value"][0]
    for name in (
        "id",
        "createdDateTime",
        "lastModifiedDateTime",
        "changeKey",
        "receivedDateTime",
        "sentDateTime",
        "hasAttachments",
        "internetMessageId",
        "subject",
        "bodyPreview",
        "importance",
        "parentFolderId",
        "conversationId",
        "isRead",
        "body",
        "from",
        "sender",
        "toRecipients",
        "ccRecipients",
        "flag",
    ):
        assert name in message, name
    assert message["body"]["contentType"] in ("html", "text")
    assert message["from"]["emailAddress"]["address"]
    datetime.datetime.fromisoformat(message["receivedDateTime"].replace("Z", "+00:00"))


def test_select_returns_only_what_was_asked(graph: Graph) -> None:
    value = graph.get(
        f"{graph.mailbox}/messages", params={"$select": "subject,receivedDateTime", "$top": "5"}
    ).json()["value"]
    assert len(value) == 5
    for message in value:
        assert set(message) == {"@odata.etag", "id", "subject", "receivedDateTime"}

    unknown = graph.get(f"{graph.mailbox}/messages", params={"$select": "subject,nonsense"})
    assert_graph_error(unknown, 400, "RequestBroker--ParseUri")


def test_internet_message_headers_only_when_selected(graph: Graph) -> None:
    plain = graph.get(f"{graph.mailbox}/messages", params={"$top": "1"}).json()["value"][0]
    assert "internetMessageHeaders" not in plain
    chosen = graph.get(
        f"{graph.mailbox}/messages", params={"$top": "1", "$select": "internetMessageHeaders"}
    ).json()["value"][0]
    assert {"name": "Subject", "value": chosen.get("subject", plain["subject"])} in chosen[
        "internetMessageHeaders"
    ]


@pytest.mark.parametrize("top", ["0", "1001", "5000", "-1", "ten"])
def test_top_out_of_range_is_400(graph: Graph, top: str) -> None:
    assert_graph_error(graph.get(f"{graph.mailbox}/messages", params={"$top": top}), 400)


def test_default_page_is_ten_and_top_1000_is_allowed(
    graph: Graph, emulator: ThreadedEmulator
) -> None:
    default = graph.get(f"{graph.mailbox}/mailFolders/inbox/messages").json()
    assert len(default["value"]) == 10
    big = graph.get(f"{graph.mailbox}/mailFolders/inbox/messages", params={"$top": "1000"})
    assert len(big.json()["value"]) == _inbox_total(emulator)
    assert "@odata.nextLink" not in big.json()


def test_paging_with_next_link_reaches_every_message_once(
    graph: Graph, emulator: ThreadedEmulator
) -> None:
    first = graph.get(
        f"{graph.mailbox}/mailFolders/inbox/messages",
        params={"$top": "7", "$select": "subject", "$count": "true"},
    ).json()
    assert first["@odata.count"] == _inbox_total(emulator)

    pages = graph.all_pages(
        f"{graph.mailbox}/mailFolders/inbox/messages", params={"$top": "7", "$select": "subject"}
    )
    ids = [message["id"] for message in pages]
    assert len(ids) == len(set(ids)) == _inbox_total(emulator)
    assert all(set(message) == {"@odata.etag", "id", "subject"} for message in pages)


def test_skip_skips(graph: Graph) -> None:
    path = f"{graph.mailbox}/messages"
    whole = graph.get(path, params={"$top": "6", "$select": "subject"}).json()["value"]
    skipped = graph.get(path, params={"$top": "3", "$skip": "3", "$select": "subject"})
    assert [m["id"] for m in skipped.json()["value"]] == [m["id"] for m in whole[3:]]


def test_default_order_is_newest_first_and_orderby_asc_reverses_it(graph: Graph) -> None:
    path = f"{graph.mailbox}/mailFolders/inbox/messages"
    newest = graph.all_pages(path, params={"$top": "100", "$select": "receivedDateTime"})
    times = [m["receivedDateTime"] for m in newest]
    assert times == sorted(times, reverse=True)

    oldest = graph.all_pages(
        path, params={"$top": "100", "$select": "receivedDateTime", "$orderby": "receivedDateTime"}
    )
    assert [m["receivedDateTime"] for m in oldest] == sorted(times)


def test_filter_on_received_time_bounds(graph: Graph) -> None:
    path = f"{graph.mailbox}/messages"
    everything = graph.all_pages(path, params={"$top": "100", "$select": "receivedDateTime"})
    times = sorted(m["receivedDateTime"] for m in everything)
    middle = times[len(times) // 2]

    later = graph.all_pages(
        path,
        params={"$top": "100", "$filter": f"receivedDateTime ge {middle}", "$select": "subject"},
    )
    assert len(later) == sum(t >= middle for t in times)
    strictly = graph.all_pages(
        path, params={"$top": "100", "$filter": f"receivedDateTime gt {middle}"}
    )
    assert len(strictly) == sum(t > middle for t in times)

    window = graph.all_pages(
        path,
        params={
            "$top": "100",
            "$filter": f"receivedDateTime ge {times[5]} and receivedDateTime lt {times[15]}",
        },
    )
    assert len(window) == sum(times[5] <= t < times[15] for t in times)
    before = graph.all_pages(
        path, params={"$top": "100", "$filter": f"receivedDateTime le {times[0]}"}
    )
    assert len(before) == sum(t <= times[0] for t in times)


def test_filter_on_has_attachments(graph: Graph) -> None:
    path = f"{graph.mailbox}/messages"
    everything = graph.all_pages(path, params={"$top": "100", "$select": "hasAttachments"})
    with_files = graph.all_pages(
        path, params={"$top": "100", "$filter": "hasAttachments eq true", "$select": "id"}
    )
    without = graph.all_pages(
        path, params={"$top": "100", "$filter": "hasAttachments eq false", "$select": "id"}
    )
    assert len(with_files) == sum(m["hasAttachments"] for m in everything)
    assert len(with_files) + len(without) == len(everything)
    assert with_files and without


@pytest.mark.parametrize(
    "clause",
    [
        "receivedDateTime ge",
        "receivedDateTime ge 2026-01-01T00:00:00Z and",
        "receivedDateTime gee 2026-01-01T00:00:00Z",
        "receivedDateTime ge 'yesterday'",
        "hasAttachments eq maybe",
        "hasAttachments gt true",
        "(receivedDateTime ge 2026-01-01T00:00:00Z",
        "receivedDateTime ge 2026-13-45T00:00:00Z",
        "contains(subject, 'x')",
        "1 eq 1",
        "receivedDateTime ge 2026-01-01T00:00:00Z ) or",
        "subject eq 'unterminated",
        "noSuchProperty eq 1",
        "",
    ],
)
def test_malformed_filter_is_a_400_never_a_500(graph: Graph, clause: str) -> None:
    response = graph.get(f"{graph.mailbox}/messages", params={"$filter": clause})
    assert_graph_error(response, 400)
    assert response.json()["error"]["code"] in ("BadRequest", "RequestBroker--ParseUri")


def test_orderby_with_filter_needs_the_ordered_property_first(graph: Graph) -> None:
    path = f"{graph.mailbox}/messages"
    since = "2000-01-01T00:00:00Z"
    refused = graph.get(
        path,
        params={
            "$filter": f"hasAttachments eq true and receivedDateTime ge {since}",
            "$orderby": "receivedDateTime desc",
        },
    )
    assert_graph_error(refused, 400, "InefficientFilter")

    accepted = graph.all_pages(
        path,
        params={
            "$filter": f"receivedDateTime ge {since} and hasAttachments eq true",
            "$orderby": "receivedDateTime desc",
            "$top": "100",
            "$select": "receivedDateTime,hasAttachments",
        },
    )
    assert accepted and all(m["hasAttachments"] for m in accepted)
    times = [m["receivedDateTime"] for m in accepted]
    assert times == sorted(times, reverse=True)


def test_expand_attachments_without_content_bytes(graph: Graph) -> None:
    value = graph.all_pages(
        f"{graph.mailbox}/messages",
        params={
            "$top": "100",
            "$select": "subject,hasAttachments",
            "$expand": "attachments($select=id,name,contentType,size,isInline)",
        },
    )
    with_attachments = [m for m in value if m["attachments"]]
    assert with_attachments
    for message in with_attachments:
        for attachment in message["attachments"]:
            assert "contentBytes" not in attachment
            assert {"id", "name", "contentType", "size", "isInline", "@odata.type"} <= set(
                attachment
            )
    assert_graph_error(graph.get(f"{graph.mailbox}/messages", params={"$expand": "nonsense"}), 400)


def test_inline_only_message_has_attachments_false_as_in_exchange(graph: Graph) -> None:
    value = graph.all_pages(
        f"{graph.mailbox}/messages",
        params={"$top": "100", "$expand": "attachments($select=isInline,contentId)"},
    )
    chart = next(m for m in value if m["subject"] == "Chart of the week")
    assert chart["hasAttachments"] is False
    assert chart["attachments"] and all(a["isInline"] for a in chart["attachments"])
    for attachment in chart["attachments"]:
        assert f"cid:{attachment['contentId']}" in chart["body"]["content"]


def test_body_as_text_when_preferred(graph: Graph) -> None:
    response = graph.get(
        f"{graph.mailbox}/messages",
        params={"$top": "3", "$select": "body"},
        prefer='outlook.body-content-type="text"',
    )
    assert 'outlook.body-content-type="text"' in response.headers["Preference-Applied"]
    for message in response.json()["value"]:
        assert message["body"]["contentType"] == "text"
        assert "<html" not in message["body"]["content"]


def test_single_message_and_its_mime(graph: Graph) -> None:
    listed = graph.get(f"{graph.mailbox}/messages", params={"$top": "1"}).json()["value"][0]
    one = graph.get(f"{graph.mailbox}/messages/{listed['id']}").json()
    assert one["id"] == listed["id"] and one["subject"] == listed["subject"]
    in_folder = graph.get(
        f"{graph.mailbox}/mailFolders/{listed['parentFolderId']}/messages/{listed['id']}"
    )
    assert in_folder.status_code == 200

    mime = graph.get(f"{graph.mailbox}/messages/{listed['id']}/$value")
    assert mime.status_code == 200
    assert b"Subject:" in mime.content


def test_unknown_message_is_404(graph: Graph) -> None:
    assert_graph_error(graph.get(f"{graph.mailbox}/messages/AAMkAGnope="), 404, "ErrorItemNotFound")


def test_unknown_query_option_is_400(graph: Graph) -> None:
    response = graph.get(f"{graph.mailbox}/messages", params={"$bogus": "1"})
    assert_graph_error(response, 400)


# -- immutable ids ------------------------------------------------------------------------------


def test_immutable_ids_survive_a_move_and_rest_ids_do_not(
    make_emulator: Callable[..., ThreadedEmulator],
) -> None:
    emu = make_emulator(mail={"messages": 3, "large_attachment_bytes": 0})
    with Graph(emu) as graph, EmulatorControl(emu.info) as control:
        _move_and_compare_ids(graph, control)


def _move_and_compare_ids(graph: Graph, control: EmulatorControl) -> None:
    added = control.add_message(subject="to be moved")
    inbox = f"{graph.mailbox}/mailFolders/inbox/messages"
    immutable = 'IdType="ImmutableId"'

    rest_listed = graph.get(inbox, params={"$top": "50"}).json()["value"]
    rest_id = next(m["id"] for m in rest_listed if m["subject"] == "to be moved")
    response = graph.get(inbox, params={"$top": "50"}, prefer=immutable)
    assert response.headers["Preference-Applied"] == immutable
    immutable_id = next(m["id"] for m in response.json()["value"] if m["subject"] == "to be moved")
    assert immutable_id == added["id"]
    assert rest_id != immutable_id

    control.move_message(added["id"], "archive")

    assert_graph_error(graph.get(f"{graph.mailbox}/messages/{rest_id}"), 404, "ErrorItemNotFound")
    after = graph.get(f"{graph.mailbox}/messages/{immutable_id}", prefer=immutable)
    assert after.status_code == 200
    assert after.json()["id"] == immutable_id
    archive = graph.get(f"{graph.mailbox}/mailFolders/archive/messages").json()["value"]
    new_rest_id = next(m["id"] for m in archive if m["subject"] == "to be moved")
    assert new_rest_id not in (rest_id, immutable_id)
    assert graph.get(f"{graph.mailbox}/messages/{new_rest_id}").json()["subject"] == "to be moved"
    assert (
        graph.get(f"{graph.mailbox}/mailFolders/inbox/messages/{immutable_id}").status_code == 404
    )


# -- who may read what --------------------------------------------------------------------------


def test_missing_forged_and_expired_tokens_are_401(emulator: ThreadedEmulator) -> None:
    path = f"/users/{emulator.info['mailbox']}/messages"

    missing = Graph(emulator, token="").get(path)
    assert_graph_error(missing, 401, "InvalidAuthenticationToken")
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    real = app_token(emulator)
    header, payload, signature = real.split(".")
    forged = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert_graph_error(Graph(emulator, token=forged).get(path), 401, "InvalidAuthenticationToken")
    assert_graph_error(Graph(emulator, token="not-a-jwt").get(path), 401)

    expired = app_token(emulator, lifetime=-120)
    response = Graph(emulator, token=expired).get(path)
    assert_graph_error(response, 401, "InvalidAuthenticationToken")
    assert "expired" in response.json()["error"]["message"]


def test_app_without_the_mailbox_in_scope_is_denied(emulator: ThreadedEmulator) -> None:
    token = app_token(emulator, client_id=emulator.info["unscoped_client_id"])
    response = Graph(emulator, token=token).get(f"/users/{emulator.info['mailbox']}/messages")
    assert_graph_error(response, 403, "ErrorAccessDenied")
    assert response.json()["error"]["message"] == (
        "Access is denied. Check credentials and try again."
    )


def test_app_without_mail_role_is_denied(emulator: ThreadedEmulator) -> None:
    token = app_token(emulator, roles=("User.Read.All",))
    response = Graph(emulator, token=token).get(f"/users/{emulator.info['mailbox']}/messages")
    assert_graph_error(response, 403, "ErrorAccessDenied")


def test_unknown_mailbox_is_404(graph: Graph) -> None:
    assert_graph_error(graph.get("/users/nobody@contoso.example/messages"), 404, "ErrorInvalidUser")


def test_delegated_token_reads_shared_mailbox_only_with_mail_read_shared(
    emulator: ThreadedEmulator,
) -> None:
    shared = f"/users/{emulator.info['mailbox']}/messages"
    allowed = Graph(emulator, token=delegated_token(emulator, "Mail.Read.Shared User.Read"))
    assert allowed.get(shared).status_code == 200
    assert allowed.get("/me/messages").status_code == 200
    assert allowed.get("/me").json()["userPrincipalName"] == emulator.info["user"]

    own_only = Graph(emulator, token=delegated_token(emulator, "Mail.Read User.Read"))
    assert_graph_error(own_only.get(shared), 403, "ErrorAccessDenied")
    assert own_only.get("/me/mailFolders/inbox/messages").status_code == 200


def test_me_needs_a_delegated_token(graph: Graph) -> None:
    assert_graph_error(graph.get("/me/messages"), 400)


def test_mailbox_by_object_id(graph: Graph, emulator: ThreadedEmulator) -> None:
    object_id = emulator.state.mail.mailbox(emulator.info["mailbox"]).object_id
    assert graph.get(f"/users/{object_id}/mailFolders/inbox").status_code == 200


def test_token_from_msal_client_credentials_is_accepted(emulator: ThreadedEmulator) -> None:
    info = emulator.info
    http = requests.Session()
    http.trust_env = False
    http.verify = info["ca_path"]
    app = msal.ConfidentialClientApplication(
        info["client_id"],
        client_credential=info["client_secret"],
        authority=f"{info['base_url']}/{info['tenant_id']}",
        instance_discovery=False,
        http_client=http,
    )
    try:
        result = app.acquire_token_for_client(scopes=["https://graph.microsoft.com/.default"])
    finally:
        http.close()
    assert "access_token" in result, result.get("error_description")
    with Graph(emulator, token=result["access_token"]) as graph:
        assert graph.get(f"/users/{info['mailbox']}/messages").status_code == 200


# -- the shape of failure -----------------------------------------------------------------------


def test_unknown_paths_are_graph_404s(graph: Graph) -> None:
    for path in ("/nonsense", f"{graph.mailbox}/calendar", f"{graph.mailbox}/messages/x/y/z"):
        assert_graph_error(graph.get(path), 404)


def test_writes_are_refused_with_405(graph: Graph) -> None:
    response = graph.session.delete(f"{graph.root}{graph.mailbox}/messages", timeout=30)
    assert_graph_error(response, 405)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("{mb}/messages", {"$top": "1e3"}),
        ("{mb}/messages", {"$skip": "-1"}),
        ("{mb}/messages", {"$skip": "many"}),
        ("{mb}/messages", {"$select": ""}),
        ("{mb}/messages", {"$expand": "attachments("}),
        ("{mb}/messages", {"$expand": "attachments($select=nope)"}),
        ("{mb}/messages", {"$orderby": "receivedDateTime sideways"}),
        ("{mb}/messages", {"$orderby": "nothing"}),
        ("{mb}/messages", {"$filter": "(((("}),
        ("{mb}/messages", {"$filter": "receivedDateTime ge 2026-01-01T00:00:00Z" * 50}),
        ("{mb}/messages/\u202e\u0000", {}),
        ("{mb}/messages/%2F..%2F..", {}),
        ("{mb}/mailFolders/inbox/messages/delta", {"$skiptoken": "x" * 5000}),
        ("{mb}/mailFolders/inbox/messages/delta", {"$deltatoken": "."}),
        ("{mb}/messages/AAkALgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==/attachments/x/$value", {}),
        ("/users/", {}),
        ("/users//messages", {}),
        ("/$batch", {}),
        ("/users/\u00e9@contoso.example/messages", {}),
    ],
)
def test_odd_requests_get_a_graph_error_never_a_500(
    graph: Graph, path: str, params: dict[str, str]
) -> None:
    response = graph.get(path.replace("{mb}", graph.mailbox), params=params)
    assert response.status_code < 500, response.text[:300]
    if response.status_code >= 400:
        assert_graph_error(response, response.status_code)
