"""Real files of every kind the selection layer meets, made by the libraries that write them."""

import email
import io
import struct
import zipfile
from email import policy
from email.message import EmailMessage

import docx
import openpyxl
import xlwt
from fpdf import FPDF
from PIL import Image

CSV = b"id,name,amount\n1,Ann,3.50\n2,Bob,4.00\n3,Cy,12.25\n"
TSV = b"id\tname\tamount\n1\tAnn\t3.50\n2\tBob\t4.00\n"
JSON = b'{"invoices": [{"id": 1, "amount": 3.5}, {"id": 2, "amount": 4.0}]}'
JSONL = b'{"id": 1}\n{"id": 2}\n{"id": 3}\n'
TXT = b"Dear team,\nplease find the figures for March below.\nKind regards\n"
HTML = b"<!DOCTYPE html>\n<html><head><title>Report</title></head><body>1,2</body></html>\n"


def pdf() -> bytes:
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(text="Invoice INV-2026-001")
    return bytes(document.output())


def xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["id", "amount"])
    sheet.append([1, 3.5])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def xlsm() -> bytes:
    """An xlsx with a VBA project part added, as Excel saves macro-enabled workbooks."""
    buffer = io.BytesIO(xlsx())
    with zipfile.ZipFile(buffer, "a") as archive:
        archive.writestr("xl/vbaProject.bin", b"\x00" * 64)
    return buffer.getvalue()


def xls() -> bytes:
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Data")
    sheet.write(0, 0, "id")
    sheet.write(1, 0, 1)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def docx_bytes() -> bytes:
    document = docx.Document()
    document.add_paragraph("Quarterly report")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def pptx_like() -> bytes:
    """The part names PowerPoint writes, which is all detection reads."""
    return zip_of(
        {
            "[Content_Types].xml": b"<Types/>",
            "ppt/presentation.xml": b"<presentation/>",
            "ppt/slides/slide1.xml": b"<sld/>",
        }
    )


def ods_like() -> bytes:
    """An OpenDocument spreadsheet's layout: `mimetype` first and stored uncompressed."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"),
            b"application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        archive.writestr("content.xml", b"<office:document-content/>")
        archive.writestr("META-INF/manifest.xml", b"<manifest/>")
    return buffer.getvalue()


def jar_like() -> bytes:
    return zip_of({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "a/Main.class": b"\xca"})


def png(size: int = 16, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (10, 120, 10)).save(buffer, format="JPEG")
    return buffer.getvalue()


def pe_executable() -> bytes:
    """A Windows PE header stub: DOS header, e_lfanew at 0x3C, PE signature and COFF header."""
    dos = bytearray(b"MZ" + b"\x90\x00" + b"\x00" * 60)
    struct.pack_into("<I", dos, 0x3C, 0x80)
    stub = bytes(dos) + b"\x00" * (0x80 - len(dos))
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 0xF0, 0x22)
    return stub + b"PE\x00\x00" + coff + b"\x00" * 512


def zip_of(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def message(
    subject: str = "Figures",
    sender: str = "ann@example.com",
    attachments: list[tuple[str, str, bytes]] | None = None,
    html: str | None = None,
    inline: list[tuple[str, str, bytes, str]] | None = None,
    attached_messages: list[tuple[str, bytes]] | None = None,
) -> bytes:
    """An RFC 822 message: attachments are (name, mime type, bytes), inline images (name, mime
    type, bytes, content id), attached messages (name, message bytes)."""
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "shared@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = "<1@example.com>"
    mail.set_content("See attached.")
    if html is not None:
        mail.add_alternative(html, subtype="html")
        for name, mime, data, content_id in inline or []:
            maintype, subtype = mime.split("/")
            html_part = mail.get_payload()[1]
            html_part.add_related(
                data, maintype, subtype, cid=f"<{content_id}>", filename=name, disposition="inline"
            )
    for name, mime, data in attachments or []:
        maintype, subtype = mime.split("/")
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    for name, data in attached_messages or []:
        attached = email.message_from_bytes(data, policy=policy.default)
        mail.add_attachment(attached, filename=name)
    return mail.as_bytes()
