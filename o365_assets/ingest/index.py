"""The message index: Graph delta sync of each folder into `mail.messages`."""

import datetime
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import duckdb

from o365_assets.graph import GraphClient
from o365_assets.graph.models import Message
from o365_assets.store import mail

log = logging.getLogger(__name__)

DELTA_LINK = "delta_link"


@dataclass
class IndexReport:
    new: int = 0
    changed: int = 0
    removed: int = 0
    pages: int = 0
    resynced_folders: list[str] = field(default_factory=list)


def sync_index(
    client: GraphClient,
    con: duckdb.DuckDBPyConnection,
    mailbox: str,
    folders: Sequence[str],
    timezone: str,
) -> IndexReport:
    """Bring `mail.messages` up to date with each folder, from its stored delta link.

    Each page is written as it arrives and the new delta link is stored only once a folder is
    through, so a run that dies part-way repeats the same pages next time, harmlessly.
    """
    report = IndexReport()
    tz = ZoneInfo(timezone)

    for name in folders:
        folder = client.resolve_folder(mailbox, name)
        link = mail.get_sync_state(con, mailbox, folder.id, DELTA_LINK)
        seen: list[str] = []
        full_sync = link is None
        new_link: str | None = None

        for page in client.iter_delta(mailbox, folder.id, link):
            report.pages += 1
            if page.resynced and page.page_number == 1:
                report.resynced_folders.append(name)
                seen.clear()
            full_sync = page.full_sync
            rows = [_row(message, mailbox, name, tz) for message in page.messages]
            counts = mail.upsert_messages(con, rows)
            report.new += counts.new
            report.changed += counts.changed
            report.removed += mail.mark_removed(con, mailbox, name, [r.id for r in page.removed])
            if full_sync:
                seen.extend(row.id for row in rows)
            new_link = page.delta_link

        if full_sync:
            report.removed += mail.mark_unseen_removed(con, mailbox, name, seen)
        mail.set_sync_state(con, mailbox, folder.id, DELTA_LINK, new_link)
        log.info("folder %s of %s synced (%s)", name, mailbox, "full" if full_sync else "delta")
    return report


def _row(message: Message, mailbox: str, folder: str, tz: ZoneInfo) -> mail.MessageRow:
    received = message.received_at
    if received.tzinfo is None:
        received = received.replace(tzinfo=datetime.UTC)
    sender = message.sender.email_address if message.sender else None
    return mail.MessageRow(
        id=message.id,
        internet_message_id=message.internet_message_id,
        mailbox=mailbox,
        folder=folder,
        received_at=received,
        received_date=received.astimezone(tz).date(),
        sender=sender.address if sender else None,
        subject=message.subject,
        has_attachments=message.has_attachments,
    )
