"""The Graph mail client the assets and sensors use: folders, delta sync, listings, the cheap
new-mail check, attachment metadata in batches, and streamed attachment downloads."""

import base64
import datetime
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from o365_assets.graph.auth import Credential, CredentialFacts, build_credential
from o365_assets.graph.errors import (
    AuthError,
    GraphError,
    MailboxNotFound,
    NotDownloadable,
    PermissionProblem,
    ResponseShapeError,
    SyncStateLost,
    ThrottledTooLong,
)
from o365_assets.graph.models import (
    ATTACHMENT_FIELDS,
    FOLDER_FIELDS,
    MESSAGE_FIELDS,
    STAMP_FIELDS,
    AnyAttachment,
    DeltaPage,
    ItemBody,
    MailboxAccess,
    MailFolder,
    Message,
    MessageStamp,
    NewMail,
    ReferenceAttachment,
    RemovedMessage,
    parse_attachment,
    parse_model,
)
from o365_assets.graph.settings import AuthMode, GraphSettings
from o365_assets.graph.transport import (
    DROPPED_CONNECTION,
    RETRY_STATUSES,
    Transport,
    graph_error_code,
    log_path,
    parse_retry_after,
    request_id_of,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

IMMUTABLE_IDS = 'IdType="ImmutableId"'
BATCH_LIMIT = 20
# Folder names Graph resolves itself, in any letter case.
WELL_KNOWN_FOLDERS = frozenset(
    {
        "inbox",
        "archive",
        "sentitems",
        "deleteditems",
        "drafts",
        "junkemail",
        "outbox",
        "msgfolderroot",
        "clutter",
        "conversationhistory",
        "recoverableitemsdeletions",
        "scheduled",
        "searchfolders",
        "syncissues",
        "conflicts",
        "localfailures",
        "serverfailures",
    }
)
_STATE_LOST_CODES = frozenset({"syncstatenotfound", "resyncrequired"})
_MAILBOX_MISSING_CODES = frozenset(
    {
        "errorinvaliduser",
        "mailboxnotenabledforrestapi",
        "mailboxnotfound",
        "errornonexistentmailbox",
    }
)
_ACCESS_DENIED_CODES = frozenset(
    {"erroraccessdenied", "accessdenied", "authorization_requestdenied"}
)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of at most `size` items."""
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def segment(value: str) -> str:
    """A path segment: an id or address percent-encoded, except for the `@` and `=` that
    addresses and base64 ids carry and a path segment allows as they are."""
    return quote(value, safe="@=")


def odata_string(value: str) -> str:
    """A string literal for `$filter`: quoted, with its own quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def odata_time(moment: datetime.datetime) -> str:
    """A timestamp as Graph's `$filter` wants it: UTC, seconds, `Z`."""
    if moment.tzinfo is None:
        raise ValueError("a filter time needs a time zone")
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class GraphClient:
    """Talks to Graph for one configuration; thread-safe, so downloads may run on a pool.

    Use as a context manager, or call `close()`. Every request asks for immutable ids and
    passes through the transport's retry policy and per-mailbox concurrency limit.
    """

    def __init__(
        self,
        settings: GraphSettings,
        *,
        credential: Credential | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.settings = settings
        self._owns_transport = transport is None and credential is None
        self.transport = transport or (credential.transport if credential else Transport(settings))
        self._owns_credential = credential is None
        self.credential = credential or build_credential(settings, self.transport)
        self.base = settings.graph_base
        self._origin = _origin(self.base)

    def __enter__(self) -> "GraphClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_credential:
            self.credential.close()
        if self._owns_transport:
            self.transport.close()

    # -- credential and access -------------------------------------------------------------

    def credential_facts(self) -> CredentialFacts:
        """What the credential is and grants (never the token)."""
        return self.credential.facts()

    def check_access(self, mailbox: str | None = None, folder: str = "inbox") -> MailboxAccess:
        """One cheap request that proves the mailbox opens with this credential; a refusal
        raises `PermissionProblem` saying which grant is missing."""
        mailbox = mailbox or self.settings.mailbox
        found = self.resolve_folder(mailbox, folder)
        return MailboxAccess(
            mailbox=mailbox,
            folder_id=found.id,
            folder_name=found.display_name,
            total_items=found.total_item_count,
        )

    def resolve_folder(self, mailbox: str | None, name_or_id: str) -> MailFolder:
        """A folder by well-known name (`inbox`), display name, path (`Inbox/Invoices`) or id."""
        mailbox = mailbox or self.settings.mailbox
        segments = [s for s in name_or_id.strip().split("/") if s]
        if not segments:
            raise MailboxNotFound("an empty folder name was configured; check O365_FOLDERS")
        select = {"$select": ",".join(FOLDER_FIELDS)}
        root = f"{self._mailbox_url(mailbox)}/mailFolders"

        first = segments[0]
        found: MailFolder | None
        if first.lower() in WELL_KNOWN_FOLDERS:
            found = self._get_folder(f"{root}/{first.lower()}", mailbox, select)
        else:
            found = self._child_by_name(root, first, mailbox)
            if found is None and len(segments) == 1:
                found = self._folder_by_id(f"{root}/{segment(first)}", mailbox, select)
        if found is None:
            raise MailboxNotFound(
                f"mailbox {mailbox} has no folder {first!r}; O365_FOLDERS takes well-known "
                f"names (inbox), display names, paths (Inbox/Invoices) or folder ids"
            )

        folder = found
        for name in segments[1:]:
            parent = folder
            child = self._child_by_name(f"{root}/{segment(parent.id)}/childFolders", name, mailbox)
            if child is None:
                raise MailboxNotFound(
                    f"folder {parent.display_name!r} in mailbox {mailbox} has no subfolder "
                    f"{name!r}; check O365_FOLDERS"
                )
            folder = child
        return folder

    def _get_folder(self, url: str, mailbox: str, params: Mapping[str, str]) -> MailFolder:
        body = self._get_json(url, mailbox, params=params, what="open folder")
        return parse_model(MailFolder, body, "mail folder")

    def _folder_by_id(self, url: str, mailbox: str, params: Mapping[str, str]) -> MailFolder | None:
        try:
            return self._get_folder(url, mailbox, params)
        except MailboxNotFound:
            raise
        except GraphError as exc:
            if exc.status in (400, 404):
                return None
            raise

    def _child_by_name(self, url: str, name: str, mailbox: str) -> MailFolder | None:
        # Graph compares the name in any letter case; siblings never share a name.
        params = {
            "$select": ",".join(FOLDER_FIELDS),
            "$filter": f"displayName eq {odata_string(name)}",
        }
        body = self._get_json(url, mailbox, params=params, what="find folder")
        found = _values(body, "find folder")
        return parse_model(MailFolder, found[0], "mail folder") if found else None

    # -- messages ----------------------------------------------------------------------------

    def iter_delta(
        self,
        mailbox: str | None,
        folder_id: str,
        delta_link: str | None = None,
        *,
        page_size: int | None = None,
    ) -> Iterator[DeltaPage]:
        """Changes in a folder since `delta_link` (or every message, without one), a page at a
        time. Store the last page's `delta_link` to continue next time.

        When Graph no longer knows the state (410, `syncStateNotFound`, `resyncRequired`)
        the sync starts over from scratch: the next page has `page_number` 1, `full_sync`
        and `resynced` set. Memory holds one page, whatever the folder's size.
        """
        mailbox = mailbox or self.settings.mailbox
        size = page_size or self.settings.page_size
        first_url = f"{self._mailbox_url(mailbox)}/mailFolders/{segment(folder_id)}/messages/delta"
        first_params = {"$select": ",".join(MESSAGE_FIELDS)}

        url, params = (delta_link, None) if delta_link else (first_url, first_params)
        full_sync = delta_link is None
        resynced = False
        page_number = 0
        while True:
            try:
                body = self._get_json(
                    url, mailbox, params=params, prefer=f"odata.maxpagesize={size}", what="delta"
                )
            except SyncStateLost:
                if full_sync:
                    raise
                log.warning(
                    "the delta state of folder %s in %s is gone; syncing it from scratch",
                    folder_id,
                    mailbox,
                )
                url, params = first_url, first_params
                full_sync = resynced = True
                page_number = 0
                continue

            page_number += 1
            messages: list[Message] = []
            removed: list[RemovedMessage] = []
            for index, item in enumerate(_values(body, "delta page")):
                where = f"delta page {page_number}, item {index}"
                if isinstance(item, dict) and "@removed" in item:
                    removed.append(parse_model(RemovedMessage, item, where))
                else:
                    messages.append(parse_model(Message, item, where))
            next_link = body.get("@odata.nextLink")
            new_delta = body.get("@odata.deltaLink")
            if not next_link and not new_delta:
                raise ResponseShapeError(
                    f"delta page {page_number} carries neither @odata.nextLink nor @odata.deltaLink"
                )

            yield DeltaPage(
                messages=messages,
                removed=removed,
                delta_link=None if next_link else str(new_delta),
                full_sync=full_sync,
                resynced=resynced,
                page_number=page_number,
            )
            if not next_link:
                return
            url, params = str(next_link), None

    def list_messages(
        self,
        mailbox: str | None,
        folder_id: str,
        *,
        received_from: datetime.datetime | None = None,
        received_before: datetime.datetime | None = None,
        with_attachments_only: bool = False,
        expand_attachments: bool = False,
        page_size: int | None = None,
    ) -> Iterator[Message]:
        """Messages of a folder, optionally in a received window `[from, before)`, optionally
        only those with attachments, optionally with their attachments' metadata expanded
        (then one request per page yields messages and attachments together)."""
        mailbox = mailbox or self.settings.mailbox
        clauses = []
        if received_from is not None:
            clauses.append(f"receivedDateTime ge {odata_time(received_from)}")
        if received_before is not None:
            clauses.append(f"receivedDateTime lt {odata_time(received_before)}")
        if with_attachments_only:
            clauses.append("hasAttachments eq true")
        params = {
            "$select": ",".join(MESSAGE_FIELDS),
            "$top": str(page_size or self.settings.page_size),
        }
        if clauses:
            params["$filter"] = " and ".join(clauses)
        if expand_attachments:
            params["$expand"] = f"attachments($select={','.join(ATTACHMENT_FIELDS)})"

        url = f"{self._mailbox_url(mailbox)}/mailFolders/{segment(folder_id)}/messages"
        for index, item in enumerate(self._paged(url, mailbox, params, "messages")):
            yield parse_model(Message, item, f"message {index}")

    def new_mail_since(
        self,
        mailbox: str | None,
        folder_id: str,
        since: datetime.datetime | None,
        *,
        limit: int = 50,
    ) -> NewMail:
        """One request: the newest messages received at or after `since`, for a sensor.

        `receivedDateTime` is both the order and the filter's first clause, as Graph
        requires. `more` says whether older matches were left out.
        """
        mailbox = mailbox or self.settings.mailbox
        params = {
            "$select": ",".join(STAMP_FIELDS),
            "$orderby": "receivedDateTime desc",
            "$top": str(max(1, min(limit, 1000))),
        }
        if since is not None:
            params["$filter"] = f"receivedDateTime ge {odata_time(since)}"
        url = f"{self._mailbox_url(mailbox)}/mailFolders/{segment(folder_id)}/messages"
        body = self._get_json(url, mailbox, params=params, what="new mail check")
        stamps = [
            parse_model(MessageStamp, item, f"message {index}")
            for index, item in enumerate(_values(body, "new mail check"))
        ]
        return NewMail(messages=stamps, more=bool(body.get("@odata.nextLink")))

    def message_body(self, mailbox: str | None, message_id: str) -> ItemBody | None:
        """One request: a message's body as Graph holds it (HTML for HTML mail, whose `cid:`
        references name inline images), or None when the message has no body."""
        mailbox = mailbox or self.settings.mailbox
        url = f"{self._mailbox_url(mailbox)}/messages/{segment(message_id)}"
        body = self._get_json(url, mailbox, params={"$select": "body"}, what="read message body")
        found = body.get("body")
        if found is None:
            return None
        return parse_model(ItemBody, found, f"body of message {message_id}")

    # -- attachments -------------------------------------------------------------------------

    def list_attachments(
        self, mailbox: str | None, message_ids: Iterable[str]
    ) -> dict[str, list[AnyAttachment]]:
        """Attachment metadata of many messages, 20 messages per `$batch` request.

        A message that no longer exists is left out of the result (and logged). Reference
        attachments get their `sourceUrl` with one more request each.
        """
        mailbox = mailbox or self.settings.mailbox
        select = quote(",".join(ATTACHMENT_FIELDS), safe=",")
        relative = {
            message_id: (
                f"/users/{segment(mailbox)}/messages/{segment(message_id)}"
                f"/attachments?$select={select}"
            )
            for message_id in dict.fromkeys(message_ids)
        }

        found: dict[str, list[AnyAttachment]] = {}
        for chunk in chunked(relative.items(), BATCH_LIMIT):
            replies = self._batch_get(mailbox, dict(chunk))
            for message_id, (status, headers, body) in replies.items():
                if status == 404:
                    log.warning(
                        "message %s is gone from %s; no attachments listed", message_id, mailbox
                    )
                    continue
                if status >= 400:
                    raise self._error_from(status, headers, body, "list attachments", mailbox)
                items = list(_values(body, "attachments"))
                next_link = body.get("@odata.nextLink") if isinstance(body, dict) else None
                if next_link:
                    items.extend(self._paged(str(next_link), mailbox, None, "attachments"))
                found[message_id] = [
                    parse_attachment(item, f"attachment {index} of message {message_id}")
                    for index, item in enumerate(items)
                ]

        # A reference attachment has no contentBytes, so reading it whole is cheap.
        for message_id, attachments in found.items():
            found[message_id] = [
                self.get_attachment(mailbox, message_id, a.id)
                if isinstance(a, ReferenceAttachment) and a.source_url is None
                else a
                for a in attachments
            ]
        return found

    def get_attachment(
        self, mailbox: str | None, message_id: str, attachment_id: str
    ) -> AnyAttachment:
        """One attachment read whole, with what listings cannot carry: `content_id` of a file
        attachment (what an HTML body's `cid:` points at), `source_url` of a reference.

        Graph puts a file's base64 `contentBytes` in this reply, so ask only for small files;
        the bytes are dropped, never kept on the model (use `download_attachment` for them).
        """
        mailbox = mailbox or self.settings.mailbox
        url = self._attachment_url(mailbox, message_id, attachment_id)
        body = self._get_json(url, mailbox, what="read attachment")
        body.pop("contentBytes", None)
        return parse_attachment(body, f"attachment {attachment_id} of message {message_id}")

    def download_attachment(
        self,
        mailbox: str | None,
        message_id: str,
        attachment: AnyAttachment | str,
        consume: Callable[[Iterator[bytes]], T],
    ) -> T:
        """Stream an attachment's bytes (a file's content, or an attached item as MIME) into
        `consume`, chunk by chunk, and return what it returns.

        If the connection drops mid-body, `consume` is called again with a fresh stream from
        the start: it must discard what it got when its iterator raises, and let the error
        propagate. A reference attachment raises `NotDownloadable`.
        """
        mailbox = mailbox or self.settings.mailbox
        if isinstance(attachment, ReferenceAttachment):
            # The link itself stays out of the message: a sharing link can grant access.
            raise NotDownloadable(
                f"attachment {attachment.name!r} of message {message_id} is a link to a file "
                f"elsewhere; it has no bytes to fetch"
            )
        attachment_id = attachment if isinstance(attachment, str) else attachment.id
        url = self._attachment_url(mailbox, message_id, attachment_id) + "/$value"
        chunk = self.settings.download_chunk_bytes
        policy = self.transport.policy

        attempt = 0
        waited = 0.0
        while True:
            attempt += 1
            failure = ""
            with self.transport.stream(
                "GET", url, auth=self.credential, mailbox=mailbox, headers=self._headers()
            ) as response:
                if response.status_code == 405:
                    raise NotDownloadable(
                        f"attachment {attachment_id} of message {message_id} has no content "
                        f"to download (Graph answered 405: it is a reference attachment)",
                        status=405,
                        code=graph_error_code(response),
                        request_id=request_id_of(response),
                    )
                if response.status_code >= 400:
                    raise self._error(response, "download attachment", mailbox)
                try:
                    return consume(response.iter_content(chunk_size=chunk))
                except DROPPED_CONNECTION as exc:
                    failure = type(exc).__name__

            delay = policy.backoff(attempt)
            if not policy.allows(attempt, waited, delay):
                raise ThrottledTooLong(
                    f"the download of attachment {attachment_id} of message {message_id} broke "
                    f"off {attempt} times ({failure}); giving up"
                )
            log.info(
                "download of attachment %s broke off (%s); starting it again in %.2f s",
                attachment_id,
                failure,
                delay,
            )
            self.transport.sleep(delay)
            waited += delay

    # -- plumbing ----------------------------------------------------------------------------

    def _mailbox_url(self, mailbox: str) -> str:
        return f"{self.base}/users/{segment(mailbox)}"

    def _attachment_url(self, mailbox: str, message_id: str, attachment_id: str) -> str:
        return (
            f"{self._mailbox_url(mailbox)}/messages/{segment(message_id)}"
            f"/attachments/{segment(attachment_id)}"
        )

    def _headers(self, prefer: str | None = None) -> dict[str, str]:
        preferences = IMMUTABLE_IDS if prefer is None else f"{IMMUTABLE_IDS}, {prefer}"
        return {"Accept": "application/json", "Prefer": preferences}

    def _check_origin(self, url: str) -> None:
        # The bearer token goes to the configured Graph host only, whatever a link says.
        if _origin(url) != self._origin:
            raise GraphError(
                f"Graph returned a link to another host ({urlsplit(url).netloc}); refusing to "
                f"send the token there"
            )

    def _get_json(
        self,
        url: str,
        mailbox: str,
        *,
        params: Mapping[str, str] | None = None,
        prefer: str | None = None,
        what: str,
    ) -> dict[str, Any]:
        self._check_origin(url)
        response = self.transport.request(
            "GET",
            url,
            auth=self.credential,
            mailbox=mailbox,
            headers=self._headers(prefer),
            params=params,
        )
        if response.status_code >= 400:
            raise self._error(response, what, mailbox)
        return _json_object(response, what)

    def _paged(
        self, url: str, mailbox: str, params: Mapping[str, str] | None, what: str
    ) -> Iterator[Any]:
        """The items of a collection across its pages, following `@odata.nextLink` whole."""
        next_url: str | None = url
        while next_url:
            body = self._get_json(next_url, mailbox, params=params, what=what)
            yield from _values(body, what)
            link = body.get("@odata.nextLink")
            next_url, params = (str(link) if link else None), None

    def _batch_get(
        self, mailbox: str, requests_by_key: Mapping[str, str]
    ) -> dict[str, tuple[int, Mapping[str, str], Any]]:
        """GET up to 20 relative URLs in one `$batch`; items answered 429/503/504 are sent
        again (after their `Retry-After`) until the retry budget is spent."""
        pending = dict(requests_by_key)
        done: dict[str, tuple[int, Mapping[str, str], Any]] = {}
        policy = self.transport.policy
        url = f"{self.base}/$batch"
        attempt = 0
        waited = 0.0
        while pending:
            attempt += 1
            keys = list(pending)
            payload = {
                "requests": [
                    {"id": str(i), "method": "GET", "url": pending[key], "headers": self._headers()}
                    for i, key in enumerate(keys)
                ]
            }
            response = self.transport.request(
                "POST",
                url,
                auth=self.credential,
                mailbox=mailbox,
                headers={**self._headers(), "Content-Type": "application/json"},
                json=payload,
            )
            if response.status_code >= 400:
                raise self._error(response, "batch", mailbox)
            replies = _json_object(response, "batch").get("responses")
            if not isinstance(replies, list):
                raise ResponseShapeError("batch: the reply has no `responses` list")

            delay = 0.0
            throttled = 0
            for reply in replies:
                try:
                    key = keys[int(reply["id"])]
                    status = int(reply["status"])
                except (KeyError, ValueError, IndexError, TypeError):
                    raise ResponseShapeError(
                        "batch: a response lacks a known id or a status"
                    ) from None
                headers = {str(k): str(v) for k, v in (reply.get("headers") or {}).items()}
                if status in RETRY_STATUSES:
                    throttled += 1
                    wait = parse_retry_after(_header(headers, "Retry-After"))
                    delay = max(delay, policy.backoff(attempt) if wait is None else wait)
                    continue
                done[key] = (status, headers, _batch_body(reply.get("body"), headers))
                pending.pop(key, None)

            missing = [key for key in keys if key not in done and key in pending]
            if not pending:
                break
            if throttled == 0 and missing:
                raise ResponseShapeError(f"batch: {len(missing)} requests got no response")
            if not policy.allows(attempt, waited, delay):
                raise ThrottledTooLong(
                    f"{throttled} of {len(keys)} batched requests for {mailbox} were still "
                    f"throttled after {attempt} attempts and {waited:.0f} s; try again later",
                    status=429,
                )
            log.info(
                "%d of %d batched requests were throttled; sending them again in %.2f s",
                throttled,
                len(keys),
                delay,
            )
            self.transport.sleep(delay)
            waited += delay
        return done

    def _error(self, response: requests.Response, what: str, mailbox: str) -> GraphError:
        body: Any
        try:
            body = response.json()
        except ValueError:
            body = None
        return self._error_from(
            response.status_code,
            response.headers,
            body,
            what,
            mailbox,
            request_id=request_id_of(response),
            path=log_path(response.url or ""),
        )

    def _error_from(
        self,
        status: int,
        headers: Mapping[str, str],
        body: Any,
        what: str,
        mailbox: str,
        *,
        request_id: str | None = None,
        path: str | None = None,
    ) -> GraphError:
        """The exception for a Graph error reply, worded for the person who must act."""
        error = body.get("error") if isinstance(body, dict) else None
        code = str(error.get("code")) if isinstance(error, dict) and error.get("code") else None
        message = str(error.get("message") or "") if isinstance(error, dict) else ""
        if request_id is None and isinstance(error, dict):
            inner = error.get("innerError")
            if isinstance(inner, dict) and inner.get("request-id"):
                request_id = str(inner["request-id"])
        lowered = (code or "").lower()
        detail = f"{status} {code or ''}".strip() + (f": {message}" if message else "")
        kwargs: dict[str, Any] = {"status": status, "code": code, "request_id": request_id}

        if status == 410 or lowered in _STATE_LOST_CODES:
            return SyncStateLost(f"{what}: the delta state is gone ({detail})", **kwargs)
        if status == 403 and (lowered in _ACCESS_DENIED_CODES or not code):
            return PermissionProblem(
                f"{what}: Graph refused access to mailbox {mailbox} ({detail}). "
                + self._access_remedy(mailbox),
                permission=self._permission_name(),
                **kwargs,
            )
        if status == 404 and lowered in _MAILBOX_MISSING_CODES:
            return MailboxNotFound(
                f"{what}: Graph knows no mailbox {mailbox} ({detail}); check O365_MAILBOX",
                **kwargs,
            )
        if status == 401:
            return AuthError(
                f"{what}: Graph refused the access token even after a fresh one was issued "
                f"({detail}); check that the token is for {self.settings.scope_resource}",
                **kwargs,
            )
        where = f" {path}" if path else ""
        return GraphError(f"{what}{where}: Graph answered {detail}", **kwargs)

    def _permission_name(self) -> str:
        if self.settings.auth_mode is AuthMode.DELEGATED:
            return "Mail.Read.Shared (delegated) and Full Access or Read permission on the mailbox"
        return "Mail.Read (application) and an RBAC for Applications assignment for the mailbox"

    def _access_remedy(self, mailbox: str) -> str:
        if self.settings.auth_mode is AuthMode.DELEGATED:
            return (
                f"Give the app the delegated Mail.Read.Shared permission, and give the "
                f"signed-in user Full Access (or Read) permission on {mailbox}."
            )
        return (
            f"Grant app {self.settings.client_id} the Mail.Read application permission (with "
            f"admin consent) and add an RBAC for Applications assignment for {mailbox} in "
            f"Exchange Online."
        )


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise ResponseShapeError(f"{what}: the reply is not JSON") from None
    if not isinstance(body, dict):
        raise ResponseShapeError(f"{what}: the reply is not a JSON object")
    return body


def _values(body: Any, what: str) -> list[Any]:
    values = body.get("value") if isinstance(body, dict) else None
    if not isinstance(values, list):
        raise ResponseShapeError(f"{what}: the reply has no `value` list")
    return values


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value
    return None


def _batch_body(body: Any, headers: Mapping[str, str]) -> Any:
    """A batch item's body: JSON as is; anything else arrives base64-encoded."""
    if not isinstance(body, str):
        return body
    content_type = (_header(headers, "Content-Type") or "").lower()
    try:
        raw = base64.b64decode(body, validate=True)
    except ValueError:
        return body
    if "json" in content_type:
        try:
            return json.loads(raw)
        except ValueError:
            return body
    return raw
