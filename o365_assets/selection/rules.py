"""The selection rules: one declarative YAML file, validated strictly.

The file is named by the environment variable `O365_RULES`; without it the built-in defaults
apply. `rules.example.yaml` at the repository root documents every field. A mistake is reported
with the rule and the field it concerns, e.g. ``rules[2] 'invoices': match.size_max: ...``.
"""

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from o365_assets.parsing.routing import Route
from o365_assets.selection.types import TYPES

RULES_ENV = "O365_RULES"

Kind = Literal["file", "item", "reference", "zip_member", "mime_part", "tnef_part"]
Action = Literal["keep", "skip"]

DEFAULT_KEEP_TYPES = ("csv", "tsv", "xlsx", "xls", "pdf", "docx", "json", "txt", "eml")


def _as_list(value: Any) -> Any:
    """Let a single value stand for a list of one."""
    return [value] if isinstance(value, str | int) and not isinstance(value, bool) else value


def _check_types(values: list[str]) -> list[str]:
    cleaned = [value.strip().lower() for value in values]
    unknown = [value for value in cleaned if value not in TYPES]
    if unknown:
        raise ValueError(f"unknown type {unknown[0]!r}; known types: {', '.join(sorted(TYPES))}")
    return cleaned


def _check_patterns(values: list[str]) -> list[str]:
    if any(not value.strip() for value in values):
        raise ValueError("empty pattern")
    return values


Patterns = Annotated[list[str], BeforeValidator(_as_list)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Match(_Strict):
    """Conditions of a rule; every condition given must hold, a list holds when any item does.

    Patterns are globs (`*`, `?`, `[...]`) compared without regard to case.
    """

    types: Patterns | None = None
    extensions: Patterns | None = None
    size_min: ByteSize | None = None
    size_max: ByteSize | None = None
    sender: Patterns | None = None
    subject: Patterns | None = None
    name: Patterns | None = None
    kinds: Annotated[list[Kind], BeforeValidator(_as_list)] | None = None

    @field_validator("types")
    @classmethod
    def _known_types(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _check_types(values)

    @field_validator("extensions")
    @classmethod
    def _bare_extensions(cls, values: list[str] | None) -> list[str] | None:
        if values is None:
            return None
        cleaned = [value.strip().lstrip(".").lower() for value in values]
        if any(not value for value in cleaned):
            raise ValueError("empty extension")
        return cleaned

    @field_validator("sender", "subject", "name")
    @classmethod
    def _non_empty_patterns(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _check_patterns(values)

    @model_validator(mode="after")
    def _size_range(self) -> "Match":
        sizes = (self.size_min, self.size_max)
        if sizes[0] is not None and sizes[1] is not None and sizes[0] > sizes[1]:
            raise ValueError("size_min is larger than size_max")
        return self


class Rule(_Strict):
    """One rule: a name for reasons and errors, the conditions, and keep or skip."""

    name: str = Field(min_length=1)
    match: Match = Match()
    action: Action


class LogoLimits(_Strict):
    """When an image counts as a signature logo rather than an attachment."""

    size_max: ByteSize = ByteSize(64_000)
    min_messages: int = Field(default=3, ge=2)
    sha256: list[str] = []

    @field_validator("sha256")
    @classmethod
    def _hex_digests(cls, values: list[str]) -> list[str]:
        cleaned = [value.strip().lower() for value in values]
        bad = [value for value in cleaned if not re.fullmatch(r"[0-9a-f]{64}", value)]
        if bad:
            raise ValueError(f"not a sha256 hex digest: {bad[0]!r}")
        return cleaned


class ArchiveLimits(_Strict):
    """Limits past which a zip is a bomb: quarantined, never expanded."""

    max_members: int = Field(default=1000, ge=1)
    max_total_size: ByteSize = ByteSize(1_000_000_000)
    max_ratio: float = Field(default=100.0, gt=1)


class Rules(_Strict):
    """The whole rules file. Every field has a default; an empty file means the defaults."""

    size_cap: ByteSize = ByteSize(150_000_000)
    keep_types: list[str] = list(DEFAULT_KEEP_TYPES)
    max_depth: int = Field(default=3, ge=0)
    logos: LogoLimits = LogoLimits()
    archives: ArchiveLimits = ArchiveLimits()
    rules: list[Rule] = []
    routes: list[Route] = []

    @field_validator("keep_types", mode="before")
    @classmethod
    def _keep_types_list(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("keep_types")
    @classmethod
    def _known_keep_types(cls, values: list[str]) -> list[str]:
        return _check_types(values)

    @field_validator("rules", "routes")
    @classmethod
    def _unique_names(cls, items: list[Any]) -> list[Any]:
        seen: set[str] = set()
        for item in items:
            if item.name in seen:
                raise ValueError(f"name {item.name!r} is used twice")
            seen.add(item.name)
        return items


# Top-level lists whose items have names to quote in error messages.
_LISTS = ("rules", "routes")


class RulesError(ValueError):
    """A rules file that cannot be used; `problems` lists each mistake on its own."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__(f"invalid rules in {source}: " + "; ".join(self.problems))


def load_rules(path: str | os.PathLike[str] | None = None) -> Rules:
    """Load the rules from `path`, else from the file named by `O365_RULES`, else defaults."""
    if path is None:
        path = os.environ.get(RULES_ENV) or None
    if path is None:
        return Rules()

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise RulesError(str(path), [f"cannot read the file: {error}"]) from error
    return parse_rules(text, source=str(path))


def parse_rules(text: str, source: str = "<rules>") -> Rules:
    """Parse and validate the YAML text of a rules file."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(source, [f"not valid YAML: {error}"]) from error

    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RulesError(source, ["the file must hold a mapping of settings"])

    try:
        return Rules.model_validate(data)
    except ValidationError as error:
        raise RulesError(source, _problems(error, data)) from None


def _problems(error: ValidationError, data: Mapping[str, Any]) -> list[str]:
    """One line per mistake, naming the rule (by index and name) and the field."""
    problems = []
    for item in error.errors():
        location = list(item["loc"])
        prefix = ""
        if len(location) >= 2 and location[0] in _LISTS and isinstance(location[1], int):
            key, index = str(location[0]), location[1]
            prefix = f"{key}[{index}]{_item_name(data, key, index)}"
            location = location[2:]

        field = _dotted(location)
        message = _message(item)
        if prefix and field:
            problems.append(f"{prefix}: {field}: {message}")
        else:
            problems.append(f"{prefix or field or 'file'}: {message}")
    return problems


def _item_name(data: Mapping[str, Any], key: str, index: int) -> str:
    items = data.get(key)
    if isinstance(items, list) and index < len(items) and isinstance(items[index], Mapping):
        name = items[index].get("name")
        if isinstance(name, str) and name:
            return f" {name!r}"
    return ""


def _dotted(location: list[int | str]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not part.startswith(("function-", "list[", "literal[")):
            text += f".{part}" if text else part
    return text


def _message(item: Any) -> str:
    if item["type"] == "extra_forbidden":
        return "unknown field"
    if item["type"] == "missing":
        return "required field is missing"
    if item["type"] in {"byte_size", "byte_size_unit"}:
        return f"not a size ({item['input']!r}): give bytes or a unit, such as 150 MB or 20 MiB"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")
