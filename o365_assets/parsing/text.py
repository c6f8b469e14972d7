"""Plain text and HTML files, staged as document text.

HTML is reduced to its text with the standard library's tokenizer: nothing is fetched, run or
rendered; the content of ``script``, ``style`` and ``template`` elements is dropped, block
elements end lines, and character references are decoded.
"""

import re
from collections.abc import Iterator
from html.parser import HTMLParser

from o365_assets.parsing import encoding as text_encoding
from o365_assets.parsing.documents import (
    MAX_PART_CHARS,
    DocumentInfo,
    DocumentPart,
    load_document,
)
from o365_assets.parsing.sources import ParseRequest, ScratchTable

TEXT_PARSER = "text"
HTML_PARSER = "html"

_READ_CHARS = 1 << 20

_SKIPPED = {"script", "style", "template"}
_BLOCKS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
    "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table", "tr", "ul",
}  # fmt: skip
_CELLS = {"td", "th"}
_SPACES = re.compile(r"[ \f\v\r\u00a0]+")
_TABS = re.compile(r" ?\t[\t ]*")
_BLANK_LINES = re.compile(r"\n{2,}")


def load_text(request: ParseRequest) -> ScratchTable:
    """Stage a plain-text file: one ``body`` row, or ``chunk`` rows when it is long."""
    encoding = request.options.encoding or text_encoding.detect_encoding(request.path)
    scratch = load_document(request, _text_parts(request, encoding), DocumentInfo())
    scratch.notes["encoding"] = encoding
    return scratch


def load_html(request: ParseRequest) -> ScratchTable:
    """Stage an HTML file as the text a reader would see, with its ``<title>``."""
    encoding = request.options.encoding or text_encoding.detect_encoding(request.path)
    parser = TextExtractor()
    for piece in _read_text(request, encoding):
        parser.feed(piece)
    parser.close()
    title, text = parser.result()
    scratch = load_document(
        request, [DocumentPart("body", text)], DocumentInfo(title=title or None)
    )
    scratch.notes["encoding"] = encoding
    return scratch


def html_to_text(markup: str) -> tuple[str, str]:
    """The (title, text) of an HTML document or fragment."""
    parser = TextExtractor()
    parser.feed(markup)
    parser.close()
    return parser.result()


class TextExtractor(HTMLParser):
    """Collects the readable text of HTML fed to it, and the title."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._pieces: list[str] = []
        self._title: list[str] = []
        self._skipping: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIPPED:
            self._skipping.append(tag)
        elif tag in _BLOCKS:
            self._pieces.append("\n")
        elif tag in _CELLS:
            self._pieces.append("\t")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping and tag == self._skipping[-1]:
            self._skipping.pop()
        elif tag in _BLOCKS:
            self._pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self._title.append(data)
        elif not self._skipping:
            self._pieces.append(data)

    def result(self) -> tuple[str, str]:
        """The title and the text: one line per block, cells apart by tabs, spaces collapsed."""
        lines = (
            _TABS.sub("\t", _SPACES.sub(" ", line)).strip()
            for line in "".join(self._pieces).split("\n")
        )
        text = _BLANK_LINES.sub("\n", "\n".join(lines)).strip()
        title = _SPACES.sub(" ", " ".join("".join(self._title).split())).strip()
        return title, text


def _read_text(request: ParseRequest, encoding: str) -> Iterator[str]:
    """The file's text in pieces, decoded as `encoding` with undecodable bytes replaced."""
    codec = "utf-8-sig" if encoding == text_encoding.UTF8 else encoding
    with request.path.open(encoding=codec, errors="replace", newline=None) as handle:
        while piece := handle.read(_READ_CHARS):
            yield piece


def _text_parts(request: ParseRequest, encoding: str) -> Iterator[DocumentPart]:
    """One ``body`` part, or ``chunk`` parts when the text is longer than one part holds."""
    chunks = _chunks(_read_text(request, encoding))
    first = next(chunks)
    second = next(chunks, None)
    if second is None:
        yield DocumentPart("body", first)
        return
    yield DocumentPart("chunk", first)
    yield DocumentPart("chunk", second)
    for chunk in chunks:
        yield DocumentPart("chunk", chunk)


def _chunks(pieces: Iterator[str]) -> Iterator[str]:
    """Regroup text pieces into chunks of at most about MAX_PART_CHARS, cut at line ends."""
    pending = ""
    for piece in pieces:
        pending += piece
        while len(pending) > MAX_PART_CHARS:
            cut = pending.rfind("\n", 0, MAX_PART_CHARS) + 1 or MAX_PART_CHARS
            yield pending[:cut]
            pending = pending[cut:]
    yield pending
