"""Which parser reads which detected file type, and the version of each parser.

A parser's version changes whenever the rows it produces for the same file would change, so
that a caller comparing ``mail.parse_log.parser_version`` with `parser_version` knows which
files to stage again.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from o365_assets.parsing import (
    delimited,
    email_message,
    jsondata,
    pdf,
    spreadsheets,
    text,
    word,
)
from o365_assets.parsing.routing import ParserOptions
from o365_assets.parsing.sources import ParseRequest, ScratchKind, ScratchTable

# The version of the staging contract as a whole (lineage columns, naming, drift rules); every
# parser's version starts with it, so changing it marks every file for staging again.
PARSER_VERSION = "1"


@dataclass(frozen=True)
class Parser:
    """A parser: its name and version as recorded on every row, and what it produces."""

    name: str
    version: str
    kind: ScratchKind
    load: Callable[[ParseRequest], ScratchTable]


DELIMITED = Parser(delimited.PARSER, f"{PARSER_VERSION}.0", "tabular", delimited.load_delimited)
SPREADSHEET = Parser(
    spreadsheets.PARSER, f"{PARSER_VERSION}.0", "tabular", spreadsheets.load_spreadsheet
)
JSON = Parser(jsondata.PARSER, f"{PARSER_VERSION}.0", "tabular", jsondata.load_json)
PDF = Parser(pdf.PARSER, f"{PARSER_VERSION}.0", "documents", pdf.load_pdf)
DOCX = Parser(word.PARSER, f"{PARSER_VERSION}.0", "documents", word.load_docx)
EML = Parser(email_message.PARSER, f"{PARSER_VERSION}.0", "documents", email_message.load_eml)
TEXT = Parser(text.TEXT_PARSER, f"{PARSER_VERSION}.0", "documents", text.load_text)
HTML = Parser(text.HTML_PARSER, f"{PARSER_VERSION}.0", "documents", text.load_html)

PARSERS: Mapping[str, Parser] = MappingProxyType(
    {
        "csv": DELIMITED,
        "tsv": DELIMITED,
        "json": JSON,
        "jsonl": JSON,
        "xlsx": SPREADSHEET,
        "xlsm": SPREADSHEET,
        "xls": SPREADSHEET,
        "ods": SPREADSHEET,
        "pdf": PDF,
        "docx": DOCX,
        "eml": EML,
        "txt": TEXT,
        "html": HTML,
    }
)

# Detected type -> version of the parser that reads it, as written to ``_parser_version`` and
# ``mail.parse_log.parser_version``, for callers deciding what to stage again.
PARSER_VERSIONS: Mapping[str, str] = MappingProxyType(
    {kind: parser.version for kind, parser in PARSERS.items()}
)


def parser_for(detected_type: str, options: ParserOptions | None = None) -> Parser | None:
    """The parser for a detected type, or None when no parser reads it.

    A text file whose route gives a delimiter is read as delimited text.
    """
    kind = detected_type.lower()
    if kind == "txt" and options is not None and options.delimiter:
        return DELIMITED
    return PARSERS.get(kind)


def parser_version(detected_type: str, options: ParserOptions | None = None) -> str | None:
    """The parser version recorded for files of this type, or None when none reads it."""
    parser = parser_for(detected_type, options)
    return None if parser is None else parser.version
