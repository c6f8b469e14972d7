import base64
import io
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from o365_assets.selection.archives import ArchiveError, iter_zip_members
from o365_assets.selection.decide import Candidate, Decision, decide
from o365_assets.selection.mime import (
    cid_references,
    normalise_content_id,
    read_mime,
)
from o365_assets.selection.rules import Rules
from o365_assets.selection.tnef import read_tnef
from o365_assets.selection.types import detect_type
from o365_assets.store.schema import DECISIONS, KEPT, SKIPPED
from o365_assets_tests.selection import samples

CORPUS = Path(os.environ.get("O365_CORPUS_DIR", Path(__file__).resolve().parents[3] / "shared"))
CORPUS = CORPUS / "corpus" / "eml" if (CORPUS / "corpus").is_dir() else CORPUS


def raw_message(part_headers: str, body: bytes) -> bytes:
    """A message with one text body and one hand-written attachment part."""
    head = (
        "From: ann@example.com\r\nSubject: names\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        f"--b1\r\n{part_headers}\r\n\r\n"
    ).encode()
    return head + body + b"\r\n--b1--\r\n"


def test_attachments_of_a_message_with_their_metadata() -> None:
    data = samples.message(
        subject="March figures",
        sender="Ann <ann@example.com>",
        attachments=[
            ("figures.csv", "text/csv", samples.CSV),
            ("scan.pdf", "application/pdf", samples.pdf()),
        ],
    )

    message = read_mime(data)

    assert message.subject == "March figures"
    assert message.sender == "ann@example.com"
    assert [(part.name, part.content_type) for part in message.attachments] == [
        ("figures.csv", "text/csv"),
        ("scan.pdf", "application/pdf"),
    ]
    assert message.attachments[0].data == samples.CSV
    assert message.problems == ()


def test_nested_messages_two_deep_are_reached_by_reading_each_level() -> None:
    innermost = samples.message(
        subject="innermost", attachments=[("report.pdf", "application/pdf", samples.pdf())]
    )
    middle = samples.message(subject="middle", attached_messages=[("inner.eml", innermost)])
    outer = samples.message(subject="outer", attached_messages=[("middle.eml", middle)])
    rules = Rules()
    root = Candidate(None, "message/rfc822", len(outer), sender="ann@example.com")

    found: list[tuple[int, str | None, Decision]] = []

    def walk(parent: Candidate, data: bytes) -> None:
        message = read_mime(data)
        for part in message.attachments:
            child = parent.child_part(part, cid_referenced=message.is_cid_referenced(part))
            detected = detect_type(part.data, part.name, part.content_type)
            decision = decide(replace(child, detected=detected), rules)
            found.append((child.depth, part.name, decision))
            if decision.unpack == "mime":
                walk(child, part.data)

    walk(root, outer)

    assert [(depth, name) for depth, name, _ in found] == [
        (1, "middle.eml"),
        (2, "inner.eml"),
        (3, "report.pdf"),
    ]
    assert all(decision.decision == KEPT for _, _, decision in found)
    assert found[-1][2].reason == "type pdf allowed"


def test_depth_limit_stops_the_descent() -> None:
    innermost = samples.message(attachments=[("report.pdf", "application/pdf", samples.pdf())])
    middle = samples.message(attached_messages=[("inner.eml", innermost)])
    parent = Candidate("middle.eml", "message/rfc822", len(middle), depth=1)
    rules = Rules(max_depth=1)

    part = read_mime(middle).attachments[0]
    child = parent.child_part(part)
    decision = decide(replace(child, detected=detect_type(part.data, part.name)), rules)

    assert decision.decision == SKIPPED
    assert decision.reason == "nested 2 levels deep, limit is 1"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            "Content-Type: text/csv\r\n"
            "Content-Disposition: attachment; filename*=UTF-8''%E2%82%AC%20rates.csv",
            "€ rates.csv",
        ),
        (
            'Content-Type: text/csv\r\nContent-Disposition: attachment; filename="=?UTF-8?B?'
            + base64.b64encode("Übersicht.csv".encode()).decode()
            + '?="',
            "Übersicht.csv",
        ),
        (
            "Content-Type: text/csv\r\nContent-Disposition: attachment; filename==?utf-8?Q?"
            "r=C3=A9sum=C3=A9.csv?=",
            "résumé.csv",
        ),
        (
            "Content-Type: text/csv\r\nContent-Disposition: attachment;\r\n"
            " filename*0*=UTF-8''%E6%97%A5%E6%9C%AC;\r\n filename*1*=%E8%AA%9E.csv",
            "日本語.csv",
        ),
        (
            "Content-Type: text/plain; name=This is a test.txt\r\n"
            "Content-Disposition: attachment; filename=This is a test.txt",
            "This is a test.txt",
        ),
        ('Content-Type: text/csv; name="only-in-type.csv"', "only-in-type.csv"),
        ("Content-Type: image/jpeg\r\nContent-Location: http://x.example/a/Photo25.jpg", None),
    ],
)
def test_attachment_names_are_decoded(headers: str, expected: str | None) -> None:
    message = read_mime(raw_message(headers, b"a,b\r\n1,2"))

    names = [part.name for part in message.attachments]

    if expected is None:
        assert names == ["Photo25.jpg"]
    else:
        assert names == [expected]


def test_raw_utf8_bytes_in_a_name_are_decoded() -> None:
    data = raw_message("Content-Type: text/csv", b"x").replace(
        b"Content-Type: text/csv\r\n",
        b"Content-Type: text/csv\r\n"
        b'Content-Disposition: attachment; filename="\xe7\xae\xa1.csv"\r\n',
    )

    assert read_mime(data).attachments[0].name == "管.csv"


def test_cid_references_are_extracted_from_html() -> None:
    html = (
        "<img src=\"cid:logo@corp.example\"><img SRC='CID:Chart_1'>"
        '<td style="background:url(cid:bg%201)"><a href="cid:a&amp;b">x</a>'
        '<img src="https://example.com/x.png">'
    )

    assert cid_references(html) == {"logo@corp.example", "chart_1", "bg 1", "a&b"}
    assert cid_references(None) == frozenset()
    assert normalise_content_id(" <Logo@Corp.Example> ") == "logo@corp.example"


def test_images_in_the_html_body_are_inline_and_referenced() -> None:
    data = samples.message(
        html='<p>Hi</p><img src="cid:logo1">',
        inline=[("logo.png", "image/png", samples.png(), "logo1")],
        attachments=[("photo.png", "image/png", samples.png(color=(1, 2, 3)))],
    )

    message = read_mime(data)

    by_name = {part.name: part for part in message.attachments}
    assert by_name["logo.png"].is_inline
    assert message.is_cid_referenced(by_name["logo.png"])
    assert not by_name["photo.png"].is_inline
    assert not message.is_cid_referenced(by_name["photo.png"])
    assert message.html_body is not None and "cid:logo1" in message.html_body


def test_external_bodies_are_references_and_fragments_are_unreadable() -> None:
    external = raw_message(
        'Content-Type: message/external-body; access-type=URL; URL="http://x.example/f"',
        b"Content-Type: application/pdf\r\n",
    )
    partial = raw_message('Content-Type: message/partial; id="abc"; number=1; total=2', b"x")

    reference = read_mime(external).attachments[0]
    fragment = read_mime(partial).attachments[0]

    assert reference.kind == "reference"
    assert fragment.problem == "message fragment (message/partial), not reassembled"
    assert decide(Candidate(None, reference.content_type, 0, kind=reference.kind), Rules()).reason
    assert decide(Candidate(None, None, 1, problem=fragment.problem), Rules()).decision == SKIPPED


def test_base64_encoded_attached_message_is_decoded() -> None:
    inner = samples.message(subject="inner", attachments=[("a.csv", "text/csv", samples.CSV)])
    encoded = base64.encodebytes(inner)
    data = raw_message("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64", encoded)

    attached = read_mime(data).attachments[0]

    assert read_mime(attached.data).subject == "inner"
    assert read_mime(attached.data).attachments[0].data == samples.CSV


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(range(256)) * 64,
        b"Content-Type: multipart/mixed\r\n\r\n--x\r\nno boundary given\r\n",
        raw_message("Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64", b"!!"),
        raw_message("Content-Type: application/pdf\r\nContent-Transfer-Encoding: x-9", b"AAAA"),
        b"Content-Type: multipart/mixed; boundary=a\r\n\r\n" + b"--a\r\n" * 5000,
        b"Subject: =?utf-8?B?broken\r\nFrom: <<<@@@>>>\r\n\r\nbody",
    ],
)
def test_garbage_never_raises(data: bytes) -> None:
    message = read_mime(data)

    assert isinstance(message.attachments, tuple)
    assert isinstance(message.problems, tuple)


def test_deeply_nested_multiparts_are_cut_off_with_a_problem() -> None:
    depth = 60
    opening = b"".join(
        f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode()
        for level in range(depth)
    )
    data = opening + b"Content-Type: text/csv; name=a.csv\r\n\r\n1,2\r\n"

    message = read_mime(data)

    assert any("nested" in problem for problem in message.problems)


def test_unknown_transfer_encoding_is_a_problem_and_keeps_the_bytes() -> None:
    data = raw_message(
        "Content-Type: application/zip; name=a.zip\r\nContent-Transfer-Encoding: base9000",
        b"UEsDBA==",
    )

    message = read_mime(data)

    assert message.attachments[0].data.strip() == b"UEsDBA=="
    assert message.problems == ("a.zip: unknown transfer encoding, kept as is",)


def judge_all(data: bytes, rules: Rules) -> list[tuple[int, Decision]]:
    """Every attachment of a message, judged and unpacked the way the pipeline does."""
    verdicts: list[tuple[int, Decision]] = []

    def judge(parent: Candidate, name: str | None, content_type: str | None, body: bytes,
              child: Candidate) -> None:  # fmt: skip
        detected = detect_type(body, name, content_type)
        decision = decide(replace(child, detected=detected, size=len(body)), rules)
        verdicts.append((child.depth, decision))
        if decision.unpack == "mime":
            read(child, body)
        elif decision.unpack == "tnef":
            for part in read_tnef(body).attachments:
                judge(child, part.name, part.content_type, part.data, child.child_part(part))
        elif decision.unpack == "zip":
            try:
                for member in iter_zip_members(io.BytesIO(body), rules.archives):
                    inner = child.child(
                        member.name, None, member.size, "zip_member", problem=member.problem
                    )
                    content = b"" if member.problem else b"".join(member.chunks())
                    judge(child, member.name, None, content, inner)
            except ArchiveError:
                verdicts.append((child.depth + 1, Decision("quarantined", "damaged", None)))

    def read(parent: Candidate, body: bytes) -> None:
        message = read_mime(body)
        for part in message.attachments:
            child = parent.child_part(part, cid_referenced=message.is_cid_referenced(part))
            judge(parent, part.name, part.content_type, part.data, child)

    read(Candidate(None, "message/rfc822", len(data), depth=-1), data)
    return verdicts


def test_every_corpus_message_is_read_and_every_attachment_judged() -> None:
    files = sorted(CORPUS.glob("*.eml"))
    rules = Rules()

    found = {path.name: judge_all(path.read_bytes(), rules) for path in files}

    assert len(files) == 119
    verdicts = [verdict for file_verdicts in found.values() for verdict in file_verdicts]
    decisions = Counter(decision.decision for _, decision in verdicts)
    top_level = sum(1 for depth, _ in verdicts if depth == 0)
    print(f"corpus: {top_level} attachments, {len(verdicts)} with nested ones: {decisions}")
    assert set(decisions) <= set(DECISIONS)
    assert all(decision.reason for _, decision in verdicts)
    assert top_level >= 190
    assert len(found["rspamd__gargantua.eml"]) >= 58
    assert sum(1 for depth, _ in found["postalmime__mimetorture.eml"] if depth >= 1) >= 5
    assert any(d.unpack == "tnef" for _, d in found["mimekit__rich-text.eml"])
    assert any(depth == 1 for depth, _ in found["mimekit__rich-text.eml"])


def test_corpus_names_are_decoded() -> None:
    def names(file: str) -> list[str | None]:
        return [part.name for part in read_mime((CORPUS / file).read_bytes()).attachments]

    assert names("mailgem__attachment_with_base64_encoded_name.eml") == ["This is a test.pdf"]
    assert names("mailgem__attachment_with_unquoted_name.eml") == ["This is a test.txt"]
    assert names("mailgem__attachment_nonascii_filename.eml") == ["ciële.txt"]
    assert names("mailgem__japanese_attachment_long_name.eml") == [
        "かきくけこかきくけこかきくけこかきくけこかきくけこ.txt"
    ]
    assert names("mailgem__attachment_content_location.eml") == ["Photo25.jpg"]
    assert names("phpmmp__m0124.eml") == ["1234/../../1234.txt"]
