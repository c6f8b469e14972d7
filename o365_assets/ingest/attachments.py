"""One received date's attachments: list, judge, download what may be kept, store, record.

Every attachment seen gets exactly one row in `mail.attachments`, kept or not, and so does
everything found inside an attached email or a zip archive, with a link to its parent. Bytes go
from Graph to a temporary file of the store in a stream, are hashed on the way, judged by
their real type, and only then renamed into place; identical content is stored once.
"""

import datetime
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from zoneinfo import ZoneInfo

import duckdb

from o365_assets.graph import GraphClient
from o365_assets.graph.errors import GraphError
from o365_assets.graph.models import (
    AnyAttachment,
    FileAttachment,
    ItemAttachment,
    ReferenceAttachment,
)
from o365_assets.selection import (
    TYPES,
    ArchiveError,
    Candidate,
    Decision,
    Rules,
    cid_references,
    decide,
    detect_type,
    is_signature_logo,
    iter_zip_members,
    normalise_content_id,
    read_mime,
    read_tnef,
    screen,
)
from o365_assets.selection.types import type_from_content_type, type_from_name
from o365_assets.store import mail
from o365_assets.store.files import FileStore, Received, StoreError
from o365_assets.store.schema import FAILED, KEPT, QUARANTINED, SKIPPED

log = logging.getLogger(__name__)


@dataclass
class CollectReport:
    """What one partition's collection did; `rows` is what `mail.attachments` now holds."""

    messages: int = 0
    downloaded: int = 0
    reused: int = 0
    bytes_written: int = 0
    rows: list[mail.AttachmentRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return len(self.rows)

    def count(self, decision: str) -> int:
        return sum(1 for row in self.rows if row.decision == decision)

    @property
    def kept(self) -> int:
        return self.count(KEPT)

    @property
    def skipped(self) -> int:
        return self.count(SKIPPED)

    @property
    def quarantined(self) -> int:
        return self.count(QUARANTINED)

    @property
    def failed(self) -> int:
        return self.count(FAILED)

    def reason_counts(self) -> list[tuple[str, str, int]]:
        counts = Counter((row.decision, row.reason or "") for row in self.rows)
        return [(d, r, n) for (d, r), n in sorted(counts.items(), key=lambda i: (i[0][0], -i[1]))]


@dataclass(frozen=True)
class _Subject:
    """What a row of `mail.attachments` is about: an attachment Graph listed, or a file found
    inside one (then `parent_id` names the container)."""

    message: mail.MessageRow
    attachment_id: str
    parent_id: str | None
    name: str | None
    content_type: str | None
    kind: str
    is_inline: bool | None


@dataclass(frozen=True)
class _Listed:
    """One attachment as Graph listed it, with its message."""

    message: mail.MessageRow
    attachment: AnyAttachment
    candidate: Candidate

    @property
    def key(self) -> tuple[str, str]:
        return (self.message.id, self.attachment.id)

    @property
    def subject(self) -> _Subject:
        return _Subject(
            message=self.message,
            attachment_id=self.attachment.id,
            parent_id=None,
            name=self.attachment.name,
            content_type=self.attachment.content_type,
            kind=self.candidate.kind,
            is_inline=self.attachment.is_inline,
        )


@dataclass
class _Fetched:
    received: Received | None = None
    error: str | None = None


def collect_partition(
    client: GraphClient,
    con: duckdb.DuckDBPyConnection,
    store: FileStore,
    rules: Rules,
    mailbox: str,
    day: datetime.date,
    timezone: str,
) -> CollectReport:
    """Collect the attachments of the mail received on `day` and record every decision.

    A second run holds what the first stored: files present with their recorded sha256 are
    not downloaded again, missing or damaged ones are fetched and repaired.
    """
    store.sweep_temps()
    report = CollectReport()
    messages = mail.messages_received_on(con, mailbox, day)
    report.messages = len(messages)
    previous = {(r.message_id, r.attachment_id): r for r in mail.attachments_for_date(con, day)}

    listed = _list(client, mailbox, messages, day, timezone)
    collector = _Collector(client, con, store, rules, mailbox, day, report)
    collector.run(listed, previous)

    mail.replace_attachments_for_date(con, day, report.rows)
    return report


def _list(
    client: GraphClient,
    mailbox: str,
    messages: Sequence[mail.MessageRow],
    day: datetime.date,
    timezone: str,
) -> list[_Listed]:
    """The attachments of the day's messages, from one listing per folder with the
    attachments' metadata expanded (a request per 1,000 messages, not one per message).

    Every message is asked, not only those Graph flags `hasAttachments`: a message whose only
    attachments are inline images is flagged false, and those must be accounted for too.
    """
    tz = ZoneInfo(timezone)
    start = datetime.datetime.combine(day, datetime.time(), tzinfo=tz)
    end = start + datetime.timedelta(days=1)
    wanted = {message.id for message in messages}

    found: dict[str, list[AnyAttachment]] = {}
    for folder in sorted({message.folder for message in messages}):
        folder_id = client.resolve_folder(mailbox, folder).id
        for listed in client.list_messages(
            mailbox, folder_id, received_from=start, received_before=end, expand_attachments=True
        ):
            if listed.id in wanted:
                found[listed.id] = list(listed.attachments or [])

    # A link's address is not part of the expanded listing; ask for those messages again.
    with_links = [
        message_id
        for message_id, attachments in found.items()
        if any(isinstance(a, ReferenceAttachment) and a.source_url is None for a in attachments)
    ]
    found.update(client.list_attachments(mailbox, with_links))

    return [
        _Listed(message, attachment, _candidate(message, attachment))
        for message in messages
        for attachment in found.get(message.id, [])
    ]


def _candidate(message: mail.MessageRow, attachment: AnyAttachment) -> Candidate:
    kind = {FileAttachment: "file", ItemAttachment: "item", ReferenceAttachment: "reference"}
    return Candidate(
        name=attachment.name,
        content_type=attachment.content_type,
        size=attachment.size,
        kind=kind[type(attachment)],  # type: ignore[arg-type]
        is_inline=attachment.is_inline,
        sender=message.sender,
        subject=message.subject,
    )


def _claims_image(candidate: Candidate) -> bool:
    claimed = type_from_name(candidate.name) or type_from_content_type(candidate.content_type)
    return claimed is not None and TYPES[claimed].family == "image"


def rules_fingerprint(rules: Rules) -> str:
    """A short digest of the rules in force, stored with each decision."""
    return hashlib.sha256(rules.model_dump_json().encode()).hexdigest()[:16]


class _Collector:
    def __init__(
        self,
        client: GraphClient,
        con: duckdb.DuckDBPyConnection,
        store: FileStore,
        rules: Rules,
        mailbox: str,
        day: datetime.date,
        report: CollectReport,
    ) -> None:
        self.client = client
        self.con = con
        self.store = store
        self.rules = rules
        self.mailbox = mailbox
        self.day = day
        self.report = report
        # Content hash -> messages it came with in this run, for recurring-logo detection.
        self.hash_messages: dict[str, set[str]] = {}
        # Content hash -> stored path, for content stored once within this run.
        self.stored: dict[str, str] = {}
        self.rules_digest = rules_fingerprint(rules)
        # Message id -> content ids its HTML body shows, read only when an image needs it.
        self.bodies: dict[str, frozenset[str]] = {}

    def run(
        self, listed: Sequence[_Listed], previous: dict[tuple[str, str], mail.AttachmentRow]
    ) -> None:
        self.listed: list[_Listed] = []
        screened: dict[tuple[str, str], Decision] = {}
        settled: dict[tuple[str, str], list[mail.AttachmentRow]] = {}
        to_fetch: list[_Listed] = []
        for item in listed:
            item = self._with_cid_reference(item)
            self.listed.append(item)
            decision = screen(item.candidate, self.rules)
            if decision is not None:
                screened[item.key] = decision
                continue
            held = previous.get(item.key)
            if held is not None and self._holds(held):
                continue
            earlier = self._settled_rows(item, held, previous) if held is not None else None
            if earlier is not None:
                settled[item.key] = earlier
            else:
                to_fetch.append(item)

        fetched = self._fetch_all(to_fetch)

        for item in self.listed:
            if item.key in screened:
                self._record_unread(item, screened[item.key])
            elif item.key in settled:
                self.report.rows.extend(settled[item.key])
            elif item.key in fetched:
                self._judge_fetched(item, fetched[item.key], previous.get(item.key))
            else:
                self._judge_held(item, previous[item.key])

    def _with_cid_reference(self, item: _Listed) -> _Listed:
        """Mark an image that the message body shows by `cid:` although Graph does not flag it
        inline (some mail clients send signature logos so).

        Listings carry no content ids, so this costs two small requests, and is asked only
        for an image the rules would otherwise fetch.
        """
        attachment = item.attachment
        if (
            item.candidate.is_inline
            or not isinstance(attachment, FileAttachment)
            or not _claims_image(item.candidate)
            or screen(item.candidate, self.rules) is not None
        ):
            return item
        content_id = attachment.content_id
        if content_id is None:
            full = self.client.get_attachment(self.mailbox, item.message.id, attachment.id)
            content_id = full.content_id if isinstance(full, FileAttachment) else None
        if content_id is None:
            return item
        shown = normalise_content_id(content_id) in self._cid_references(item.message.id)
        return replace(item, candidate=replace(item.candidate, cid_referenced=shown))

    def _cid_references(self, message_id: str) -> frozenset[str]:
        if message_id not in self.bodies:
            body = self.client.message_body(self.mailbox, message_id)
            html = body.content if body and (body.content_type or "").lower() == "html" else None
            self.bodies[message_id] = cid_references(html)
        return self.bodies[message_id]

    def _settled_rows(
        self,
        item: _Listed,
        held: mail.AttachmentRow,
        previous: dict[tuple[str, str], mail.AttachmentRow],
    ) -> list[mail.AttachmentRow] | None:
        """The rows of an attachment judged on its bytes and not kept, under the same rules:
        the same bytes would get the same verdict, so they are not fetched again. Whatever it
        held and kept must still be whole, else it is fetched again to repair that."""
        if (
            held.sha256 is None
            or held.decision in (KEPT, FAILED)
            or held.rules_digest != self.rules_digest
            or held.size is None
            or held.size > item.attachment.size
        ):
            return None
        prefix = f"{held.attachment_id}/"
        inside = [
            row
            for (message_id, attachment_id), row in previous.items()
            if message_id == held.message_id and attachment_id.startswith(prefix)
        ]
        if any(row.decision == KEPT and not self._holds(row) for row in inside):
            return None
        for row in inside:
            if row.decision == KEPT and row.sha256 and row.path:
                self.stored.setdefault(row.sha256, row.path)
        self.report.reused += sum(1 for row in inside if row.decision == KEPT)
        return [held, *sorted(inside, key=lambda row: row.attachment_id)]

    # -- what is already held ------------------------------------------------------------------

    def _holds(self, row: mail.AttachmentRow) -> bool:
        """A previous run kept this attachment and its file is still whole."""
        return (
            row.decision == KEPT
            and row.path is not None
            and row.sha256 is not None
            and self.store.verify(row.path, row.sha256)
        )

    def _judge_held(self, item: _Listed, held: mail.AttachmentRow) -> None:
        assert held.path is not None and held.sha256 is not None
        self.report.reused += 1
        with self.store.open(held.path) as stream:
            detected = detect_type(stream, item.attachment.name, item.attachment.content_type)
        candidate = replace(item.candidate, detected=detected, size=held.size)
        decision = self._decide(candidate, held.sha256, held.size or 0, item.message.id)
        path = held.path if decision.decision == KEPT else None
        self._record(item.subject, decision, size=held.size, sha256=held.sha256, path=path)
        self.stored.setdefault(held.sha256, held.path)
        if decision.unpack:
            self._unpack(item.message, item.attachment.id, candidate, decision, held.path)

    # -- downloads -----------------------------------------------------------------------------

    def _fetch_all(self, items: Sequence[_Listed]) -> dict[tuple[str, str], _Fetched]:
        """Download in parallel, as many at once as the client lets through per mailbox."""
        if not items:
            return {}
        workers = max(1, self.client.settings.max_concurrency)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="download") as pool:
            results = pool.map(self._fetch, items)
            return {item.key: result for item, result in zip(items, results, strict=True)}

    def _fetch(self, item: _Listed) -> _Fetched:
        cap = int(self.rules.size_cap)

        def consume(chunks: Iterator[bytes]) -> Received:
            return self.store.receive(chunks, max_size=cap)

        try:
            received = self.client.download_attachment(
                self.mailbox, item.message.id, item.attachment, consume
            )
        except (GraphError, StoreError, OSError) as exc:
            log.warning(
                "download of attachment %s of message %s failed: %s",
                item.attachment.id,
                item.message.id,
                exc,
            )
            return _Fetched(error=f"download failed: {exc}")
        return _Fetched(received=received)

    def _judge_fetched(
        self, item: _Listed, fetched: _Fetched, held: mail.AttachmentRow | None
    ) -> None:
        if fetched.received is None:
            reason = fetched.error or "download failed"
            self._record(item.subject, Decision(FAILED, reason, None), size=item.attachment.size)
            self.report.problems.append(
                f"attachment {item.attachment.name!r} of message {item.message.id}: {reason}"
            )
            return
        self.report.downloaded += 1
        candidate = item.candidate
        received = fetched.received
        if isinstance(item.attachment, FileAttachment) and received.size > item.attachment.size:
            # Graph's size counts the attachment item, so it is never below the content's.
            candidate = replace(
                candidate,
                problem=f"received {received.size} bytes, more than the {item.attachment.size} "
                "Graph announced",
            )
        self._settle(item.subject, candidate, received, repair=held)

    def _settle(
        self,
        subject: _Subject,
        candidate: Candidate,
        received: Received,
        repair: mail.AttachmentRow | None = None,
    ) -> None:
        """Judge received bytes by their real type, store them if kept, record the decision,
        and judge what they contain if they are a container."""
        with self.store.open(received.path) as stream:
            detected = detect_type(stream, subject.name, subject.content_type)
        candidate = replace(candidate, detected=detected, size=received.size)
        decision = self._decide(candidate, received.sha256, received.size, subject.message.id)

        path = None
        if decision.decision == KEPT:
            key = f"{subject.message.id}/{subject.attachment_id}"
            path = self._keep(received, subject.name, subject.kind, key, repair)
        self._record(subject, decision, size=received.size, sha256=received.sha256, path=path)
        if decision.unpack:
            source = path if path is not None else received.path
            self._unpack(subject.message, subject.attachment_id, candidate, decision, source)
        if path is None:
            self.store.discard(received)

    def _keep(
        self,
        received: Received,
        name: str | None,
        kind: str,
        key: str,
        repair: mail.AttachmentRow | None = None,
    ) -> str:
        """Store received bytes once: reuse a file already holding them, put them back where
        a damaged or missing file of the same content was (every row naming it is whole
        again), else commit them under a new name."""
        known = self.stored.get(received.sha256) or mail.path_for_sha256(self.con, received.sha256)
        if known is not None and self.store.verify(known, received.sha256):
            self.store.discard(received)
            return known
        broken = known or (repair.path if repair and repair.sha256 == received.sha256 else None)
        if broken is not None:
            self.store.restore(received, broken, received.sha256)
            self.stored[received.sha256] = broken
            self.report.bytes_written += received.size
            return broken
        if kind == "item" and not (name or "").lower().endswith(".eml"):
            name = f"{name or 'attached message'}.eml"
        path = self.store.commit(received, self.day, name, key=key)
        self.stored[received.sha256] = path
        self.report.bytes_written += received.size
        return path

    # -- decisions -----------------------------------------------------------------------------

    def _decide(self, candidate: Candidate, sha256: str, size: int, message_id: str) -> Decision:
        detected = candidate.detected
        if detected is not None and detected.family == "image":
            messages = self.hash_messages.setdefault(sha256, set())
            messages.add(message_id)
            seen = len(messages | self._messages_elsewhere(sha256))
            if is_signature_logo(sha256, size, seen, self.rules.logos):
                candidate = replace(candidate, recurring_logo=True)
        return decide(candidate, self.rules)

    def _messages_elsewhere(self, sha256: str) -> set[str]:
        rows = self.con.execute(
            "SELECT DISTINCT message_id FROM mail.attachments "
            "WHERE sha256 = ? AND received_date <> ?",
            [sha256, self.day],
        ).fetchall()
        return {row[0] for row in rows}

    def _record_unread(self, item: _Listed, decision: Decision) -> None:
        source_url = (
            item.attachment.source_url if isinstance(item.attachment, ReferenceAttachment) else None
        )
        self._record(item.subject, decision, size=item.attachment.size, source_url=source_url)

    def _record(
        self,
        subject: _Subject,
        decision: Decision,
        *,
        size: int | None,
        sha256: str | None = None,
        path: str | None = None,
        source_url: str | None = None,
    ) -> None:
        self.report.rows.append(
            mail.AttachmentRow(
                message_id=subject.message.id,
                attachment_id=subject.attachment_id,
                parent_attachment_id=subject.parent_id,
                name=subject.name,
                content_type=subject.content_type,
                detected_type=decision.detected_type,
                size=size,
                kind=subject.kind,
                is_inline=subject.is_inline,
                decision=decision.decision,
                reason=decision.reason,
                sha256=sha256,
                path=path,
                source_url=source_url,
                received_date=self.day,
                rules_digest=self.rules_digest,
            )
        )

    # -- containers ----------------------------------------------------------------------------

    def _unpack(
        self,
        message: mail.MessageRow,
        parent_id: str,
        parent: Candidate,
        decision: Decision,
        path: str,
    ) -> None:
        """Judge what an attached email, TNEF file or zip holds, each with its own row."""
        if decision.unpack == "zip":
            self._unpack_zip(message, parent_id, parent, path)
            return
        with self.store.open(path) as stream:
            data = stream.read()
        if decision.unpack == "mime":
            mime = read_mime(data)
            parts = [(p, mime.is_cid_referenced(p)) for p in mime.attachments]
        else:
            tnef = read_tnef(data)
            parts = [(p, False) for p in tnef.attachments]
            if not parts and tnef.problems:
                subject = _Subject(
                    message, f"{parent_id}/!", parent_id, None, None, "tnef_part", None
                )
                self._record(subject, Decision(SKIPPED, tnef.problems[0], None), size=None)
        for index, (part, cid_referenced) in enumerate(parts):
            subject = _Subject(
                message=message,
                attachment_id=f"{parent_id}/{index}",
                parent_id=parent_id,
                name=part.name,
                content_type=part.content_type,
                kind=part.kind,
                is_inline=part.is_inline,
            )
            child = parent.child_part(part, cid_referenced=cid_referenced)
            self._judge_part(subject, child, partial(iter, [part.data]))

    def _unpack_zip(
        self, message: mail.MessageRow, parent_id: str, parent: Candidate, path: str
    ) -> None:
        with self.store.open(path) as stream:
            try:
                for index, member in enumerate(iter_zip_members(stream, self.rules.archives)):
                    subject = _Subject(
                        message,
                        f"{parent_id}/{index}",
                        parent_id,
                        member.name,
                        None,
                        "zip_member",
                        None,
                    )
                    child = parent.child(
                        member.name, None, member.size, "zip_member", problem=member.problem
                    )
                    self._judge_part(subject, child, None if member.problem else member.chunks)
            except ArchiveError as exc:
                # The archive itself is recorded already; what could not be read is said here.
                subject = _Subject(
                    message, f"{parent_id}/!", parent_id, None, None, "zip_member", None
                )
                reason = f"archive could not be read whole: {exc}"
                self._record(subject, Decision(QUARANTINED, reason, None), size=None)

    def _judge_part(
        self,
        subject: _Subject,
        child: Candidate,
        chunks: Callable[[], Iterator[bytes]] | None,
    ) -> None:
        decision = screen(child, self.rules)
        if decision is not None or chunks is None:
            self._record(subject, decision or decide(child, self.rules), size=child.size)
            return

        try:
            received = self.store.receive(chunks(), max_size=int(self.rules.size_cap))
        except (ArchiveError, StoreError) as exc:
            status = QUARANTINED if isinstance(exc, ArchiveError) else FAILED
            decision = Decision(status, f"could not be read: {exc}", None)
            self._record(subject, decision, size=child.size)
            return
        self._settle(subject, child, received)
