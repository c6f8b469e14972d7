"""Which attachments to keep: type detection, rules, inline filters, containers.

Pure functions, no I/O beyond the file objects handed in. The public surface:

Rules
    `load_rules(path=None) -> Rules` reads the YAML file named by `O365_RULES` (defaults when
    unset); `parse_rules(text, source)`; `RulesError` names the rule and field of a mistake.

Types
    `detect_type(source, name, content_type) -> DetectedType` from the bytes (a seekable file or
    bytes), weighed against the name and declared type; `TYPES` lists the canonical types.

Decisions
    `Candidate` (everything known of one attachment), `screen(candidate, rules)` before a
    download (None: fetch and decide), `decide(candidate, rules) -> Decision` after it,
    `is_signature_logo(sha256, size, messages_seen, rules.logos)` for recurring small images.

Containers
    `read_mime(data) -> MimeMessage` (attachments of an attached message, `cid_references` of
    its HTML), `read_tnef(data) -> TnefContents` (winmail.dat), and
    `iter_zip_members(file, rules.archives)` (members streamed within limits).

A typical flow, per attachment::

    candidate = Candidate(name, content_type, size, kind="file", is_inline=..., sender=...,
                          subject=..., cid_referenced=content_id in cid_references(body_html))
    decision = screen(candidate, rules)
    if decision is None:
        received = store.receive(download(), expected_size=size)
        with store.open(received.path) as file:
            detected = detect_type(file, name, content_type)
        logo = is_signature_logo(received.sha256, received.size, seen_in(received.sha256),
                                 rules.logos)
        decision = decide(replace(candidate, detected=detected, size=received.size,
                                  recurring_logo=logo), rules)
    # decision.unpack: "zip" -> iter_zip_members, "mime" -> read_mime, "tnef" -> read_tnef;
    # each member or part is judged the same way as candidate.child(...) / child_part(part).
"""

from o365_assets.selection.archives import (
    ArchiveError,
    ArchiveLimitExceeded,
    ArchiveMember,
    iter_zip_members,
)
from o365_assets.selection.decide import (
    Candidate,
    Decision,
    decide,
    format_size,
    is_signature_logo,
    screen,
)
from o365_assets.selection.mime import (
    MimeMessage,
    Part,
    cid_references,
    normalise_content_id,
    read_mime,
)
from o365_assets.selection.rules import Rule, Rules, RulesError, load_rules, parse_rules
from o365_assets.selection.tnef import TnefContents, read_tnef
from o365_assets.selection.types import TYPES, ArchiveSummary, DetectedType, detect_type

__all__ = [
    "TYPES",
    "ArchiveError",
    "ArchiveLimitExceeded",
    "ArchiveMember",
    "ArchiveSummary",
    "Candidate",
    "Decision",
    "DetectedType",
    "MimeMessage",
    "Part",
    "Rule",
    "Rules",
    "RulesError",
    "TnefContents",
    "cid_references",
    "decide",
    "detect_type",
    "format_size",
    "is_signature_logo",
    "iter_zip_members",
    "load_rules",
    "normalise_content_id",
    "parse_rules",
    "read_mime",
    "read_tnef",
    "screen",
]
