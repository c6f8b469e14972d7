"""Third-party Graph clients, unmodified, against the emulator.

If the emulator drifted from the real protocol (paging, attachment types, token handling),
these well-used clients would break here first.

- The official `msgraph-sdk` (kiota over httpx), signed in by `azure-identity`'s
  ClientSecretCredential through the emulator's Entra side. Only public settings are used:
  the credential's authority and CA, the auth provider's allowed hosts, the adapter's base URL
  and its httpx client.
- The `O365` package. Its Graph protocol is pointed at the emulator by subclassing the protocol
  configuration (its documented way to change `service_url`). Its `Connection` builds its msal
  client with a fixed `https://login.microsoftonline.com/{tenant}` authority and no way to turn
  off instance discovery, so it cannot sign in against any other host; its token backend is
  an msal `TokenCache`, though, and the test fills that cache through msal pointed at the
  emulator, after which O365 itself makes every Graph call. Its sessions take `verify_ssl`,
  but `REQUESTS_CA_BUNDLE` from the environment overrides a session's `verify` in requests,
  so the variable is set to the emulator's CA for the duration of that test.
"""

import asyncio
import base64
import gc
import hashlib
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import msal
import pytest
import requests
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import (
    AzureIdentityAuthenticationProvider,
)
from msgraph import GraphServiceClient
from msgraph.generated.models.file_attachment import FileAttachment
from msgraph.generated.models.item_attachment import ItemAttachment
from msgraph.generated.models.message import Message
from msgraph.generated.models.reference_attachment import ReferenceAttachment
from msgraph.generated.users.item.mail_folders.item.messages.messages_request_builder import (
    MessagesRequestBuilder,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph_core import GraphClientFactory
from msgraph_core.tasks.page_iterator import PageIterator
from O365 import Account
from O365.connection import MSGraphProtocol

from o365_assets.emulator import ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


@pytest.fixture(autouse=True)
def release_connections() -> Iterator[None]:
    """azure-identity's credential and O365 leave a spent response, and so its keep-alive
    connection, in a reference cycle after they are closed; collect it so that the shared
    emulator does not wait on that connection when it shuts down."""
    yield
    gc.collect()


@pytest.fixture(scope="module")
def records(emulator: ThreadedEmulator) -> dict[str, dict[str, Any]]:
    with EmulatorControl(emulator.info) as control:
        return {record["attachment_id"]: record for record in control.records()}


def _inbox_count(emulator: ThreadedEmulator) -> int:
    mailbox = emulator.state.mail.mailbox(emulator.info["mailbox"])
    return len(mailbox.in_folder(mailbox.folder("inbox")))


# -- msgraph-sdk ----------------------------------------------------------------------------------


async def _with_sdk(info: dict[str, Any], records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    credential = ClientSecretCredential(
        info["tenant_id"],
        info["client_id"],
        info["client_secret"],
        authority=info["base_url"],
        disable_instance_discovery=True,
        connection_verify=info["ca_path"],
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[GRAPH_SCOPE], allowed_hosts=["127.0.0.1"]
    )
    tls = ssl.create_default_context(cafile=info["ca_path"])
    # msgraph-core's middleware transport does not pass `aclose` on to the transport it wraps,
    # so the test keeps a handle on that transport to close its connections itself.
    transport = httpx.AsyncHTTPTransport(verify=tls)
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(transport=transport, trust_env=False, timeout=60)
    )
    try:
        adapter = GraphRequestAdapter(auth, client=http)
        adapter.base_url = f"{info['base_url']}/v1.0"
        client = GraphServiceClient(request_adapter=adapter)
        return await _read_mailbox(client, adapter, info, records)
    finally:
        await http.aclose()
        await transport.aclose()
        credential.close()


async def _read_mailbox(
    client: GraphServiceClient,
    adapter: GraphRequestAdapter,
    info: dict[str, Any],
    records: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    mailbox = client.users.by_user_id(info["mailbox"])
    query = MessagesRequestBuilder.MessagesRequestBuilderGetQueryParameters(
        top=7, select=["subject", "hasAttachments", "receivedDateTime"]
    )
    first = await mailbox.mail_folders.by_mail_folder_id("inbox").messages.get(
        request_configuration=RequestConfiguration(query_parameters=query)
    )
    assert first is not None and first.odata_next_link

    messages: list[Message] = []

    def collect(message: Message) -> bool:
        messages.append(message)
        return True

    await PageIterator(first, adapter).iterate(collect)

    kinds: dict[str, int] = {"file": 0, "item": 0, "reference": 0}
    for message in messages:
        if not message.has_attachments:
            continue
        listed = await mailbox.messages.by_message_id(message.id).attachments.get()
        for attachment in listed.value:
            record = records[attachment.id]
            if isinstance(attachment, FileAttachment):
                kinds["file"] += 1
                digest = hashlib.sha256(attachment.content_bytes).hexdigest()
                assert digest == record["sha256"], attachment.name
            elif isinstance(attachment, ItemAttachment):
                kinds["item"] += 1
            elif isinstance(attachment, ReferenceAttachment):
                kinds["reference"] += 1
            assert attachment.size == record["size"]

    large = next(r for r in records.values() if r["name"] == "ledger-export.csv")
    request = RequestInformation(
        Method.GET,
        f"{info['base_url']}/v1.0/users/{info['mailbox']}/messages/{large['message_id']}"
        f"/attachments/{large['attachment_id']}/$value",
    )
    raw = await adapter.send_primitive_async(request, "bytes", {})
    return {
        "ids": [message.id for message in messages],
        "kinds": kinds,
        "large_sha256": hashlib.sha256(raw).hexdigest(),
        "large": large,
    }


def test_msgraph_sdk_lists_pages_and_downloads(
    emulator: ThreadedEmulator, records: dict[str, dict[str, Any]]
) -> None:
    seen = asyncio.run(_with_sdk(emulator.info, records))
    assert len(seen["ids"]) == len(set(seen["ids"])) == _inbox_count(emulator)
    assert seen["kinds"]["file"] > 20
    assert seen["kinds"]["item"] >= 2
    assert seen["kinds"]["reference"] == 1
    assert seen["large_sha256"] == seen["large"]["sha256"]


# -- O365 -----------------------------------------------------------------------------------------


@pytest.fixture
def o365_account(emulator: ThreadedEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    info = emulator.info
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", info["ca_path"])
    monkeypatch.setenv("CURL_CA_BUNDLE", info["ca_path"])

    class EmulatorGraphProtocol(MSGraphProtocol):
        _protocol_url = f"{info['base_url']}/"

    account = Account(
        (info["client_id"], info["client_secret"]),
        auth_flow_type="credentials",
        tenant_id=info["tenant_id"],
        protocol=EmulatorGraphProtocol(default_resource=info["mailbox"]),
        main_resource=info["mailbox"],
        verify_ssl=info["ca_path"],
        requests_delay=0,
    )
    with requests.Session() as http:
        http.trust_env = False
        http.verify = info["ca_path"]
        signer = msal.ConfidentialClientApplication(
            info["client_id"],
            client_credential=info["client_secret"],
            authority=f"{info['base_url']}/{info['tenant_id']}",
            instance_discovery=False,
            http_client=http,
            token_cache=account.con.token_backend,
        )
        result = signer.acquire_token_for_client(scopes=[GRAPH_SCOPE])
    assert "access_token" in result, result.get("error_description")
    assert account.is_authenticated
    yield account
    for session in (account.con.session, account.con.naive_session):
        if session is not None:
            session.close()


def test_o365_lists_a_shared_mailbox_and_downloads_attachments(
    o365_account: Account, emulator: ThreadedEmulator, records: dict[str, dict[str, Any]]
) -> None:
    mailbox = o365_account.mailbox(resource=emulator.info["mailbox"])
    messages = list(mailbox.inbox_folder().get_messages(limit=None, batch=10))
    assert len(messages) == len({m.object_id for m in messages}) == _inbox_count(emulator)

    compared = 0
    items = []
    for message in messages:
        if not message.has_attachments:
            continue
        assert message.attachments.download_attachments()
        for attachment in message.attachments:
            record = records[attachment.attachment_id]
            if record["kind"] == "file":
                data = base64.b64decode(attachment.content)
                assert hashlib.sha256(data).hexdigest() == record["sha256"], record["name"]
                compared += 1
            elif record["kind"] == "item":
                items.append((message, attachment, record))
    assert compared > 20
    assert items

    for message, attachment, record in items:
        mime = message.attachments.get_mime_content(attachment)
        assert hashlib.sha256(mime).hexdigest() == record["sha256"]
        inner = message.attachments.get_eml_as_object(attachment)
        assert inner is not None and inner.subject
