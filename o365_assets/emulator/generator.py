"""A deterministic demo mailbox: the same seed gives the same ids, names, bytes and hashes.

The mix is what a shared reports mailbox receives: CSV, TSV, XLSX, DOCX, PDF and JSON files,
signature logos and inline images, forwarded messages with their own attachments (one nested two
deep), a link to a shared document, files whose names lie about their type, hostile names, and
one large file that is made in blocks when read and never held whole. Every file format is
written here by hand and opens in the usual readers.

Only the received times depend on the day: messages spread over the last `days` days, ending
today (UTC), so that a pipeline's default window sees them.
"""

import datetime
import hashlib
import io
import json
import random
import struct
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape

from o365_assets.emulator.eml_seed import seed_from_directory
from o365_assets.emulator.mailbox import (
    CHUNK_BYTES,
    Address,
    Attachment,
    BytesContent,
    Content,
    Folder,
    Mailbox,
    MailStore,
    Message,
    attachment_id,
    digest,
    message_mime,
    received_times,
)
from o365_assets.emulator.state import EmulatorState, MailboxSettings

UTC = datetime.UTC
# A fixed moment for everything that is not a received time, so that bytes never change.
EPOCH = datetime.datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
ZIP_TIME = (2026, 1, 5, 9, 30, 0)

SENDERS = (
    Address("Anna Schmidt", "anna.schmidt@fabrikam.example"),
    Address("Ravi Patel", "ravi.patel@contoso.example"),
    Address("Sales Reports", "noreply@reports.northwind.example"),
    Address("Jonas Berg", "jonas.berg@tailspin.example"),
    Address("Chloé Martin", "chloe.martin@adatum.example"),
    Address("Finance Robot", "finance-bot@contoso.example"),
    Address("Kenji Sato", "kenji.sato@wingtip.example"),
)
REGIONS = ("North", "South", "East", "West", "Central")
PRODUCTS = ("Widget", "Gadget", "Sprocket", "Gizmo", "Doohickey", "Flange")
LOGO_CID = "logo@contoso.example"


# -- file formats written by hand ------------------------------------------------------------


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A valid PNG of one colour with a lighter border, compressed deterministically."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    light = tuple(min(255, channel + 80) for channel in rgb)
    rows = []
    for y in range(height):
        row = bytearray([0])
        for x in range(width):
            edge = x in (0, width - 1) or y in (0, height - 1)
            row.extend(light if edge else rgb)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )


def _zip(parts: list[tuple[str, str]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in parts:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text.encode("utf-8"))
    return buffer.getvalue()


_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_TYPES = "http://schemas.openxmlformats.org/package/2006/content-types"
_SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_OOXML = "application/vnd.openxmlformats-officedocument"


def _column(index: int) -> str:
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(65 + rest) + name
    return name


def _cell(ref: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        text = escape(str(value))
        return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{text}</t></is></c>'
    return f'<c r="{ref}"><v>{value}</v></c>'


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    """A minimal SpreadsheetML workbook: one worksheet part per sheet, inline strings."""
    overrides = [
        f'<Override PartName="/xl/workbook.xml" '
        f'ContentType="{_OOXML}.spreadsheetml.sheet.main+xml"/>'
    ]
    sheet_tags, rels, parts = [], [], []
    for number, (title, rows) in enumerate(sheets.items(), start=1):
        overrides.append(
            f'<Override PartName="/xl/worksheets/sheet{number}.xml" '
            f'ContentType="{_OOXML}.spreadsheetml.worksheet+xml"/>'
        )
        sheet_tags.append(f'<sheet name="{escape(title)}" sheetId="{number}" r:id="rId{number}"/>')
        rels.append(
            f'<Relationship Id="rId{number}" Type="{_REL}/worksheet" '
            f'Target="worksheets/sheet{number}.xml"/>'
        )
        xml_rows = []
        for r, row in enumerate(rows, start=1):
            cells = "".join(_cell(f"{_column(c)}{r}", value) for c, value in enumerate(row))
            xml_rows.append(f'<row r="{r}">{cells}</row>')
        parts.append(
            (
                f"xl/worksheets/sheet{number}.xml",
                f'{_XML}<worksheet xmlns="{_SHEET_NS}"><sheetData>{"".join(xml_rows)}'
                "</sheetData></worksheet>",
            )
        )
    return _zip(
        [
            (
                "[Content_Types].xml",
                f'{_XML}<Types xmlns="{_TYPES}">'
                '<Default Extension="rels" '
                'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                f"{''.join(overrides)}</Types>",
            ),
            (
                "_rels/.rels",
                f'{_XML}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
                f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
            ),
            (
                "xl/workbook.xml",
                f'{_XML}<workbook xmlns="{_SHEET_NS}" xmlns:r="{_REL}">'
                f"<sheets>{''.join(sheet_tags)}</sheets></workbook>",
            ),
            (
                "xl/_rels/workbook.xml.rels",
                f'{_XML}<Relationships xmlns="{_PKG_REL}">{"".join(rels)}</Relationships>',
            ),
            *parts,
        ]
    )


def make_docx(paragraphs: list[str]) -> bytes:
    """A minimal WordprocessingML document with one run per paragraph."""
    word = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
    body = "".join(
        f'<w:p><w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r></w:p>'
        for text in paragraphs
    )
    return _zip(
        [
            (
                "[Content_Types].xml",
                f'{_XML}<Types xmlns="{_TYPES}">'
                '<Default Extension="rels" '
                'ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                '<Default Extension="xml" ContentType="application/xml"/>'
                '<Override PartName="/word/document.xml" '
                f'ContentType="{_OOXML}.wordprocessingml.document.main+xml"/></Types>',
            ),
            (
                "_rels/.rels",
                f'{_XML}<Relationships xmlns="{_PKG_REL}"><Relationship Id="rId1" '
                f'Type="{_REL}/officeDocument" Target="word/document.xml"/></Relationships>',
            ),
            (
                "word/document.xml",
                f'{_XML}<w:document xmlns:w="{word}"><w:body>{body}</w:body></w:document>',
            ),
        ]
    )


def make_pdf(lines: list[str]) -> bytes:
    """A one-page PDF 1.4 with Helvetica text lines and a correct cross-reference table."""

    def literal(text: str) -> str:
        ascii_text = text.encode("ascii", "replace").decode("ascii")
        return ascii_text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    shown = " T* ".join(f"({literal(line)}) Tj" for line in lines)
    stream = f"BT /F1 12 Tf 16 TL 72 720 Td {shown} ET".encode("ascii")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def make_pe_stub() -> bytes:
    """The start of a Windows executable: an MZ header pointing at a PE signature. It does not
    run; it is what a type check by bytes must recognise."""
    dos = bytearray(64)
    dos[0:2] = b"MZ"
    dos[0x3C:0x40] = struct.pack("<I", 0x80)
    stub = b"This program cannot be run in DOS mode.\r\r\n$".ljust(64, b"\x00")
    coff = struct.pack("<HHIIIHH", 0x14C, 1, 0x65A0C000, 0, 0, 0xE0, 0x0102)
    return bytes(dos) + stub + b"PE\x00\x00" + coff + bytes(0xE0)


def _table(rng: random.Random, rows: int, day: datetime.date) -> list[list[object]]:
    table: list[list[object]] = [["date", "region", "product", "units", "unit_price", "revenue"]]
    for _ in range(rows):
        units = rng.randint(1, 400)
        price = round(rng.uniform(2, 250), 2)
        table.append(
            [
                day.isoformat(),
                rng.choice(REGIONS),
                rng.choice(PRODUCTS),
                units,
                price,
                round(units * price, 2),
            ]
        )
    return table


def _delimited(table: list[list[object]], sep: str) -> bytes:
    return "".join(sep.join(str(value) for value in row) + "\r\n" for row in table).encode()


class LedgerContent:
    """A large CSV made batch by batch when read: never held whole, same bytes every time.

    Every line is `batch,line,checksum` of the same width; the last line is padded so that
    the file has exactly `size` bytes and still ends with a whole row.
    """

    HEADER = b"batch,line,checksum\n"
    LINE = 55
    LINES_PER_BATCH = 2048
    MARK = b"########"

    def __init__(self, size: int, seed: int) -> None:
        self._size = size
        checksums = [
            hashlib.sha1(f"{seed}:{line}".encode(), usedforsecurity=False).hexdigest()
            for line in range(self.LINES_PER_BATCH)
        ]
        self._template = b"".join(
            b"%s,%04d,%s\n" % (self.MARK, line, checksum.encode())
            for line, checksum in enumerate(checksums)
        )
        hasher = hashlib.sha256()
        for chunk in self.chunks():
            hasher.update(chunk)
        self.sha256 = hasher.hexdigest()

    @property
    def size(self) -> int:
        return self._size

    def chunks(self, chunk_size: int = CHUNK_BYTES) -> Iterator[bytes]:
        if self._size <= len(self.HEADER):
            yield self.HEADER[: self._size]
            return
        yield self.HEADER
        lines, rest = divmod(self._size - len(self.HEADER), self.LINE)
        batches, partial = divmod(lines, self.LINES_PER_BATCH)
        for batch in range(batches):
            yield self._template.replace(self.MARK, b"%08d" % batch)
        if partial:
            yield self._template[: partial * self.LINE].replace(self.MARK, b"%08d" % batches)
        if rest >= 15:
            yield b"%08d,%04d," % (batches, partial) + b"0" * (rest - 15) + b"\n"
        elif rest:
            yield b"\n" * rest

    def read(self) -> bytes:
        return b"".join(self.chunks())


# -- message recipes -------------------------------------------------------------------------


@dataclass
class Draft:
    """What a recipe makes: the parts of a message that differ between kinds of mail."""

    subject: str
    body: str
    attachments: list[Attachment]
    body_type: str = "html"


@dataclass
class Context:
    """What a recipe draws from: the seeded generator and how to name things."""

    rng: random.Random
    key: bytes
    settings: MailboxSettings
    sender: Address
    report_day: datetime.date
    logo: bytes
    chart: bytes
    recipient: Address
    counter: int = 0

    def file(
        self,
        name: str,
        content_type: str,
        data: bytes | Content,
        expected: str,
        *,
        inline_cid: str | None = None,
        referenced_cid: str | None = None,
    ) -> Attachment:
        """A file attachment; `inline_cid` makes it inline, `referenced_cid` gives a cid to a
        file that is not marked inline (mail clients do produce that)."""
        self.counter += 1
        content = BytesContent(data) if isinstance(data, bytes) else data
        return Attachment(
            id=attachment_id(self.key.hex(), self.counter),
            kind="file",
            name=name,
            content_type=content_type,
            last_modified=EPOCH,
            content=content,
            is_inline=inline_cid is not None,
            content_id=inline_cid or referenced_cid,
            expected_type=expected,
        )

    def item(self, name: str, inner: Message) -> Attachment:
        self.counter += 1
        return Attachment(
            id=attachment_id(self.key.hex(), self.counter),
            kind="item",
            name=name,
            content_type="message/rfc822",
            last_modified=EPOCH,
            content=BytesContent(message_mime(inner)),
            item=inner,
            expected_type="message",
        )

    def inner_message(self, subject: str, attachments: list[Attachment]) -> Message:
        self.counter += 1
        key = digest(self.key.hex(), "inner", self.counter)
        sent = EPOCH - datetime.timedelta(days=self.rng.randint(1, 60))
        sender = self.rng.choice(SENDERS)
        return Message(
            key=key,
            subject=subject,
            sender=sender,
            to=[self.sender],
            received=sent,
            sent=sent,
            body=f"<html><body><p>{escape(subject)}: see the attached files.</p></body></html>",
            internet_message_id=f"<{key.hex()[:24]}@{sender.address.split('@')[1]}>",
            attachments=attachments,
            created=sent,
            last_modified=sent,
        )

    def csv(self, name: str, rows: int = 12) -> Attachment:
        data = _delimited(_table(self.rng, rows, self.report_day), ",")
        return self.file(name, "text/csv", data, "csv")

    def tsv(self, name: str, rows: int = 12) -> Attachment:
        data = _delimited(_table(self.rng, rows, self.report_day), "\t")
        return self.file(name, "text/tab-separated-values", data, "tsv")

    def xlsx(self, name: str) -> Attachment:
        sheets = {
            "Sales": _table(self.rng, 15, self.report_day),
            "Returns": _table(self.rng, 4, self.report_day),
        }
        return self.file(name, f"{_OOXML}.spreadsheetml.sheet", make_xlsx(sheets), "xlsx")

    def docx(self, name: str) -> Attachment:
        paragraphs = [
            f"{name.rsplit('.', 1)[0]}",
            f"Prepared for the {self.rng.choice(REGIONS)} region on {self.report_day}.",
            f"Volume this period: {self.rng.randint(1000, 9000)} units.",
        ]
        return self.file(name, f"{_OOXML}.wordprocessingml.document", make_docx(paragraphs), "docx")

    def pdf(self, name: str) -> Attachment:
        lines = [
            name.rsplit(".", 1)[0],
            f"Statement date: {self.report_day}",
            f"Amount due: {self.rng.randint(100, 99999)}.{self.rng.randint(0, 99):02d} EUR",
        ]
        return self.file(name, "application/pdf", make_pdf(lines), "pdf")

    def json(self, name: str) -> Attachment:
        orders = [
            {
                "order_id": f"SO-{self.rng.randint(10000, 99999)}",
                "region": self.rng.choice(REGIONS),
                "total": round(self.rng.uniform(10, 5000), 2),
                "lines": [
                    {"product": self.rng.choice(PRODUCTS), "qty": self.rng.randint(1, 9)}
                    for _ in range(self.rng.randint(1, 3))
                ],
            }
            for _ in range(6)
        ]
        data = json.dumps({"generated": str(self.report_day), "orders": orders}, indent=2)
        return self.file(name, "application/json", data.encode(), "json")

    def signature_logo(self) -> Attachment:
        return self.file("logo.png", "image/png", self.logo, "png", inline_cid=LOGO_CID)


def _body(ctx: Context, text: str, *, logo: bool, extra_html: str = "") -> str:
    signature = f'<img src="cid:{LOGO_CID}" alt="Contoso" width="16" height="16">' if logo else ""
    return (
        '<html><head><meta charset="utf-8"></head><body>'
        f"<p>Hello,</p><p>{escape(text)}</p>{extra_html}"
        f"<p>Kind regards,<br>{escape(ctx.sender.name)}</p>{signature}</body></html>"
    )


def _daily(ctx: Context) -> Draft:
    day = ctx.report_day
    attachments = [
        ctx.csv(f"daily_sales_{day}.csv"),
        ctx.tsv(f"inventory_{day}.tsv"),
        ctx.signature_logo(),
    ]
    return Draft(
        f"Daily sales {day}",
        _body(ctx, "Attached are today's sales and inventory.", logo=True),
        attachments,
    )


def _xlsx_report(ctx: Context) -> Draft:
    name = f"Sales Report {ctx.report_day}.xlsx"
    return Draft(
        f"Sales Report {ctx.report_day}",
        _body(ctx, "Please find the weekly sales workbook attached.", logo=True),
        [ctx.xlsx(name), ctx.signature_logo()],
    )


def _docx(ctx: Context) -> Draft:
    return Draft(
        "Contract summary for review",
        _body(ctx, "The contract summary is attached for your review.", logo=False),
        [ctx.docx("Contract Summary.docx")],
    )


def _pdf(ctx: Context) -> Draft:
    name = f"Statement {ctx.report_day:%Y-%m}.pdf"
    return Draft(
        f"Your statement {ctx.report_day:%B %Y}",
        _body(ctx, "Your monthly statement is attached.", logo=True),
        [ctx.pdf(name), ctx.signature_logo()],
    )


def _json(ctx: Context) -> Draft:
    return Draft(
        "Order export",
        _body(ctx, "Automated order export.", logo=False),
        [ctx.json(f"orders-{ctx.rng.randint(100, 999)}.json")],
    )


def _plain(ctx: Context) -> Draft:
    return Draft(
        ctx.rng.choice(("Lunch on Friday?", "Quick question", "Meeting notes", "Re: schedule")),
        "Hi,\r\n\r\nNo attachments here, just a note.\r\n\r\nThanks",
        [],
        body_type="text",
    )


def _forwarded(ctx: Context) -> Draft:
    inner = ctx.inner_message(
        "Q3 figures", [ctx.csv("q3_figures.csv"), ctx.pdf("Q3 commentary.pdf")]
    )
    return Draft(
        "FW: Q3 figures",
        _body(ctx, "Forwarding the Q3 figures with both attachments.", logo=False),
        [ctx.item("Q3 figures", inner)],
    )


def _nested(ctx: Context) -> Draft:
    innermost = ctx.inner_message("Regional workbook", [ctx.xlsx("Regional Sales.xlsx")])
    middle = ctx.inner_message(
        "FW: Regional workbook",
        [ctx.item("Regional workbook", innermost), ctx.json("regional-summary.json")],
    )
    return Draft(
        "FW: FW: Regional workbook",
        _body(ctx, "This chain has the workbook two messages deep.", logo=False),
        [ctx.item("FW: Regional workbook", middle)],
    )


def _reference(ctx: Context) -> Draft:
    ctx.counter += 1
    link = Attachment(
        id=attachment_id(ctx.key.hex(), ctx.counter),
        kind="reference",
        name="Budget 2026.xlsx",
        content_type=f"{_OOXML}.spreadsheetml.sheet",
        last_modified=EPOCH,
        source_url="https://contoso.sharepoint.com/sites/finance/Shared%20Documents/Budget%202026.xlsx",
        reference_size=48213,
        expected_type="reference",
    )
    return Draft(
        "Budget 2026 (shared link)",
        _body(ctx, "The budget lives on SharePoint; the link is attached.", logo=False),
        [link],
    )


def _lying_invoice(ctx: Context) -> Draft:
    return Draft(
        "Invoice overdue - immediate action required",
        _body(ctx, "Open the attached invoice now.", logo=False),
        [ctx.file("invoice.pdf", "application/pdf", make_pe_stub(), "exe")],
    )


def _large(ctx: Context) -> Draft:
    size = ctx.settings.large_attachment_bytes
    content = LedgerContent(size, ctx.settings.seed)
    return Draft(
        "Full ledger export",
        _body(ctx, "The complete ledger export is attached.", logo=False),
        [ctx.file("ledger-export.csv", "text/csv", content, "csv")],
    )


def _hostile(ctx: Context) -> Draft:
    return Draft(
        "Re: files",
        _body(ctx, "See attached.", logo=False),
        [
            ctx.csv("../../etc/passwd.csv", rows=3),
            ctx.file("photo_\u202egnp.exe", "image/png", make_pe_stub(), "exe"),
        ],
    )


def _logo_not_inline(ctx: Context) -> Draft:
    # Some clients attach the logo as a plain attachment and still point at it by cid.
    logo = ctx.file("logo.png", "image/png", ctx.logo, "png", referenced_cid=LOGO_CID)
    return Draft(
        "Weekly numbers",
        _body(ctx, "Weekly numbers attached.", logo=True),
        [ctx.csv(f"weekly_{ctx.report_day}.csv"), logo],
    )


def _inline_only(ctx: Context) -> Draft:
    chart = ctx.file("chart.png", "image/png", ctx.chart, "png", inline_cid="chart@contoso.example")
    return Draft(
        "Chart of the week",
        _body(
            ctx,
            "This week's chart is inline below.",
            logo=True,
            extra_html='<p><img src="cid:chart@contoso.example" alt="chart"></p>',
        ),
        [chart, ctx.signature_logo()],
    )


def _random(ctx: Context) -> Draft:
    kind = ctx.rng.choice(("csv", "tsv", "xlsx", "docx", "pdf", "json", "multi", "none"))
    day = ctx.report_day
    logo = ctx.rng.random() < 0.5
    files: list[Attachment]
    if kind == "none":
        files = []
    elif kind == "multi":
        files = [
            ctx.csv(f"Sales Report {day}.csv"),
            ctx.xlsx(f"Sales Report {day}.xlsx"),
            ctx.pdf(f"Sales Report {day}.pdf"),
        ]
    else:
        maker: Callable[[str], Attachment] = getattr(ctx, kind)
        files = [maker(f"{ctx.rng.choice(('report', 'export', 'summary'))}_{day}.{kind}")]
    if logo:
        files.append(ctx.signature_logo())
    subject = f"{ctx.rng.choice(('Report', 'Export', 'Update', 'Figures'))} {day}"
    return Draft(subject, _body(ctx, "Files for the period attached.", logo=logo), files)


# The first messages always cover every case; the rest are drawn at random.
SPECIAL_RECIPES: tuple[Callable[[Context], Draft], ...] = (
    _daily,
    _xlsx_report,
    _docx,
    _pdf,
    _json,
    _plain,
    _forwarded,
    _nested,
    _reference,
    _lying_invoice,
    _large,
    _hostile,
    _logo_not_inline,
    _inline_only,
)


def generate_mailbox(
    store: MailStore,
    mailbox: Mailbox,
    settings: MailboxSettings,
    now: datetime.datetime | None = None,
) -> list[Message]:
    """Fill `mailbox` with `settings.messages` messages made from `settings.seed`."""
    now = (now or datetime.datetime.now(UTC)).replace(microsecond=0)
    rng = random.Random(settings.seed)
    inbox = mailbox.folder("inbox")
    archive = mailbox.folder("archive")
    assert inbox is not None and archive is not None
    invoices = mailbox.add_folder("Invoices", inbox)
    times = received_times(settings.messages, settings.days, rng, now)
    logo = make_png(16, 16, (0, 94, 184))
    chart = make_png(48, 24, (220, 120, 30))

    recipes = [r for r in SPECIAL_RECIPES if r is not _large or settings.large_attachment_bytes]
    made = []
    for number in range(settings.messages):
        key = digest(settings.seed, mailbox.address.lower(), "message", number)
        ctx = Context(
            rng=random.Random(f"{settings.seed}:{number}"),
            key=key,
            settings=settings,
            sender=SENDERS[number % len(SENDERS)],
            report_day=EPOCH.date() + datetime.timedelta(days=rng.randrange(365)),
            logo=logo,
            chart=chart,
            recipient=Address(mailbox.display_name, mailbox.address),
        )
        recipe = recipes[number] if number < len(recipes) else _random
        draft = recipe(ctx)
        folder = _folder_for(number, len(recipes), rng, inbox, archive, invoices)
        made.append(store.add_message(mailbox, _message(ctx, draft, times[number]), folder))
    return made


def _folder_for(
    number: int,
    specials: int,
    rng: random.Random,
    inbox: Folder,
    archive: Folder,
    invoices: Folder,
) -> Folder:
    draw = rng.random()
    if number < specials:
        return inbox
    if draw < 0.1:
        return archive
    if draw < 0.15:
        return invoices
    return inbox


def _message(ctx: Context, draft: Draft, received: datetime.datetime) -> Message:
    domain = ctx.sender.address.split("@")[1]
    colleague = SENDERS[(SENDERS.index(ctx.sender) + 1) % len(SENDERS)]
    sent = received - datetime.timedelta(seconds=ctx.rng.randint(2, 90))
    return Message(
        key=ctx.key,
        subject=draft.subject,
        sender=ctx.sender,
        to=[ctx.recipient],
        cc=[colleague] if ctx.rng.random() < 0.3 else [],
        received=received,
        sent=sent,
        body=draft.body,
        body_type=draft.body_type,
        importance="high" if ctx.rng.random() < 0.1 else "normal",
        is_read=ctx.rng.random() < 0.4,
        internet_message_id=f"<{ctx.key.hex()[:32]}@{domain}>",
        conversation_id=_conversation_id(ctx.key),
        attachments=draft.attachments,
        created=received,
        last_modified=received,
    )


def _conversation_id(key: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(b"\x00\x10\x00" + digest(key.hex(), "conversation")).decode()


def attachment_from_kind(
    ctx_key: bytes, index: int, kind: str, name: str | None, size: int | None, seed: int
) -> Attachment:
    """An attachment made by kind on request (the admin API's `generate`)."""
    ctx = Context(
        rng=random.Random(f"{seed}:{ctx_key.hex()}:{index}"),
        key=ctx_key,
        settings=MailboxSettings(seed=seed, large_attachment_bytes=size or 0),
        sender=SENDERS[0],
        report_day=EPOCH.date(),
        logo=make_png(16, 16, (0, 94, 184)),
        chart=make_png(48, 24, (220, 120, 30)),
        recipient=SENDERS[1],
        counter=index * 1000,
    )
    makers: dict[str, Callable[[], Attachment]] = {
        "csv": lambda: ctx.csv(name or "generated.csv"),
        "tsv": lambda: ctx.tsv(name or "generated.tsv"),
        "xlsx": lambda: ctx.xlsx(name or "generated.xlsx"),
        "docx": lambda: ctx.docx(name or "generated.docx"),
        "pdf": lambda: ctx.pdf(name or "generated.pdf"),
        "json": lambda: ctx.json(name or "generated.json"),
        "png": lambda: ctx.file(name or "image.png", "image/png", ctx.logo, "png"),
        "exe": lambda: ctx.file(
            name or "setup.exe", "application/octet-stream", make_pe_stub(), "exe"
        ),
        "large": lambda: ctx.file(
            name or "large.csv", "text/csv", LedgerContent(size or 1024 * 1024, seed), "csv"
        ),
    }
    if kind not in makers:
        raise ValueError(f"unknown generated kind {kind!r}; one of {', '.join(sorted(makers))}")
    return makers[kind]()


def build_mail_store(state: EmulatorState) -> MailStore:
    """The emulator's mail: the configured mailbox filled with demo messages (and the `.eml`
    files of `eml_dir`, if set), and an empty mailbox for every user of the tenant."""
    config = state.config
    store = MailStore()
    local_part = config.mailbox.split("@")[0]
    shared = store.add_mailbox(
        config.mailbox,
        local_part.replace("-", " ").replace(".", " ").title(),
        str(uuid.uuid5(uuid.NAMESPACE_URL, f"mailbox:{config.mailbox.lower()}")),
    )
    generate_mailbox(store, shared, config.mail)
    if config.mail.eml_dir is not None:
        inbox = shared.folder("inbox")
        assert inbox is not None
        seed_from_directory(store, shared, inbox, config.mail.eml_dir, config.mail)

    for user in state.users.values():
        if store.mailbox(user.upn) is None:
            store.add_mailbox(user.upn, user.display_name, user.object_id)
    return store
