from dataclasses import replace
from pathlib import Path

import pytest

from o365_assets.selection.decide import (
    Candidate,
    decide,
    format_size,
    is_signature_logo,
    screen,
)
from o365_assets.selection.rules import LogoLimits, Rules, load_rules, parse_rules
from o365_assets.selection.types import detect_type
from o365_assets.store.schema import KEPT, QUARANTINED, SKIPPED
from o365_assets_tests.selection import samples

EXAMPLE = Path(__file__).resolve().parents[2] / "rules.example.yaml"
DEFAULTS = Rules()


def judged(
    data: bytes, name: str | None, content_type: str | None = None, **fields: object
) -> Candidate:
    """A candidate whose bytes have been seen, as the caller builds it after a download."""
    candidate = Candidate(name=name, content_type=content_type, size=len(data))
    detected = detect_type(data, name, content_type)
    return replace(candidate, detected=detected, **fields)  # type: ignore[arg-type]


def test_allowed_types_are_kept_with_the_reason() -> None:
    decision = decide(judged(samples.pdf(), "scan.pdf", "application/pdf"), DEFAULTS)

    assert (decision.decision, decision.reason) == (KEPT, "type pdf allowed")
    assert decision.detected_type == "pdf"


def test_types_outside_the_allowed_list_are_skipped() -> None:
    decision = decide(judged(samples.png(), "chart.png", "image/png"), DEFAULTS)

    assert (decision.decision, decision.reason) == (SKIPPED, "type png not allowed")


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        (samples.pe_executable, "invoice.pdf", "named .pdf, content is a Windows executable (PE)"),
        (lambda: samples.HTML, "report.xlsx", "named .xlsx, content is HTML"),
        (samples.xlsx, "export.csv", "named .csv, content is an Excel workbook (xlsx)"),
    ],
)
def test_lying_names_are_quarantined(make: object, name: str, reason: str) -> None:
    data = make()  # type: ignore[operator]

    decision = decide(judged(data, name), DEFAULTS)

    assert (decision.decision, decision.reason) == (QUARANTINED, reason)


def test_a_rule_cannot_keep_a_lying_file() -> None:
    rules = parse_rules("rules:\n  - {name: all, action: keep}\n")

    decision = decide(judged(samples.pe_executable(), "invoice.pdf"), rules)

    assert decision.decision == QUARANTINED


def test_benign_mismatch_is_kept() -> None:
    candidate = judged(samples.xlsx(), "book.xlsx", "application/octet-stream")

    decision = decide(candidate, DEFAULTS)

    assert (decision.decision, decision.reason) == (KEPT, "type xlsx allowed")


def test_an_honest_program_is_never_kept_even_by_a_rule() -> None:
    rules = parse_rules("keep_types: [exe]\nrules:\n  - {name: all, action: keep}\n")

    decision = decide(judged(samples.pe_executable(), "setup.exe"), rules)

    assert decision.decision == SKIPPED
    assert decision.reason == "a Windows executable (PE) is never kept"


def test_reference_attachments_are_never_fetched() -> None:
    candidate = Candidate("Budget.xlsx", None, 1234, kind="reference")

    assert screen(candidate, DEFAULTS) == decide(candidate, DEFAULTS)
    decision = decide(candidate, DEFAULTS)
    assert decision.decision == SKIPPED
    assert decision.reason == "reference attachment: link recorded, not fetched"


def test_inline_images_are_skipped_before_download() -> None:
    candidate = Candidate("image001.png", "image/png", 5_000, is_inline=True)

    decision = screen(candidate, DEFAULTS)

    assert decision is not None
    assert (decision.decision, decision.reason) == (SKIPPED, "inline image")
    assert decision.detected_type is None


def test_images_shown_by_cid_are_skipped() -> None:
    candidate = judged(samples.png(), "chart.png", "image/png", cid_referenced=True)
    rules = parse_rules("keep_types: [png]\n")

    decision = decide(candidate, rules)

    assert decision.reason == "image shown in the message body (cid:)"


def test_inline_pdf_is_an_attachment_not_an_inline_image() -> None:
    # Apple Mail marks attached PDFs inline; only images are dropped for being inline.
    candidate = judged(samples.pdf(), "scan.pdf", "application/pdf", is_inline=True)

    assert decide(candidate, DEFAULTS).decision == KEPT


def test_recurring_small_images_are_signature_logos() -> None:
    logos = LogoLimits()
    data = samples.png()
    sha = "a" * 64

    assert is_signature_logo(sha, len(data), messages_seen=5, limits=logos)
    assert not is_signature_logo(sha, len(data), messages_seen=2, limits=logos)
    assert not is_signature_logo(sha, 5_000_000, messages_seen=50, limits=logos)
    listed = LogoLimits(sha256=[sha])
    assert is_signature_logo(sha.upper(), 5_000_000, messages_seen=1, limits=listed)

    rules = parse_rules("keep_types: [png]\n")
    decision = decide(judged(data, "logo.png", recurring_logo=True), rules)
    assert decision.reason == "signature logo: small image recurring across messages"
    assert decide(judged(data, "logo.png"), rules).decision == KEPT


def test_size_cap_is_checked_before_download_and_names_the_cap() -> None:
    candidate = Candidate("huge.csv", "text/csv", 200_000_000)

    decision = screen(candidate, DEFAULTS)

    assert decision is not None
    assert decision.decision == SKIPPED
    assert decision.reason == "larger than 150 MB cap (200 MB)"


def test_screen_asks_for_the_bytes_when_they_could_change_the_verdict() -> None:
    assert screen(Candidate("report.xlsx", None, 10_000), DEFAULTS) is None
    assert screen(Candidate("attachment", "application/octet-stream", 10_000), DEFAULTS) is None
    assert screen(Candidate("bundle.zip", "application/zip", 10_000), DEFAULTS) is None


def test_screen_skips_a_type_that_is_not_allowed_by_name_and_declaration() -> None:
    decision = screen(Candidate("holiday.jpg", "image/jpeg", 10_000), DEFAULTS)

    assert decision is not None
    assert (decision.decision, decision.reason) == (SKIPPED, "type jpg not allowed")


def test_the_vendor_and_invoice_example() -> None:
    rules = load_rules(EXAMPLE)
    vendor = "Vendor Reports <reports@vendor.example>"

    def verdict(data: bytes, name: str, sender: str) -> str:
        return decide(judged(data, name, sender=sender), rules).reason

    assert verdict(samples.xlsx(), "sales.xlsx", vendor) == "rule 'vendor-workbooks' keeps it"
    assert verdict(samples.pdf(), "INV-1.pdf", vendor) == "rule 'vendor-nothing-else' skips it"
    assert verdict(samples.CSV, "sales.csv", vendor) == "rule 'vendor-nothing-else' skips it"
    assert verdict(samples.pdf(), "INV-2026-7.pdf", "ap@x.example") == "rule 'invoices' keeps it"
    assert verdict(samples.pdf(), "inv-lower.PDF", "ap@x.example") == "rule 'invoices' keeps it"
    assert verdict(samples.pdf(), "brochure.pdf", "ap@x.example") == "rule 'other-pdfs' skips it"
    assert verdict(samples.CSV, "other.csv", "ap@x.example") == "type csv allowed"


def test_rules_match_on_size_subject_and_kind() -> None:
    rules = parse_rules(
        "rules:\n"
        "  - name: small-csv\n"
        "    match: {types: [csv], size_max: 10 KB, subject: '*daily*', kinds: [file]}\n"
        "    action: skip\n"
    )
    data = samples.CSV

    assert decide(judged(data, "a.csv", subject="The DAILY run"), rules).rule == "small-csv"
    assert decide(judged(data, "a.csv", subject="weekly"), rules).rule is None
    member = judged(data, "a.csv", subject="daily", kind="zip_member")
    assert decide(member, rules).rule is None


def test_a_rule_on_the_type_waits_for_the_bytes_in_screen() -> None:
    rules = parse_rules("rules:\n  - {name: no-pdf, match: {types: [pdf]}, action: skip}\n")

    assert screen(Candidate("scan.pdf", "application/pdf", 10_000), rules) is None


def test_a_rule_without_a_type_skips_before_download() -> None:
    rules = parse_rules(
        "rules:\n  - {name: spam, match: {sender: '*@spam.example'}, action: skip}\n"
    )

    decision = screen(Candidate("a.pdf", None, 10, sender="x@spam.example"), rules)

    assert decision is not None
    assert decision.reason == "rule 'spam' skips it"


def test_zip_bomb_is_quarantined_without_expanding_it() -> None:
    # Zeros deflate about a thousand times, whatever their amount.
    data = samples.zip_of({"zeros.bin": b"\x00" * 20_000_000})

    decision = decide(judged(data, "invoice.zip", "application/zip"), DEFAULTS)

    assert decision.decision == QUARANTINED
    assert decision.reason.startswith("zip bomb: a member expands ")
    assert decision.reason.endswith("times, limit is 100 times")
    assert decision.unpack is None


def test_zip_over_the_total_size_or_member_count_is_quarantined() -> None:
    data = samples.zip_of({f"{index}.csv": samples.CSV for index in range(30)})
    few = parse_rules("archives: {max_members: 20}\n")
    small = parse_rules("archives: {max_total_size: 1 KB}\n")

    assert decide(judged(data, "a.zip"), few).reason == "zip bomb: 30 members, limit is 20"
    expands = format_size(30 * len(samples.CSV))
    assert decide(judged(data, "a.zip"), small).reason == (
        f"zip bomb: expands to {expands}, limit is 1 KB"
    )


def test_plain_zip_is_unpacked_not_kept() -> None:
    data = samples.zip_of({"a.csv": samples.CSV})

    decision = decide(judged(data, "a.zip"), DEFAULTS)

    assert decision.decision == SKIPPED
    assert decision.unpack == "zip"


def test_attached_messages_are_kept_and_unpacked() -> None:
    data = samples.message()

    decision = decide(judged(data, "fwd.eml", "message/rfc822", kind="item"), DEFAULTS)

    assert (decision.decision, decision.unpack) == (KEPT, "mime")


def test_a_rule_that_skips_a_container_stops_its_unpacking() -> None:
    rules = parse_rules("rules:\n  - {name: no-zips, match: {types: [zip]}, action: skip}\n")

    decision = decide(judged(samples.zip_of({"a.csv": samples.CSV}), "a.zip"), rules)

    assert decision.unpack is None


def test_depth_limit_skips_messages_and_quarantines_archives() -> None:
    parent = Candidate("a.zip", None, 10, depth=3)
    message = parent.child("deep.eml", "message/rfc822", 10, "mime_part")
    member = parent.child("deep.zip", None, 10, "zip_member")

    assert message.depth == 4
    assert decide(message, DEFAULTS).decision == SKIPPED
    assert decide(message, DEFAULTS).reason == "nested 4 levels deep, limit is 3"
    assert decide(member, DEFAULTS).decision == QUARANTINED


def test_unreadable_content_is_skipped_with_its_problem() -> None:
    member = Candidate("a.csv", None, 10, kind="zip_member", problem="encrypted zip member")

    assert decide(member, DEFAULTS).reason == "encrypted zip member"


def test_empty_files_are_skipped() -> None:
    assert decide(judged(b"", "empty.csv"), DEFAULTS).reason == "empty file (0 bytes)"


def test_tnef_is_unpacked() -> None:
    data = b"\x78\x9f\x3e\x22" + b"\x00" * 40

    decision = decide(judged(data, "winmail.dat", "application/ms-tnef"), DEFAULTS)

    assert decision.unpack == "tnef"
    assert decision.reason.startswith("TNEF container")


@pytest.mark.parametrize(
    ("size", "text"),
    [(999, "999 bytes"), (150_000_000, "150 MB"), (1_500_000_000, "1.5 GB"), (2_048, "2 KB")],
)
def test_sizes_read_at_a_glance(size: int, text: str) -> None:
    assert format_size(size) == text
