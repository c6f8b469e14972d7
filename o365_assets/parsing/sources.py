"""The inputs of staging and what each parser hands back to it."""

import datetime
import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import duckdb

from o365_assets.parsing.routing import ParserOptions


@dataclass(frozen=True)
class StagingSource:
    """One kept attachment file, as the attachment step stored it.

    `source_name` is the attachment's original file name and is hostile text: it is only ever
    bound as a value. `detected_type` is the type found from the file's bytes, one of csv, tsv,
    txt, json, jsonl, xlsx, xlsm, xls, ods, pdf, docx, eml, html.
    """

    message_id: str
    attachment_id: str
    sha256: str
    received_date: datetime.date
    source_name: str
    path: str
    detected_type: str
    sender: str | None = None
    subject: str | None = None


class QuarantineError(Exception):
    """The file cannot be staged as its type (corrupt, encrypted, unsafe); the message says why.

    The message is written for a person and never carries the file's content.
    """


ScratchKind = Literal["tabular", "documents"]

_scratch_counter = itertools.count(1)


def new_scratch_name() -> str:
    """A temporary table name of our own making, unique within the process."""
    return f"o365_scratch_{next(_scratch_counter)}"


class DeferredReader(Protocol):
    """A file read during the staging transaction rather than while parsing.

    Parsing only prepares the read; staging asks for the ``FROM`` source, reads it into a
    scratch table, and asks `review` whether the rows fit or the file must be read again with
    `columns` changed.
    """

    warnings: list[str]

    @property
    def columns(self) -> list[tuple[str, str]]: ...

    def rename(self, current: str, new: str) -> None: ...

    def retype(self, column: str, type_name: str) -> None: ...

    def try_type(self, column: str, type_name: str) -> None: ...

    def source(self, first_parameter: int) -> tuple[str, list[Any]]: ...

    def review(self) -> bool: ...

    def notes(self) -> dict[str, Any]: ...


@dataclass
class ScratchTable:
    """A file's parsed rows in a temporary table, waiting to be moved into staging; or, when
    `reader` is set, the plan to read the file into that table during the staging transaction.

    `columns` are the data columns as (safe name, DuckDB type), in order. When
    `has_position_columns` is set the table also carries ``_sheet`` and ``_row_number``;
    otherwise rows are numbered in insertion order. `source_names` maps each data column to
    the header it was made from, so that a route can rename by the header as written.
    """

    name: str
    kind: ScratchKind
    columns: list[tuple[str, str]]
    rows: int
    has_position_columns: bool = False
    source_names: dict[str, str] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    reader: DeferredReader | None = None


@dataclass(frozen=True)
class ParseRequest:
    """Everything a parser needs: the file, the options from its route, and a work folder."""

    con: duckdb.DuckDBPyConnection
    source: StagingSource
    options: ParserOptions
    scratch_name: str
    workdir: Path

    @property
    def path(self) -> Path:
        """The stored file."""
        return Path(self.source.path)
