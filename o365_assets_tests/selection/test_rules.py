from pathlib import Path

import pytest

from o365_assets.selection.rules import (
    DEFAULT_KEEP_TYPES,
    RULES_ENV,
    Rules,
    RulesError,
    load_rules,
    parse_rules,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "rules.example.yaml"


def test_defaults_apply_without_a_rules_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(RULES_ENV, raising=False)

    rules = load_rules()

    assert rules == Rules()
    assert rules.keep_types == list(DEFAULT_KEEP_TYPES)
    assert rules.size_cap == 150_000_000
    assert rules.rules == []


def test_the_rules_file_is_named_by_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("size_cap: 20 MiB\nkeep_types: [pdf]\n", encoding="utf-8")
    monkeypatch.setenv(RULES_ENV, str(path))

    rules = load_rules()

    assert rules.size_cap == 20 * 1024 * 1024
    assert rules.keep_types == ["pdf"]


def test_a_missing_rules_file_is_an_error_not_the_defaults(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read the file"):
        load_rules(tmp_path / "absent.yaml")


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing yet\n", encoding="utf-8")

    assert load_rules(path) == Rules()


def test_the_example_file_documents_a_valid_configuration() -> None:
    rules = load_rules(EXAMPLE)

    names = [rule.name for rule in rules.rules]
    assert names[:4] == ["vendor-workbooks", "vendor-nothing-else", "invoices", "other-pdfs"]
    assert rules.routes[0].table == "vendor_sales"
    assert rules.routes[0].options.types == {"amount": "DECIMAL(18,2)"}


def test_the_example_file_mentions_every_field() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    fields = set(Rules.model_fields)
    fields |= {f"{name}:" for name in ("size_min", "size_max", "sender", "subject", "name")}
    fields |= {"types:", "extensions:", "kinds:", "min_messages:", "sha256:", "max_members:"}
    fields |= {"max_total_size:", "max_ratio:", "action:"}

    missing = [field for field in fields if field.rstrip(":") not in text]

    assert missing == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rules:\n"
            "  - {name: a, action: keep}\n"
            "  - {name: b, action: skip}\n"
            "  - name: invoices\n"
            "    match: {size_max: lots}\n"
            "    action: keep\n",
            "rules[2] 'invoices': match.size_max: ",
        ),
        (
            "rules:\n  - name: vendor\n    match: {sendr: a@b.example}\n    action: keep\n",
            "rules[0] 'vendor': match.sendr: unknown field",
        ),
        (
            "rules:\n  - name: vendor\n    match: {types: [xslx]}\n    action: keep\n",
            "rules[0] 'vendor': match.types: unknown type 'xslx'",
        ),
        (
            "rules:\n  - name: vendor\n    action: maybe\n",
            "rules[0] 'vendor': action: ",
        ),
        (
            "rules:\n  - match: {name: '*.pdf'}\n    action: keep\n",
            "rules[0]: name: required field is missing",
        ),
        (
            "rules:\n  - name: big\n"
            "    match: {size_min: 2 MB, size_max: 1 MB}\n    action: skip\n",
            "rules[0] 'big': match: size_min is larger than size_max",
        ),
        (
            "rules:\n  - {name: twice, action: keep}\n  - {name: twice, action: skip}\n",
            "rules: name 'twice' is used twice",
        ),
        ("size_cap: -5\n", "size_cap: "),
        ("keep_types: [pdf, exel]\n", "keep_types: unknown type 'exel'"),
        ("logos: {sha256: [not-a-hash]}\n", "logos.sha256: not a sha256 hex digest"),
        ("archives: {max_ratio: 0.5}\n", "archives.max_ratio: "),
        ("colour: blue\n", "colour: unknown field"),
        (
            "routes:\n  - name: sales\n    table: Sales Table\n",
            "routes[0] 'sales': table: 'Sales Table' is not a valid name",
        ),
        ("- just\n- a list\n", "the file must hold a mapping"),
        ("rules: [\n", "not valid YAML"),
    ],
)
def test_mistakes_name_the_rule_and_the_field(text: str, expected: str) -> None:
    with pytest.raises(RulesError) as raised:
        parse_rules(text, source="rules.yaml")

    assert any(problem.startswith(expected) for problem in raised.value.problems), (
        raised.value.problems
    )
    assert str(raised.value).startswith("invalid rules in rules.yaml: ")


def test_every_mistake_is_reported_at_once() -> None:
    text = "size_cap: huge\nrules:\n  - {name: a, action: keep, match: {kinds: [email]}}\n"

    with pytest.raises(RulesError) as raised:
        parse_rules(text)

    assert len(raised.value.problems) == 2
    assert raised.value.problems[1].startswith("rules[0] 'a': match.kinds[0]: ")


def test_single_values_stand_for_lists_and_sizes_take_units() -> None:
    rules = parse_rules(
        "keep_types: pdf\n"
        "rules:\n"
        "  - name: vendor\n"
        "    match: {sender: reports@vendor.example, types: xlsx, extensions: .XLSX,"
        " size_max: 1.5 MB, kinds: zip_member}\n"
        "    action: keep\n"
    )

    match = rules.rules[0].match
    assert rules.keep_types == ["pdf"]
    assert match.sender == ["reports@vendor.example"]
    assert match.types == ["xlsx"]
    assert match.extensions == ["xlsx"]
    assert match.size_max == 1_500_000
    assert match.kinds == ["zip_member"]
