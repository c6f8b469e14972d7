"""Writers of test files: real workbooks, documents and messages made in `tmp_path`."""

import datetime
import re
import zipfile
from collections.abc import Sequence
from email.message import EmailMessage
from pathlib import Path

import docx
import fpdf
import openpyxl
import pypdf
import xlwt


def write_report_workbook(path: Path) -> Path:
    """A workbook as people mail them: a title, merged cells, dates, formulas, two sheets.

    Sheet "Sales" has a merged title in B2:E2, the header in row 4, a region merged down
    B5:B6, dates and a date-time, formulas whose cached results are written into the file as
    Excel would, an error value, and a formula-injection string stored as plain text. Sheet
    "Returns" shares some columns and adds one. A chart-less hidden sheet "Lookup" is also there.
    """
    book = openpyxl.Workbook()
    sales = book.active
    assert sales is not None
    sales.title = "Sales"
    sales["B2"] = "Quarterly sales report"
    sales.merge_cells("B2:E2")
    for column, header in zip("BCDE", ["Region", "Amount", "Day", "Double amount"], strict=True):
        sales[f"{column}4"] = header
    sales["B5"] = "North"
    sales.merge_cells("B5:B6")
    sales["C5"], sales["C6"], sales["C7"] = 10, 2.5, 4
    sales["D5"] = datetime.date(2026, 1, 2)
    sales["D6"] = datetime.datetime(2026, 1, 2, 3, 4, 5)
    sales["D7"] = datetime.date(2026, 1, 3)
    sales["E5"], sales["E6"], sales["E7"] = "=C5*2", "=C6*2", "=1/0"
    sales["B7"] = "=cmd|' /C calc'!A0"
    sales["B7"].data_type = "s"

    returns = book.create_sheet("Returns")
    returns.append(["Region", "Amount", "Reason"])
    returns.append(["South", 3, "damaged"])

    lookup = book.create_sheet("Lookup")
    lookup.append(["Code", "Label"])
    lookup.append(["N", "North"])
    lookup.sheet_state = "hidden"

    book.save(path)
    _write_cached_values(
        path,
        "xl/worksheets/sheet1.xml",
        {"C5*2": ("n", "20"), "C6*2": ("n", "5"), "1/0": ("e", "#DIV/0!")},
    )
    return path


def _write_cached_values(path: Path, member: str, cached: dict[str, tuple[str, str]]) -> None:
    """Give formula cells the cached results Excel stores (openpyxl writes none)."""
    with zipfile.ZipFile(path) as source:
        contents = {info.filename: source.read(info.filename) for info in source.infolist()}
    xml = contents[member].decode()
    for formula, (kind, value) in cached.items():
        pattern = re.compile(
            r'<c r="([A-Z]+\d+)"([^>]*)><f>' + re.escape(formula) + r"</f><v\s*/?>(</v>)?"
        )
        xml, count = pattern.subn(
            lambda match, kind=kind, value=value, formula=formula: (
                f'<c r="{match.group(1)}" t="{kind}"><f>{formula}</f><v>{value}</v>'
            ),
            xml,
        )
        assert count == 1, formula
    contents[member] = xml.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in contents.items():
            target.writestr(name, data)


def write_xlsx(path: Path, sheets: dict[str, Sequence[Sequence[object]]]) -> Path:
    """A plain workbook with the given rows per sheet."""
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    book.remove(first)
    for name, sheet_rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in sheet_rows:
            sheet.append(list(row))
    book.save(path)
    return path


def write_xls(path: Path) -> Path:
    """An Excel 97-2003 workbook with a date, a number and a merged cell."""
    book = xlwt.Workbook()
    sheet = book.add_sheet("Stock")
    sheet.write(0, 0, "item")
    sheet.write(0, 1, "qty")
    sheet.write(0, 2, "since")
    sheet.write_merge(1, 2, 0, 0, "bolt")
    sheet.write(1, 1, 12)
    sheet.write(2, 1, 7.5)
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    sheet.write(1, 2, datetime.date(2026, 2, 3), dates)
    sheet.write(2, 2, datetime.date(2026, 2, 4), dates)
    book.save(str(path))
    return path


def write_ods(path: Path) -> Path:
    """An OpenDocument spreadsheet, written as its XML by hand."""
    cells = (
        '<table:table-row><table:table-cell office:value-type="string"><text:p>item</text:p>'
        '</table:table-cell><table:table-cell office:value-type="string"><text:p>qty</text:p>'
        '</table:table-cell><table:table-cell office:value-type="string"><text:p>since</text:p>'
        "</table:table-cell></table:table-row>"
        '<table:table-row><table:table-cell office:value-type="string"><text:p>bolt</text:p>'
        '</table:table-cell><table:table-cell office:value-type="float" office:value="12">'
        '<text:p>12</text:p></table:table-cell><table:table-cell office:value-type="date" '
        'office:date-value="2026-01-02"><text:p>02/01/2026</text:p></table:table-cell>'
        "</table:table-row>"
    )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?><office:document-content '
        'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
        'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
        'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2">'
        '<office:body><office:spreadsheet><table:table table:name="Stock">'
        f"{cells}</table:table></office:spreadsheet></office:body></office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
        'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" '
        'manifest:version="1.2"><manifest:file-entry manifest:full-path="/" '
        'manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("META-INF/manifest.xml", manifest, zipfile.ZIP_DEFLATED)
        archive.writestr("content.xml", content, zipfile.ZIP_DEFLATED)
    return path


def write_zip_bomb_xlsx(path: Path, inflated_bytes: int = 64 << 20) -> Path:
    """An xlsx-shaped zip whose sheet inflates to `inflated_bytes` of blanks from a few KB."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            block = b" " * (1 << 20)
            for _ in range(inflated_bytes >> 20):
                member.write(block)
    return path


def write_pdf(path: Path, pages: Sequence[str], title: str = "Monthly statement") -> Path:
    """A PDF with one line of text per page, and a title and author."""
    document = fpdf.FPDF()
    document.set_title(title)
    document.set_author("Finance Team")
    document.set_font("helvetica", size=12)
    for text in pages:
        document.add_page()
        if text:
            document.cell(text=text)
    document.output(str(path))
    return path


def write_encrypted_pdf(path: Path, source: Path) -> Path:
    """`source` encrypted with a user password."""
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(source))
    writer.encrypt("s3cret-password")
    with path.open("wb") as handle:
        writer.write(handle)
    return path


def write_docx(path: Path) -> Path:
    """A Word document with a title, headed sections, a table with a merged cell, and a list."""
    document = docx.Document()
    document.core_properties.title = "Site visit"
    document.core_properties.author = "Inspector Gadget"
    document.add_paragraph("Preamble before any heading.")
    document.add_heading("Findings", level=1)
    document.add_paragraph("The roof leaks.")
    document.add_paragraph("The door squeaks.")
    table = document.add_table(rows=3, cols=3)
    for column, header in enumerate(["Item", "Cost", "Due"]):
        table.cell(0, column).text = header
    table.cell(1, 0).text = "Roof"
    table.cell(1, 1).text = "1200"
    table.cell(1, 2).text = "2027-01-31"
    merged = table.cell(2, 0).merge(table.cell(2, 1))
    merged.text = "Door (all in)"
    table.cell(2, 2).text = "soon"
    document.add_heading("Next steps", level=2)
    document.add_paragraph("Call the roofer.")
    document.save(str(path))
    return path


def write_eml(
    path: Path,
    *,
    html: str | None = None,
    text: str | None = "Hello,\nthe figures are attached.\n",
    attachment: bytes | None = None,
) -> Path:
    """An e-mail message with a text and/or HTML body and optionally an attachment."""
    message = EmailMessage()
    message["From"] = "Zoë Example <zoe@acme.example>"
    message["To"] = "finance@acme.example, Bob <bob@acme.example>"
    message["Cc"] = "audit@acme.example"
    message["Subject"] = "Résumé of December"
    message["Date"] = "Tue, 01 Dec 2026 09:30:00 +0100"
    message["Message-ID"] = "<abc.123@acme.example>"
    if text is not None:
        message.set_content(text)
    if html is not None:
        if text is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    if attachment is not None:
        message.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename="data.bin"
        )
    path.write_bytes(bytes(message))
    return path
