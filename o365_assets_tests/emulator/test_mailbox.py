"""The demo mailbox: deterministic, the full mix of cases, and files that real readers open."""

import csv
import datetime
import email
import hashlib
import io
import json
from email import policy
from typing import Any

import docx
import openpyxl
import pypdfium2
import pytest
from PIL import Image
from python_calamine import CalamineWorkbook

from o365_assets.emulator.generator import LedgerContent, generate_mailbox
from o365_assets.emulator.mailbox import Attachment, MailStore, Message, message_mime
from o365_assets.emulator.state import MailboxSettings

NOW = datetime.datetime(2026, 3, 10, 15, 30, tzinfo=datetime.UTC)
SETTINGS = MailboxSettings(seed=7, messages=60, days=10, large_attachment_bytes=300_000)


def _generate(settings: MailboxSettings = SETTINGS) -> tuple[MailStore, list[Message]]:
    store = MailStore()
    mailbox = store.add_mailbox("shared-inbox@contoso.example", "Shared Inbox", "id-1")
    return store, generate_mailbox(store, mailbox, settings, now=NOW)


@pytest.fixture(scope="module")
def generated() -> tuple[MailStore, list[Message]]:
    return _generate()


@pytest.fixture(scope="module")
def files(generated: tuple[MailStore, list[Message]]) -> list[Attachment]:
    _, messages = generated
    found = []

    def walk(attachments: list[Attachment]) -> None:
        for attachment in attachments:
            found.append(attachment)
            if attachment.item is not None:
                walk(attachment.item.attachments)

    for message in messages:
        walk(message.attachments)
    return found


def _of_type(files: list[Attachment], expected: str) -> list[Attachment]:
    chosen = [a for a in files if a.expected_type == expected and a.kind == "file"]
    assert chosen, expected
    return chosen


def test_same_seed_same_mailbox_other_seed_other_ids(
    generated: tuple[MailStore, list[Message]],
) -> None:
    store, _ = generated
    again, _ = _generate()
    assert again.records() == store.records()

    other, _ = _generate(SETTINGS.model_copy(update={"seed": 8}))
    ids = {r["message_id"] for r in store.records()}
    assert not ids & {r["message_id"] for r in other.records()}


def test_received_times_spread_over_the_last_days_and_never_ahead(
    generated: tuple[MailStore, list[Message]],
) -> None:
    _, messages = generated
    days = {message.received.date() for message in messages}
    first_day = NOW.date() - datetime.timedelta(days=SETTINGS.days - 1)
    assert min(days) >= first_day
    assert max(message.received for message in messages) <= NOW
    assert len(days) >= SETTINGS.days - 2


def test_records_describe_every_attachment(generated: tuple[MailStore, list[Message]]) -> None:
    store, messages = generated
    records = store.records()
    keys = {
        "mailbox",
        "message_id",
        "internet_message_id",
        "folder",
        "subject",
        "received_at",
        "received_date",
        "attachment_id",
        "name",
        "kind",
        "content_type",
        "size",
        "sha256",
        "is_inline",
        "content_id",
        "expected_type",
        "depth",
        "parent_attachment_id",
        "source",
    }
    assert all(set(record) == keys for record in records)
    assert len({r["attachment_id"] for r in records}) == len(records)
    by_id = {m.immutable_id: m for m in messages}
    for record in records:
        message = by_id[record["message_id"]]
        assert record["received_date"] == message.received.date().isoformat()
        if record["depth"] == 0:
            attachment = next(a for a in message.attachments if a.id == record["attachment_id"])
            if attachment.content is not None:
                data = b"".join(attachment.content.chunks())
                assert record["size"] == len(data)
                assert record["sha256"] == hashlib.sha256(data).hexdigest()


def test_the_mix_has_every_case(
    generated: tuple[MailStore, list[Message]], files: list[Attachment]
) -> None:
    store, messages = generated
    records = store.records()
    kinds = {r["expected_type"] for r in records}
    assert {"csv", "tsv", "xlsx", "docx", "pdf", "json", "png", "exe", "message"} <= kinds
    assert any(r["kind"] == "reference" for r in records)
    assert any(len(m.attachments) >= 3 for m in messages)
    assert any(not m.attachments for m in messages)
    assert max(r["depth"] for r in records) == 2
    names = {r["name"] for r in records}
    assert "../../etc/passwd.csv" in names
    assert any("\u202e" in name for name in names)
    assert any(name.startswith("Sales Report 20") and name.endswith(".xlsx") for name in names)

    liar = next(a for a in files if a.name == "invoice.pdf")
    assert liar.content is not None and liar.content.read().startswith(b"MZ")
    assert liar.expected_type == "exe"


def test_signature_logo_is_one_file_inline_in_many_messages(
    generated: tuple[MailStore, list[Message]],
) -> None:
    _, messages = generated
    logos = [a for m in messages for a in m.attachments if a.name == "logo.png"]
    assert len({a.sha256 for a in logos}) == 1
    inline = [a for a in logos if a.is_inline]
    assert len(inline) >= 10
    for message in messages:
        for attachment in message.attachments:
            if attachment.is_inline:
                assert f"cid:{attachment.content_id}" in message.body
    plain = [a for a in logos if not a.is_inline]
    assert len(plain) == 1 and plain[0].content_id


def test_xlsx_opens_in_calamine_and_openpyxl(files: list[Attachment]) -> None:
    for attachment in _of_type(files, "xlsx"):
        data = attachment.content.read()
        workbook = CalamineWorkbook.from_filelike(io.BytesIO(data))
        assert workbook.sheet_names == ["Sales", "Returns"]
        rows = workbook.get_sheet_by_name("Sales").to_python()
        assert rows[0] == ["date", "region", "product", "units", "unit_price", "revenue"]
        assert len(rows) == 16
        assert isinstance(rows[1][3], float)

        sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True)["Sales"]
        assert next(sheet.iter_rows(values_only=True))[0] == "date"


def test_docx_opens_in_python_docx(files: list[Attachment]) -> None:
    for attachment in _of_type(files, "docx"):
        document = docx.Document(io.BytesIO(attachment.content.read()))
        texts = [paragraph.text for paragraph in document.paragraphs]
        assert len(texts) == 3
        assert texts[1].startswith("Prepared for the ")


def test_pdf_opens_in_pdfium_with_its_text(files: list[Attachment]) -> None:
    for attachment in _of_type(files, "pdf"):
        pdf = pypdfium2.PdfDocument(attachment.content.read())
        try:
            assert len(pdf) == 1
            text = pdf[0].get_textpage().get_text_range()
        finally:
            pdf.close()
        assert "Statement date:" in text
        assert "Amount due:" in text


def test_csv_tsv_json_and_png_parse(files: list[Attachment]) -> None:
    for attachment in _of_type(files, "csv"):
        if isinstance(attachment.content, LedgerContent):
            continue
        rows = list(csv.reader(io.StringIO(attachment.content.read().decode())))
        assert rows[0][0] == "date" and len(rows) > 2
    for attachment in _of_type(files, "tsv"):
        rows = list(csv.reader(io.StringIO(attachment.content.read().decode()), delimiter="\t"))
        assert rows[0] == ["date", "region", "product", "units", "unit_price", "revenue"]
    for attachment in _of_type(files, "json"):
        document = json.loads(attachment.content.read())
        assert document["orders"] and document["orders"][0]["order_id"].startswith("SO-")
    for attachment in _of_type(files, "png"):
        with Image.open(io.BytesIO(attachment.content.read())) as image:
            image.verify()


def test_large_attachment_is_made_in_chunks_of_exact_size() -> None:
    for size in (0, 7, 20, 21, 55 * 2048 + 20, 55 * 2048 + 20 + 14, 1_000_003):
        content = LedgerContent(size, seed=3)
        chunks = list(content.chunks())
        data = b"".join(chunks)
        assert len(data) == content.size == size
        assert hashlib.sha256(data).hexdigest() == content.sha256
        assert max((len(chunk) for chunk in chunks), default=0) <= 256 * 1024

    sample = LedgerContent(1_000_003, seed=3).read()
    rows = list(csv.reader(io.StringIO(sample.decode())))
    assert rows[0] == ["batch", "line", "checksum"]
    assert all(len(row) in (0, 3) for row in rows)
    assert sample.endswith(b"\n")
    assert LedgerContent(1000, seed=4).sha256 != LedgerContent(1000, seed=3).sha256


def test_item_mime_holds_the_inner_attachments(
    generated: tuple[MailStore, list[Message]],
) -> None:
    _, messages = generated
    forwarded = next(m for m in messages if m.subject == "FW: Q3 figures")
    item = forwarded.attachments[0]
    assert item.kind == "item" and item.item is not None
    parsed = email.message_from_bytes(item.content.read(), policy=policy.default)
    assert parsed["Subject"] == "Q3 figures"
    names = [part.get_filename() for part in parsed.iter_attachments()]
    assert names == [a.name for a in item.item.attachments]

    whole = email.message_from_bytes(message_mime(forwarded), policy=policy.default)
    attached = list(whole.iter_attachments())
    assert [part.get_content_type() for part in attached] == ["message/rfc822"]


def test_messages_are_spread_over_folders(generated: tuple[MailStore, list[Message]]) -> None:
    store, messages = generated
    mailbox = store.mailbox("shared-inbox@contoso.example")
    assert mailbox is not None
    labels = {mailbox.folder_label(message.folder_id) for message in messages}
    assert {"inbox", "archive"} <= labels


def _names(records: list[dict[str, Any]]) -> set[str]:
    return {r["name"] for r in records}


def test_without_a_large_attachment_setting_there_is_none() -> None:
    store, _ = _generate(SETTINGS.model_copy(update={"large_attachment_bytes": 0}))
    assert "ledger-export.csv" not in _names(store.records())
