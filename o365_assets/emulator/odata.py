"""The OData query options Graph accepts on mail: `$filter`, `$orderby`, `$select`, `$expand`,
and the `Prefer` header.

`$filter` is parsed for real (comparisons joined by `and`/`or`, `not`, parentheses), so a
malformed or unsupported clause is refused with a 400 the way Graph refuses it, never a 500.
"""

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

UTC = datetime.UTC


class QueryError(Exception):
    """A query option Graph would refuse: carries the Graph error code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bad_filter(detail: str) -> QueryError:
    return QueryError("BadRequest", f"Invalid filter clause: {detail}")


def unknown_property(name: str, type_name: str) -> QueryError:
    return QueryError(
        "RequestBroker--ParseUri",
        f"Could not find a property named '{name}' on type 'microsoft.graph.{type_name}'.",
    )


_TOKEN = re.compile(
    r"""\s*(?:
      (?P<open>\()
    | (?P<close>\))
    | (?P<comma>,)
    | (?P<string>'(?:[^']|'')*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?)?)
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)

COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokens(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise _bad_filter(f"unexpected character at position {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Token(kind, match.group(kind), match.start(kind)))
        position = match.end()
    return tokens


def parse_datetime(text: str) -> datetime.datetime:
    """An OData DateTimeOffset literal; a date alone means midnight UTC, no offset means UTC."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _bad_filter(f"'{text}' is not a valid date and time") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


Predicate = Callable[[Callable[[str], Any]], bool]


class Filter:
    """A parsed `$filter`: `matches(get)` evaluates it with `get(property)` for values.

    `types` maps each filterable property (canonical name) to "datetime", "bool", "number"
    or "string".
    `properties` lists the properties in the order the clause names them, which Graph's rule
    for `$orderby` with `$filter` needs.
    """

    def __init__(self, text: str, types: dict[str, str], type_name: str = "message") -> None:
        self.text = text
        self._types = {name.lower(): (name, kind) for name, kind in types.items()}
        self._type_name = type_name
        self.properties: list[str] = []
        self._tokens = _tokens(text)
        self._at = 0
        if not self._tokens:
            raise _bad_filter("the clause is empty")
        self._predicate = self._or()
        if self._at != len(self._tokens):
            token = self._tokens[self._at]
            raise _bad_filter(f"unexpected '{token.text}' at position {token.position}")

    def matches(self, get: Callable[[str], Any]) -> bool:
        return self._predicate(get)

    # -- recursive descent ---------------------------------------------------------------

    def _peek(self) -> _Token | None:
        return self._tokens[self._at] if self._at < len(self._tokens) else None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise _bad_filter("the clause ends too early")
        self._at += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "word" and token.text.lower() == word:
            self._at += 1
            return True
        return False

    def _or(self) -> Predicate:
        left = self._and()
        while self._keyword("or"):
            right = self._and()
            left = (lambda a, b: lambda get: a(get) or b(get))(left, right)
        return left

    def _and(self) -> Predicate:
        left = self._unary()
        while self._keyword("and"):
            right = self._unary()
            left = (lambda a, b: lambda get: a(get) and b(get))(left, right)
        return left

    def _unary(self) -> Predicate:
        if self._keyword("not"):
            inner = self._unary()
            return lambda get: not inner(get)
        token = self._peek()
        if token is not None and token.kind == "open":
            self._take()
            inner = self._or()
            closing = self._take()
            if closing.kind != "close":
                raise _bad_filter(f"expected ')' at position {closing.position}")
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        subject = self._take()
        if subject.kind != "word":
            raise _bad_filter(f"expected a property at position {subject.position}")
        after = self._peek()
        if after is not None and after.kind == "open":
            raise QueryError(
                "BadRequest", f"The function '{subject.text}' is not supported in this filter."
            )
        known = self._types.get(subject.text.lower())
        if known is None:
            raise unknown_property(subject.text, self._type_name)
        name, kind = known

        operator = self._take()
        if operator.kind != "word" or operator.text.lower() not in COMPARISONS:
            raise _bad_filter(f"expected an operator after '{subject.text}'")
        op = operator.text.lower()
        value = self._literal(kind, op)

        if name not in self.properties:
            self.properties.append(name)
        return _compare(name, op, value)

    def _literal(self, kind: str, op: str) -> Any:
        token = self._take()
        if kind == "datetime":
            if token.kind != "datetime":
                raise _bad_filter(f"'{token.text}' is not a date and time")
            return parse_datetime(token.text)
        if kind == "bool":
            if token.kind != "word" or token.text.lower() not in ("true", "false"):
                raise _bad_filter(f"'{token.text}' is not true or false")
            if op not in ("eq", "ne"):
                raise _bad_filter("booleans compare with eq or ne only")
            return token.text.lower() == "true"
        if kind == "number":
            if token.kind != "number":
                raise _bad_filter(f"'{token.text}' is not a number")
            return float(token.text) if "." in token.text else int(token.text)
        if token.kind != "string":
            raise _bad_filter(f"'{token.text}' is not a quoted string")
        return token.text[1:-1].replace("''", "'")


def _compare(name: str, op: str, value: Any) -> Predicate:
    def predicate(get: Callable[[str], Any]) -> bool:
        actual = get(name)
        if actual is None:
            return op == "ne"
        if isinstance(value, str) and isinstance(actual, str):
            actual, expected = actual.lower(), value.lower()
        else:
            expected = value
        if op == "eq":
            return bool(actual == expected)
        if op == "ne":
            return bool(actual != expected)
        if op == "gt":
            return bool(actual > expected)
        if op == "ge":
            return bool(actual >= expected)
        if op == "lt":
            return bool(actual < expected)
        return bool(actual <= expected)

    return predicate


def parse_orderby(text: str, sortable: list[str], type_name: str) -> list[tuple[str, bool]]:
    """`prop [asc|desc], ...` as (canonical property, descending) pairs."""
    known = {name.lower(): name for name in sortable}
    order = []
    for item in text.split(","):
        words = item.split()
        if not words or len(words) > 2:
            raise QueryError("BadRequest", f"Invalid $orderby clause: '{text}'.")
        name = known.get(words[0].lower())
        if name is None:
            raise unknown_property(words[0], type_name)
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise QueryError("BadRequest", f"Invalid sort direction '{words[1]}'.")
        order.append((name, direction == "desc"))
    return order


def parse_select(text: str, selectable: list[str], type_name: str) -> list[str]:
    """The canonical names of a `$select` list; a type cast prefix is accepted and dropped."""
    known = {name.lower(): name for name in selectable}
    chosen = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        bare = item.rsplit("/", 1)[-1] if item.lower().startswith("microsoft.graph.") else item
        name = known.get(bare.lower())
        if name is None:
            raise unknown_property(item, type_name)
        if name not in chosen:
            chosen.append(name)
    return chosen


def split_top_level(text: str, separator: str) -> list[str]:
    """Split on `separator` outside parentheses and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for index, char in enumerate(text):
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        elif not quoted and depth == 0 and char == separator:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts if part.strip()]


def parse_expand(text: str) -> list[tuple[str, dict[str, str]]]:
    """`nav($select=a,b;$top=1), other` as (navigation property, nested options)."""
    expanded = []
    for item in split_top_level(text, ","):
        name, opened, rest = item.partition("(")
        options: dict[str, str] = {}
        if opened:
            if not rest.endswith(")"):
                raise QueryError("BadRequest", f"Invalid $expand clause: '{item}'.")
            for option in split_top_level(rest[:-1], ";"):
                key, _, value = option.partition("=")
                options[key.strip().lower()] = value.strip()
        expanded.append((name.strip(), options))
    return expanded


def parse_prefer(values: list[str]) -> dict[str, str]:
    """The preferences in `Prefer` headers, names lower-cased and quotes removed."""
    preferences = {}
    for value in values:
        for item in split_top_level(value.replace('"', "'"), ","):
            key, _, setting = item.partition("=")
            preferences[key.strip().lower()] = setting.strip().strip("'")
    return preferences
