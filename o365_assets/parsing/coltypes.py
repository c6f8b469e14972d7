"""Column types of staging tables: which may be written into SQL, and how two of them widen."""

import re

# A type name as DuckDB prints a simple type: BIGINT, DECIMAL(18,2), TIMESTAMP WITH TIME ZONE.
# Nested types (STRUCT, MAP, LIST, UNION) carry names from the file inside them and are staged
# as JSON instead, so the only type text ever written into SQL matches this.
_SIMPLE_TYPE = re.compile(r"^[A-Z][A-Z0-9_ ]{0,40}(\(\d{1,3}(,\s?\d{1,3})?\))?$")

VARCHAR = "VARCHAR"
JSON = "JSON"
DOUBLE = "DOUBLE"

_INTEGERS = {
    "TINYINT": 1,
    "UTINYINT": 2,
    "SMALLINT": 2,
    "USMALLINT": 3,
    "INTEGER": 3,
    "UINTEGER": 4,
    "BIGINT": 4,
    "UBIGINT": 5,
    "HUGEINT": 5,
    "UHUGEINT": 6,
}
_INTEGER_BY_RANK = {1: "TINYINT", 2: "SMALLINT", 3: "INTEGER", 4: "BIGINT", 5: "HUGEINT"}
_FLOATS = {"FLOAT", "DOUBLE"}
_TIMESTAMPS = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS"}
_TIMESTAMP_TZ = "TIMESTAMP WITH TIME ZONE"


def is_simple_type(type_name: str) -> bool:
    """Whether `type_name` is a plain DuckDB type that may be written into SQL."""
    return bool(_SIMPLE_TYPE.match(type_name))


def is_nested_type(type_name: str) -> bool:
    """Whether `type_name` is a STRUCT, MAP, LIST, ARRAY or UNION type."""
    upper = type_name.upper()
    return upper.endswith("]") or upper.startswith(("STRUCT", "MAP", "UNION"))


def staging_type(type_name: str) -> str:
    """The type a column of this DuckDB type gets in staging.

    Simple types stay as they are, nested ones become JSON, and anything else (an ENUM, a
    type DuckDB prints oddly) becomes VARCHAR.
    """
    if is_nested_type(type_name):
        return JSON
    if is_simple_type(type_name):
        return normalise(type_name)
    return VARCHAR


def normalise(type_name: str) -> str:
    """DuckDB's canonical spelling of a few common aliases."""
    upper = " ".join(type_name.upper().split())
    aliases = {
        "TIMESTAMPTZ": _TIMESTAMP_TZ,
        "INT": "INTEGER",
        "INT4": "INTEGER",
        "INT8": "BIGINT",
        "LONG": "BIGINT",
        "FLOAT8": DOUBLE,
        "DOUBLE PRECISION": DOUBLE,
        "REAL": "FLOAT",
        "FLOAT4": "FLOAT",
        "STRING": VARCHAR,
        "TEXT": VARCHAR,
        "BOOL": "BOOLEAN",
        "DATETIME": "TIMESTAMP",
    }
    return aliases.get(upper, upper)


def widen(current: str, incoming: str) -> str:
    """The narrowest type that holds values of both types without loss of meaning.

    Integers widen to the larger integer, integers and decimals or floats to DOUBLE, a DATE and
    a TIMESTAMP to TIMESTAMP, a TIMESTAMP and a TIMESTAMPTZ to TIMESTAMPTZ, and any other pair
    to VARCHAR, which holds anything as text.
    """
    current, incoming = normalise(current), normalise(incoming)
    if current == incoming:
        return current

    pair = {current, incoming}
    if pair <= set(_INTEGERS):
        rank = max(_INTEGERS[current], _INTEGERS[incoming])
        return _INTEGER_BY_RANK.get(rank, DOUBLE)
    if all(_is_numeric(name) for name in pair):
        return DOUBLE
    if pair <= _TIMESTAMPS | {"DATE"}:
        return "TIMESTAMP"
    if pair <= _TIMESTAMPS | {"DATE", _TIMESTAMP_TZ}:
        return _TIMESTAMP_TZ
    return VARCHAR


def _is_numeric(type_name: str) -> bool:
    return type_name in _INTEGERS or type_name in _FLOATS or type_name.startswith("DECIMAL")
