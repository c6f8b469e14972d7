import pytest

from o365_assets.parsing.identifiers import (
    column_names,
    deduplicate,
    is_valid_identifier,
    quote,
    safe_identifier,
    table_name_for_file,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Order ID", "order_id"),
        ("OrderID", "order_id"),
        ("Année fiscale", "annee_fiscale"),
        ("select", "select"),
        ('"quoted"', "quoted"),
        ("drop table x;--", "drop_table_x"),
        ("2026", "col_2026"),
        ("_message_id", "message_id"),
        ("   ", "fallback"),
        ("客户", "fallback"),
        ("a" * 100, "a" * 63),
    ],
)
def test_safe_identifier(header: str, expected: str) -> None:
    name = safe_identifier(header, fallback="fallback")

    assert name == expected
    assert is_valid_identifier(name)


def test_column_names_are_unique_and_fill_blanks() -> None:
    assert column_names(["Amount", "amount", "", "AMOUNT", None]) == [
        "amount",
        "amount_2",
        "column_3",
        "amount_3",
        "column_5",
    ]


def test_deduplicate_avoids_names_taken_already() -> None:
    assert deduplicate(["column_3", "x"], taken=["column_3"]) == ["column_3_2", "x"]


@pytest.mark.parametrize(
    ("file_name", "table"),
    [
        ("Sales Report 2026-12-01.xlsx", "sales_report"),
        ("sales_report_20261201.csv", "sales_report"),
        ("Q3 results v2.csv", "q3_results_v2"),
        ("2026-12-01.csv", "attachment"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\x\\Inventory (final).xlsx", "inventory_final"),
        ("3d models.csv", "t_3d_models"),
        (".hidden", "hidden"),
    ],
)
def test_table_name_for_file(file_name: str, table: str) -> None:
    assert table_name_for_file(file_name) == table


def test_quote_doubles_embedded_quotes() -> None:
    assert quote('a"b') == '"a""b"'
