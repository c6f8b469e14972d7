import pytest
import yaml
from pydantic import BaseModel, ValidationError

from o365_assets.parsing.routing import ParserOptions, Route, select_route
from o365_assets.parsing.sources import StagingSource
from o365_assets_tests.parsing.conftest import DAY


def _file(name: str, sender: str | None = None, subject: str | None = None) -> StagingSource:
    return StagingSource("m", "a", "s", DAY, name, "/nowhere", "xlsx", sender, subject)


class _Rules(BaseModel):
    routes: list[Route]


def test_routes_load_from_yaml_and_first_match_wins() -> None:
    rules = _Rules.model_validate(
        yaml.safe_load(
            """
            routes:
              - name: acme sales
                match:
                  sender: "*@ACME.example"
                  file_name: ["sales*.xlsx", "sales*.csv"]
                table: sales
                options:
                  rename: {"Order ID": order_id}
                  types: {amount: "decimal(18, 2)"}
              - name: everything else from acme
                match: {sender: "*@acme.example"}
                table: acme_misc
            """
        )
    )

    first = select_route(rules.routes, _file("Sales 2026.XLSX", "Ann <ann@acme.example>"))
    second = select_route(rules.routes, _file("other.xlsx", "ann@acme.example"))
    none = select_route(rules.routes, _file("sales.xlsx", "eve@evil.example"))

    assert first is not None and first.table == "sales"
    assert first.options.types == {"amount": "DECIMAL(18, 2)"}
    assert second is not None and second.table == "acme_misc"
    assert none is None


def test_all_conditions_must_hold() -> None:
    route = Route.model_validate(
        {
            "name": "r",
            "match": {"subject": "*invoice*", "detected_type": ["xlsx"]},
            "table": "invoices",
        }
    )

    assert select_route([route], _file("a.xlsx", subject="Your INVOICE for May"))
    assert not select_route([route], _file("a.xlsx", subject="Newsletter"))


def test_a_typo_in_a_rule_is_an_error_naming_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        Route.model_validate({"name": "r", "table": "t", "options": {"delimter": ";"}, "match": {}})

    assert "delimter" in str(caught.value)


@pytest.mark.parametrize(
    "payload",
    [
        {"name": "r", "table": "Sales Table"},
        {"name": "r", "table": "t; drop table x"},
        {"name": "r", "table": "_hidden"},
        {"name": "r", "table": "t", "options": {"types": {"a": "INT); DROP TABLE x; --"}}},
        {"name": "r", "table": "t", "options": {"rename": {"a": "B C"}}},
        {"name": "r", "table": "t", "options": {"encoding": "no-such-codec"}},
        {"name": "r", "table": "t", "options": {"header_row": -1}},
    ],
)
def test_unsafe_or_invalid_settings_are_refused(payload: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Route.model_validate(payload)


def test_encoding_is_normalised() -> None:
    assert ParserOptions(encoding="Windows-1252").encoding == "cp1252"
