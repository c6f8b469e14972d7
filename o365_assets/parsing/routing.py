"""Routes: which staging table a file goes to, and how its parser should read it.

A rules file lists routes under its ``routes:`` key; the first route whose `match` fits a file
wins. Every model forbids unknown keys, so a typo in the rules file is an error that names the
field instead of a setting silently ignored.

Example, as it would appear in YAML::

    routes:
      - name: daily sales
        match:
          sender: "*@acme.example"
          file_name: "sales report*.xlsx"
        table: sales
        options:
          sheet: "Data"
          rename: {"Order ID": order_id}
          types: {amount: "DECIMAL(18,2)"}
"""

import codecs
import fnmatch
import re
from collections.abc import Sequence
from email.utils import parseaddr
from typing import Annotated, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from o365_assets.parsing.identifiers import is_valid_identifier

# A DuckDB type as a rules file may name it: a plain name with an optional precision, such as
# VARCHAR, DOUBLE, DECIMAL(18,2) or TIMESTAMP WITH TIME ZONE. Nothing else may reach SQL.
_TYPE_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_ ]{0,40}(\(\s*\d{1,3}\s*(,\s*\d{1,3}\s*)?\))?$")

DOCUMENTS_TABLE = "documents"


def _as_list(value: object) -> object:
    """Let a rules file give one pattern as a plain string."""
    if isinstance(value, str):
        return [value]
    return value


Patterns = Annotated[list[str], BeforeValidator(_as_list)]


class RoutedFile(Protocol):
    """What a route looks at to decide whether it matches a file."""

    @property
    def source_name(self) -> str: ...

    @property
    def detected_type(self) -> str: ...

    @property
    def sender(self) -> str | None: ...

    @property
    def subject(self) -> str | None: ...


class RouteMatch(BaseModel):
    """Conditions on a file; all that are given must hold, and an empty match holds always.

    Patterns are shell-style globs (``*``, ``?``, ``[abc]``) compared without regard to case;
    a list of patterns holds when any one of them does. `sender` is tried against the whole
    sender and against its bare address, so ``*@acme.example`` matches
    ``Ann <ann@acme.example>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: Patterns = Field(default_factory=list)
    subject: Patterns = Field(default_factory=list)
    file_name: Patterns = Field(default_factory=list)
    detected_type: Patterns = Field(default_factory=list)

    def matches(self, file: RoutedFile) -> bool:
        """Whether every condition given holds for `file`."""
        sender = file.sender or ""
        senders = [sender, parseaddr(sender)[1]]
        return (
            _any_match(self.sender, senders)
            and _any_match(self.subject, [file.subject or ""])
            and _any_match(self.file_name, [file.source_name])
            and _any_match(self.detected_type, [file.detected_type])
        )


class ParserOptions(BaseModel):
    """How to read a routed file; every option is optional and applies where it makes sense.

    - `sheet`: glob of the worksheet names to stage (spreadsheets); all sheets when unset.
    - `skip_rows`: leading rows dropped before anything else (title blocks, banners).
    - `header_row`: 1-based row of the header counted after `skip_rows`; 0 means the file has
      no header (columns are named ``column_1``, ``column_2``, ...); unset means detect it.
    - `delimiter`: field separator of delimited text; given on a route that matches a ``txt``
      file, it makes that file be read as delimited text instead of as a document.
    - `encoding`: text encoding (a Python codec name), instead of detecting it.
    - `rename`: source column -> target column; keys are the header as written in the file
      or its snake-case form.
    - `types`: target column (after renaming) -> DuckDB type, such as ``DECIMAL(18,2)``;
      values that do not convert make the file fail with the reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    sheet: str | None = None
    skip_rows: int = Field(default=0, ge=0)
    header_row: int | None = Field(default=None, ge=0)
    delimiter: str | None = Field(default=None, min_length=1, max_length=4)
    encoding: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    types: dict[str, str] = Field(default_factory=dict)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return codecs.lookup(value).name
        except LookupError as error:
            raise ValueError(f"unknown text encoding {value!r}") from error

    @field_validator("rename")
    @classmethod
    def _rename_targets(cls, value: dict[str, str]) -> dict[str, str]:
        for target in value.values():
            _check_identifier(target)
        return value

    @field_validator("types")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        checked = {}
        for column, type_name in value.items():
            _check_identifier(column)
            if not _TYPE_PATTERN.match(type_name):
                raise ValueError(f"column {column!r}: {type_name!r} is not a DuckDB type name")
            checked[column] = " ".join(type_name.upper().split())
        return checked


class Route(BaseModel):
    """A named rule: files that `match` go to staging table `table`, read with `options`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    match: RouteMatch = Field(default_factory=RouteMatch)
    table: str
    options: ParserOptions = Field(default_factory=ParserOptions)

    @field_validator("table")
    @classmethod
    def _table_name(cls, value: str) -> str:
        return _check_identifier(value)


def select_route(routes: Sequence[Route], file: RoutedFile) -> Route | None:
    """The first route that matches `file`, or None."""
    for route in routes:
        if route.match.matches(file):
            return route
    return None


def _any_match(patterns: Sequence[str], values: Sequence[str]) -> bool:
    if not patterns:
        return True
    folded = [value.casefold() for value in values]
    return any(
        fnmatch.fnmatchcase(value, pattern.casefold()) for pattern in patterns for value in folded
    )


def _check_identifier(name: str) -> str:
    if not is_valid_identifier(name):
        raise ValueError(
            f"{name!r} is not a valid name: use lower case letters, digits and underscores, "
            "starting with a letter, at most 63 characters"
        )
    return name
