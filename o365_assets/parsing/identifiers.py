"""Safe SQL identifiers made from names found in files: headers, sheet names, file names.

Everything that came in an email is hostile, so a name from a file never reaches SQL as it is:
it is reduced to lower snake case (letters, digits and underscores), it never starts with a
digit or an underscore (the leading underscore is kept for the lineage columns), and it is
always double-quoted when it is used.
"""

import re
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import PurePath

MAX_IDENTIFIER_LENGTH = 63

# Names of the lineage columns all start with this; names made from files never do.
LINEAGE_PREFIX = "_"

_NOT_WORD = re.compile(r"[^0-9a-z]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_DIGITS_ONLY = re.compile(r"^\d+$")
_VALID = re.compile(r"^[a-z][a-z0-9_]*$")


def snake_case(text: str) -> str:
    """Reduce `text` to lower snake case ASCII; may return an empty string.

    Accents are folded (``Année`` becomes ``annee``), camel case is split (``OrderID`` becomes
    ``order_id``), and every run of other characters becomes one underscore.
    """
    folded = unicodedata.normalize("NFKD", text)
    ascii_only = folded.encode("ascii", "ignore").decode("ascii")
    split = _CAMEL_BOUNDARY.sub("_", ascii_only)
    return _NOT_WORD.sub("_", split.lower()).strip("_")


def safe_identifier(text: object, fallback: str, digit_prefix: str = "col") -> str:
    """Turn a name from a file into a safe identifier, never empty and never a lineage name.

    `fallback` is used when nothing usable is left (an empty header, a name in a script that
    has no ASCII letters); a name that starts with a digit gets `digit_prefix` and an
    underscore in front.
    """
    name = snake_case("" if text is None else str(text))
    if not name:
        name = fallback
    if name[0].isdigit():
        name = f"{digit_prefix}_{name}"
    return name[:MAX_IDENTIFIER_LENGTH].rstrip("_")


def deduplicate(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """Make `names` unique by adding ``_2``, ``_3``, ... to repeats, in order of appearance."""
    seen = set(taken)
    unique = []
    for name in names:
        candidate = name
        counter = 1
        while candidate in seen:
            counter += 1
            suffix = f"_{counter}"
            candidate = name[: MAX_IDENTIFIER_LENGTH - len(suffix)] + suffix
        seen.add(candidate)
        unique.append(candidate)
    return unique


def column_names(headers: Sequence[object]) -> list[str]:
    """Safe, unique column names for a row of headers; blanks become ``column_<position>``."""
    names = [
        safe_identifier(header, fallback=f"column_{position}")
        for position, header in enumerate(headers, start=1)
    ]
    return deduplicate(names)


def table_name_for_file(source_name: str) -> str:
    """The staging table an unrouted tabular file lands in, from its file name.

    The extension is dropped, the stem is reduced to lower snake case, and words that are
    only digits (dates, sequence numbers) are dropped, so that the reports of every day land
    in one table: ``Sales Report 2026-12-01.xlsx`` becomes ``sales_report``.
    """
    stem = PurePath(source_name.replace("\\", "/")).name
    if "." in stem.lstrip("."):
        stem = stem.rsplit(".", 1)[0]
    words = [word for word in snake_case(stem).split("_") if not _DIGITS_ONLY.match(word)]
    return safe_identifier("_".join(words), fallback="attachment", digit_prefix="t")


def is_valid_identifier(name: str) -> bool:
    """Whether `name` is already a safe identifier as this module makes them."""
    return len(name) <= MAX_IDENTIFIER_LENGTH and bool(_VALID.match(name))


def quote(name: str) -> str:
    """Double-quote an identifier for DuckDB, doubling any quote inside it."""
    return '"' + name.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    """A quoted ``schema.table`` reference."""
    return f"{quote(schema)}.{quote(table)}"
