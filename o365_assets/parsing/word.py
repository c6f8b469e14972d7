"""Word documents (docx), staged as document rows with python-docx.

The body is read in order and cut at headings: each heading starts a ``section`` row holding
the heading's paragraphs, and each table becomes a ``table`` row of its own, where cells are
separated by tabs and table rows by line breaks. Tables stay with the text (rather than going
to a tabular table) because tables in Word files are mostly layout and forms; their text keeps
its place between the paragraphs and a reader can still split it by tabs.
"""

from collections.abc import Iterator

import docx
from docx.document import Document
from docx.opc.exceptions import PackageNotFoundError
from docx.table import Table
from docx.text.paragraph import Paragraph

from o365_assets.parsing.containers import check_office_zip
from o365_assets.parsing.documents import DocumentInfo, DocumentPart, load_document
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable

PARSER = "python_docx"


def load_docx(request: ParseRequest) -> ScratchTable:
    """Stage the sections and tables of a Word document."""
    check_office_zip(request.path, "docx")
    try:
        document = docx.Document(str(request.path))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as error:
        raise QuarantineError(f"not a readable docx document: {str(error)[:300]}") from error
    except Exception as error:  # lxml and zipfile errors from a corrupt package
        raise QuarantineError(f"not a readable docx document: {type(error).__name__}") from error

    properties = document.core_properties
    info = DocumentInfo(title=properties.title or None, author=properties.author or None)
    parts = list(_parts(document))
    scratch = load_document(request, parts, info)
    scratch.notes.update(
        sections=sum(part.part == "section" for part in parts),
        tables=sum(part.part == "table" for part in parts),
    )
    return scratch


def _parts(document: Document) -> Iterator[DocumentPart]:
    heading: str | None = None
    lines: list[str] = []
    # Whether the current heading has had a row yet; a heading alone still gets one.
    shown = True
    for block in document.iter_inner_content():
        if isinstance(block, Paragraph):
            if _is_heading(block):
                if lines or not shown:
                    yield DocumentPart("section", "\n".join(lines), heading)
                heading, lines, shown = block.text.strip(), [], False
            elif block.text.strip():
                lines.append(block.text)
        elif isinstance(block, Table):
            if lines:
                yield DocumentPart("section", "\n".join(lines), heading)
                lines = []
            yield DocumentPart("table", _table_text(block), heading)
            shown = True
    if lines or not shown:
        yield DocumentPart("section", "\n".join(lines), heading)


def _is_heading(paragraph: Paragraph) -> bool:
    style = paragraph.style
    name = (style.name or "") if style is not None else ""
    return name.startswith("Heading") or name == "Title"


def _table_text(table: Table) -> str:
    rows = []
    for row in table.rows:
        cells = []
        previous = None
        for cell in row.cells:
            # A merged cell is returned once per grid column it spans; keep it once.
            if cell._tc is previous:
                continue
            previous = cell._tc
            cells.append(" ".join(cell.text.split()))
        rows.append("\t".join(cells))
    return "\n".join(rows)
