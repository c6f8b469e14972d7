"""PDF files, staged as one document row per page with pypdfium2.

An encrypted PDF that needs a password, and a file PDFium cannot open, are quarantined with
the reason. Pages without a text layer (scans) give empty text and a warning.
"""

import logging
from collections.abc import Iterator

import pypdfium2 as pdfium

from o365_assets.parsing.documents import DocumentInfo, DocumentPart, load_document
from o365_assets.parsing.sources import ParseRequest, QuarantineError, ScratchTable

logger = logging.getLogger(__name__)

PARSER = "pdfium"


def load_pdf(request: ParseRequest) -> ScratchTable:
    """Stage the text of each page of a PDF."""
    try:
        document = pdfium.PdfDocument(str(request.path))
    except pdfium.PdfiumError as error:
        message = str(error)
        if "password" in message.lower():
            raise QuarantineError("encrypted PDF: a password is needed to read it") from error
        raise QuarantineError(f"not a readable PDF: {message[:300]}") from error

    try:
        metadata = _metadata(document)
        empty: list[int] = []
        broken: list[int] = []
        parts = _pages(document, empty, broken)
        info = DocumentInfo(title=metadata.get("Title"), author=metadata.get("Author"))
        scratch = load_document(request, parts, info)
    finally:
        document.close()

    scratch.notes.update(pages=scratch.rows, pages_without_text=len(empty))
    if broken:
        scratch.warnings.append(f"pages {broken[:10]} could not be read and have no text")
    if empty and len(empty) == scratch.rows:
        scratch.warnings.append("no page has a text layer (a scan?); no text was staged")
    return scratch


def _pages(
    document: pdfium.PdfDocument, empty: list[int], broken: list[int]
) -> Iterator[DocumentPart]:
    for index in range(len(document)):
        number = index + 1
        try:
            text = _page_text(document, index)
        except pdfium.PdfiumError:
            logger.warning("page %d of a PDF could not be read", number)
            broken.append(number)
            text = ""
        # TODO: scanned pages have no text layer and stage empty text; there is no OCR.
        if not text.strip():
            empty.append(number)
        yield DocumentPart("page", text)


def _page_text(document: pdfium.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        text_page = page.get_textpage()
        try:
            text = str(text_page.get_text_bounded())
        finally:
            text_page.close()
    finally:
        page.close()
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _metadata(document: pdfium.PdfDocument) -> dict[str, str]:
    try:
        found = document.get_metadata_dict(skip_empty=True)
    except pdfium.PdfiumError:
        return {}
    return {str(key): str(value) for key, value in found.items()}
