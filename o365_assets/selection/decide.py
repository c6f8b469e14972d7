"""The decision on one attachment: kept, skipped or quarantined, and why, in plain words.

The order of the tests, first answer wins:

1. reference attachments are never fetched;
2. nesting deeper than `max_depth` (an archive that deep is quarantined);
3. content that could not be read (`Candidate.problem`);
4. the size cap;
5. a name or declared type that lies about the content (quarantined);
6. a zip past its limits (a bomb) or encrypted (quarantined);
7. programs, password-protected documents and empty files;
8. inline images: marked inline, shown in the body by `cid:`, or recurring signature logos;
9. the user's rules, first match wins;
10. the defaults: the allowed types.

Containers (zip archives, attached messages, TNEF) are unpacked unless quarantined or skipped
before step 10; `Decision.unpack` tells the caller which reader to use on them.
"""

import fnmatch
from dataclasses import dataclass, replace
from email.utils import parseaddr
from typing import Literal

from o365_assets.selection.mime import Part
from o365_assets.selection.rules import Kind, LogoLimits, Match, Rules
from o365_assets.selection.types import (
    TYPES,
    DetectedType,
    extension_of,
    type_from_content_type,
    type_from_name,
)
from o365_assets.store.schema import KEPT, QUARANTINED, SKIPPED

Unpack = Literal["zip", "mime", "tnef"]

_CONTAINER_TYPES = frozenset({"zip", "eml", "tnef"})
_ZIP_FAMILY = frozenset({"zip", "xlsx", "xlsm", "xlsb", "docx", "docm", "pptx", "pptm", "ods"})


@dataclass(frozen=True)
class Candidate:
    """Everything known about one attachment when it is judged.

    `kind` is "file", "item" or "reference" for attachments listed by Graph, and "zip_member",
    "mime_part" or "tnef_part" for what was found inside another attachment; `depth` counts the
    containers around it (0 for an attachment of the mailbox message itself). `detected` is
    None until the bytes have been seen. `problem` says why the content could not be read.
    """

    name: str | None
    content_type: str | None
    size: int | None
    kind: Kind = "file"
    is_inline: bool = False
    sender: str | None = None
    subject: str | None = None
    cid_referenced: bool = False
    recurring_logo: bool = False
    depth: int = 0
    detected: DetectedType | None = None
    problem: str | None = None

    def child(
        self,
        name: str | None,
        content_type: str | None,
        size: int | None,
        kind: Kind,
        *,
        is_inline: bool = False,
        cid_referenced: bool = False,
        problem: str | None = None,
    ) -> "Candidate":
        """A candidate found inside this one (a zip member, a part of an attached message),
        one level deeper, judged with the same sender and subject."""
        return Candidate(
            name=name,
            content_type=content_type,
            size=size,
            kind=kind,
            is_inline=is_inline,
            sender=self.sender,
            subject=self.subject,
            cid_referenced=cid_referenced,
            depth=self.depth + 1,
            problem=problem,
        )

    def child_part(self, part: Part, *, cid_referenced: bool = False) -> "Candidate":
        """The candidate for a part read by `read_mime` or `read_tnef` from this one."""
        return self.child(
            part.name,
            part.content_type,
            len(part.data),
            part.kind,
            is_inline=part.is_inline,
            cid_referenced=cid_referenced,
            problem=part.problem,
        )


@dataclass(frozen=True)
class Decision:
    """The verdict: `decision` is KEPT, SKIPPED or QUARANTINED from `store.schema`.

    `detected_type` is the type the bytes showed (None when they were not fetched); `unpack`
    names the reader for a container whose contents are to be judged next ("zip", "mime",
    "tnef"); `rule` is the name of the rule that decided, if one did.
    """

    decision: str
    reason: str
    detected_type: str | None
    unpack: Unpack | None = None
    rule: str | None = None


def decide(candidate: Candidate, rules: Rules) -> Decision:
    """Judge an attachment whose bytes have been seen (`candidate.detected` set).

    Without `detected` the type is taken from the name or the declared content type, which is
    right only for what is never fetched (reference attachments); use `screen` before a
    download instead.
    """
    return _as_recorded(_decide(candidate, rules), candidate)


def screen(candidate: Candidate, rules: Rules) -> Decision | None:
    """Judge an attachment before downloading it, from its metadata alone.

    Returns a decision when the bytes could not change it (a reference, too large, an inline
    image, a rule that skips it without looking at the type, a type by name that is not
    allowed), else None: then fetch the bytes, detect the type and call `decide`.
    """
    decision = _screen(candidate, rules)
    return None if decision is None else _as_recorded(decision, candidate)


def _as_recorded(decision: Decision, candidate: Candidate) -> Decision:
    """`detected_type` is what the bytes showed: a type only claimed by a name is not it."""
    detected = candidate.detected.type if candidate.detected is not None else None
    return replace(decision, detected_type=detected)


def _decide(candidate: Candidate, rules: Rules) -> Decision:
    kind = _effective_type(candidate)
    verdict = _before_content(candidate, rules, kind) or _content_checks(candidate, rules, kind)
    if verdict is not None:
        return verdict
    if _is_image(candidate, kind):
        inline = _inline_reason(candidate)
        if inline:
            return Decision(SKIPPED, inline, kind)

    for rule in rules.rules:
        if _matches(rule.match, candidate, kind) is True:
            return _rule_decision(rule.name, rule.action, kind)
    return _default_decision(candidate, rules, kind)


def _screen(candidate: Candidate, rules: Rules) -> Decision | None:
    if candidate.detected is not None:
        return _decide(candidate, rules)

    claimed = type_from_name(candidate.name) or type_from_content_type(candidate.content_type)
    verdict = _before_content(candidate, rules, claimed)
    if verdict is not None:
        return verdict
    if _is_image(candidate, claimed):
        inline = _inline_reason(candidate)
        if inline:
            return Decision(SKIPPED, inline, claimed)

    for rule in rules.rules:
        matched = _matches(rule.match, candidate, None)
        if matched is None or (matched and rule.action == "keep"):
            return None
        if matched:
            return _rule_decision(rule.name, rule.action, claimed)

    if _surely_not_allowed(candidate, rules):
        return Decision(SKIPPED, f"type {claimed} not allowed", claimed)
    return None


def is_signature_logo(sha256: str, size: int, messages_seen: int, limits: LogoLimits) -> bool:
    """True when an image is a signature logo rather than an attachment.

    A logo is an image whose hash the rules list, or a small image (at most
    `limits.size_max`) that recurs in at least `limits.min_messages` distinct messages. The
    caller counts the messages from its index of attachments, so it must record the sha256 of
    every fetched attachment, kept or not.
    """
    if sha256.lower() in limits.sha256:
        return True
    return size <= limits.size_max and messages_seen >= limits.min_messages


def format_size(size: int) -> str:
    """A byte count in decimal units a person reads at a glance: "150 MB", "1.5 GB"."""
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            break
        value /= 1000
    if unit == "bytes":
        return f"{size} bytes"
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _effective_type(candidate: Candidate) -> str | None:
    if candidate.detected is not None:
        return candidate.detected.type
    return type_from_name(candidate.name) or type_from_content_type(candidate.content_type)


def _before_content(candidate: Candidate, rules: Rules, kind: str | None) -> Decision | None:
    """The tests that need no bytes: reference, depth, unreadable content, size cap."""
    if candidate.kind == "reference":
        return Decision(SKIPPED, "reference attachment: link recorded, not fetched", kind)

    if candidate.depth > rules.max_depth:
        where = f"nested {candidate.depth} levels deep, limit is {rules.max_depth}"
        if candidate.kind == "zip_member":
            return Decision(QUARANTINED, f"archive {where}", kind)
        return Decision(SKIPPED, where, kind)

    if candidate.problem:
        return Decision(SKIPPED, candidate.problem, kind)

    if candidate.size is not None and candidate.size > rules.size_cap:
        reason = f"larger than {format_size(rules.size_cap)} cap ({format_size(candidate.size)})"
        return Decision(SKIPPED, reason, kind)
    return None


def _content_checks(candidate: Candidate, rules: Rules, kind: str | None) -> Decision | None:
    """The tests on what the bytes turned out to be."""
    detected = candidate.detected
    if detected is None:
        return None

    if detected.mismatch:
        return Decision(QUARANTINED, detected.mismatch, kind)

    bomb = _archive_problem(detected, rules)
    if bomb:
        return Decision(QUARANTINED, bomb, kind)

    if detected.family == "executable":
        return Decision(SKIPPED, f"{detected.description} is never kept", kind)
    if detected.type == "encrypted-office":
        return Decision(SKIPPED, "password-protected Office document, cannot be read", kind)
    if detected.type == "empty" or candidate.size == 0:
        return Decision(SKIPPED, "empty file (0 bytes)", kind)
    return None


def _archive_problem(detected: DetectedType, rules: Rules) -> str | None:
    """Why a zip (or a zip-based Office file) must not be expanded, if it must not."""
    summary = detected.archive
    if summary is None or detected.type not in _ZIP_FAMILY:
        return None

    limits = rules.archives
    if summary.members > limits.max_members:
        return f"zip bomb: {summary.members} members, limit is {limits.max_members}"
    if summary.uncompressed_size > limits.max_total_size:
        expands = format_size(summary.uncompressed_size)
        return f"zip bomb: expands to {expands}, limit is {format_size(limits.max_total_size)}"
    if summary.max_ratio > limits.max_ratio:
        return (
            f"zip bomb: a member expands {summary.max_ratio:.0f} times, "
            f"limit is {limits.max_ratio:.0f} times"
        )
    if summary.encrypted and detected.type == "zip":
        return "encrypted zip: its members cannot be checked"
    return None


def _is_image(candidate: Candidate, kind: str | None) -> bool:
    if kind is not None and TYPES[kind].family == "image":
        return True
    if candidate.detected is not None and candidate.detected.by_content:
        return False
    # Bytes nobody recognises (a damaged image): the declared type is all there is.
    return (candidate.content_type or "").strip().lower().startswith("image/")


def _inline_reason(candidate: Candidate) -> str | None:
    if candidate.is_inline:
        return "inline image"
    if candidate.cid_referenced:
        return "image shown in the message body (cid:)"
    if candidate.recurring_logo:
        return "signature logo: small image recurring across messages"
    return None


def _matches(match: Match, candidate: Candidate, kind: str | None) -> bool | None:
    """Whether a rule's conditions hold; None when they need a type not yet known."""
    if match.kinds is not None and candidate.kind not in match.kinds:
        return False
    if match.extensions is not None and extension_of(candidate.name) not in match.extensions:
        return False
    if match.name is not None and not _glob(candidate.name, match.name):
        return False
    if match.sender is not None and not _sender_matches(candidate.sender, match.sender):
        return False
    if match.subject is not None and not _glob(candidate.subject, match.subject):
        return False

    size = candidate.size
    if match.size_min is not None and (size is None or size < match.size_min):
        return False
    if match.size_max is not None and (size is None or size > match.size_max):
        return False

    if match.types is not None:
        if kind is None:
            return None
        return kind in match.types
    return True


def _glob(value: str | None, patterns: list[str]) -> bool:
    if value is None:
        return False
    folded = value.casefold()
    return any(fnmatch.fnmatchcase(folded, pattern.casefold()) for pattern in patterns)


def _sender_matches(sender: str | None, patterns: list[str]) -> bool:
    """Patterns hold against the sender as given or its bare address (`Ann <ann@x.example>`)."""
    if sender is None:
        return False
    return _glob(sender, patterns) or _glob(parseaddr(sender)[1] or None, patterns)


def _rule_decision(name: str, action: str, kind: str | None) -> Decision:
    if action == "keep":
        return Decision(KEPT, f"rule {name!r} keeps it", kind, _unpack(kind), rule=name)
    return Decision(SKIPPED, f"rule {name!r} skips it", kind, rule=name)


def _default_decision(candidate: Candidate, rules: Rules, kind: str | None) -> Decision:
    unpack = _unpack(kind)
    if kind is None:
        return Decision(SKIPPED, "type unknown", None)

    if kind in rules.keep_types:
        return Decision(KEPT, f"type {kind} allowed", kind, unpack)
    if unpack == "zip":
        reason = "zip archive: not kept itself, its members are judged one by one"
        return Decision(SKIPPED, reason, kind, unpack)
    if unpack == "tnef":
        reason = "TNEF container (winmail.dat): its attachments are judged one by one"
        return Decision(SKIPPED, reason, kind, unpack)
    if unpack == "mime":
        reason = f"type {kind} not allowed; its attachments are judged one by one"
        return Decision(SKIPPED, reason, kind, unpack)
    return Decision(SKIPPED, f"type {kind} not allowed", kind)


def _unpack(kind: str | None) -> Unpack | None:
    # TODO: Outlook .msg files and gz, 7z, rar and tar archives are not unpacked; what they
    # hold is not judged, and they are skipped by their own type.
    if kind == "zip":
        return "zip"
    if kind == "eml":
        return "mime"
    if kind == "tnef":
        return "tnef"
    return None


def _surely_not_allowed(candidate: Candidate, rules: Rules) -> bool:
    """True when both the name and the declared type point at a type that is not allowed and
    that no content could turn into a kept file or an unpacked container."""
    by_name = type_from_name(candidate.name)
    declared = type_from_content_type(candidate.content_type)
    claims = [claim for claim in (by_name, declared) if claim is not None]
    if not claims or by_name is None:
        return False
    return all(claim not in rules.keep_types and claim not in _CONTAINER_TYPES for claim in claims)
