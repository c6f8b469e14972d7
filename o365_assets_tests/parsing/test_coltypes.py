import pytest

from o365_assets.parsing.coltypes import is_simple_type, staging_type, widen


@pytest.mark.parametrize(
    ("current", "incoming", "wider"),
    [
        ("BIGINT", "BIGINT", "BIGINT"),
        ("INTEGER", "BIGINT", "BIGINT"),
        ("BIGINT", "DOUBLE", "DOUBLE"),
        ("DECIMAL(18,2)", "BIGINT", "DOUBLE"),
        ("DATE", "TIMESTAMP", "TIMESTAMP"),
        ("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE"),
        ("BIGINT", "VARCHAR", "VARCHAR"),
        ("VARCHAR", "DATE", "VARCHAR"),
        ("BOOLEAN", "BIGINT", "VARCHAR"),
        ("JSON", "BIGINT", "VARCHAR"),
    ],
)
def test_widen(current: str, incoming: str, wider: str) -> None:
    assert widen(current, incoming) == wider
    assert widen(incoming, current) == wider


@pytest.mark.parametrize(
    ("type_name", "staged"),
    [
        ("BIGINT", "BIGINT"),
        ("DECIMAL(18,3)", "DECIMAL(18,3)"),
        ('STRUCT(a BIGINT, "b""); drop" VARCHAR)', "JSON"),
        ("VARCHAR[]", "JSON"),
        ("MAP(VARCHAR, JSON)", "JSON"),
        ("ENUM('a', 'b')", "VARCHAR"),
        ('"NULL"', "VARCHAR"),
    ],
)
def test_staging_type_keeps_only_simple_types(type_name: str, staged: str) -> None:
    assert staging_type(type_name) == staged
    assert is_simple_type(staging_type(type_name))
