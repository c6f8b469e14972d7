"""Seeding a mailbox from .eml files: every real-world file of the shared corpus becomes a
message, broken ones included, and Graph serves their attachments byte for byte."""

import datetime
import email
import hashlib
from collections.abc import Callable, Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest

from o365_assets.emulator import EmulatorConfig, ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl
from o365_assets.emulator.eml_seed import message_from_mime
from o365_assets_tests.emulator.graph_client import Graph

NOW = datetime.datetime(2026, 3, 10, tzinfo=datetime.UTC)


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, corpus_eml: Path
) -> Iterator[ThreadedEmulator]:
    config = EmulatorConfig.model_validate(
        {
            "state_dir": tmp_path_factory.mktemp("eml-emulator"),
            "mail": {"messages": 0, "eml_dir": str(corpus_eml)},
        }
    )
    with ThreadedEmulator(config) as emu:
        yield emu


@pytest.fixture(scope="module")
def graph(seeded: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(seeded) as client:
        yield client


@pytest.fixture(scope="module")
def records(seeded: ThreadedEmulator) -> list[dict[str, Any]]:
    with EmulatorControl(seeded.info) as control:
        return control.records()


def test_every_corpus_file_becomes_a_message(
    graph: Graph, corpus_eml: Path, seeded: ThreadedEmulator
) -> None:
    files = sorted(path.name for path in corpus_eml.glob("*.eml"))
    assert len(files) == 119
    messages = graph.all_pages(
        f"{graph.mailbox}/mailFolders/inbox/messages",
        params={"$top": "50", "$select": "subject,receivedDateTime,hasAttachments"},
    )
    assert len(messages) == len(files)
    mailbox = seeded.state.mail.mailbox(seeded.info["mailbox"])
    assert sorted(m.source for m in mailbox.messages.values()) == [f"eml:{name}" for name in files]


def test_every_attachment_is_served_as_recorded(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    top_level = [r for r in records if r["depth"] == 0]
    assert len(top_level) > 150
    for record in top_level:
        path = (
            f"{graph.mailbox}/messages/{record['message_id']}/attachments/"
            f"{record['attachment_id']}/$value"
        )
        assert graph.sha256_of_value(path) == record["sha256"], record["source"]


def test_problems_are_logged_not_fatal(seeded: ThreadedEmulator) -> None:
    with EmulatorControl(seeded.info) as control:
        problems = control.seed_problems()
    assert problems
    assert all(problem["source"].endswith(".eml") and problem["problem"] for problem in problems)


def _for(records: list[dict[str, Any]], source: str) -> list[dict[str, Any]]:
    return [r for r in records if r["source"] == f"eml:{source}"]


def test_known_files_map_as_exchange_would(records: list[dict[str, Any]]) -> None:
    enclosed = _for(records, "flanker__enclosed.eml")
    assert [(r["kind"], r["name"]) for r in enclosed if r["depth"] == 0] == [("item", "thanks.eml")]

    inline = _for(records, "enmime__html-mime-inline.eml")
    assert [(r["name"], r["is_inline"]) for r in inline] == [("favicon.png", True)]
    assert inline[0]["content_id"]

    traversal = _for(records, "phpmmp__m0124.eml")
    assert [r["name"] for r in traversal] == ["1234/../../1234.txt"]

    japanese = _for(records, "mailgem__japanese_attachment.eml")
    assert [r["name"] for r in japanese] == ["てすと.txt"]

    nested = _for(records, "mailgem__attachment_message_rfc822_inline_image.eml")
    assert {r["kind"] for r in nested} == {"file", "item"}


def test_item_attachment_value_parses_as_a_message(
    graph: Graph, records: list[dict[str, Any]]
) -> None:
    item = next(
        r for r in _for(records, "flanker__enclosed.eml") if r["kind"] == "item" and not r["depth"]
    )
    path = f"{graph.mailbox}/messages/{item['message_id']}/attachments/{item['attachment_id']}"
    mime = graph.get(f"{path}/$value").content
    parsed = email.message_from_bytes(mime, policy=policy.default)
    assert parsed["Subject"]
    assert hashlib.sha256(mime).hexdigest() == item["sha256"]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe garbage \x80\x81",
        b"Subject: =?utf-8?b?broken\r\n\r\nbody",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--",
        b"From: <>\r\nDate: not a date\r\nContent-Type: message/rfc822\r\n\r\n",
        b"Content-Type: text/plain; charset=nonexistent\r\n\r\n\xe9t\xe9",
    ],
)
def test_unreadable_bytes_still_make_a_message(raw: bytes) -> None:
    problems: list[str] = []
    message = message_from_mime(raw, b"k" * 24, NOW, "test", problems)
    assert message.received == NOW
    assert message.mime == raw


def test_added_eml_goes_through_the_same_reader(
    make_emulator: Callable[..., ThreadedEmulator], corpus_eml: Path
) -> None:
    emu = make_emulator(mail={"messages": 0, "large_attachment_bytes": 0})
    raw = (corpus_eml / "cpython__msg_07.eml").read_bytes()
    with EmulatorControl(emu.info) as control:
        added = control.add_message(eml=raw)
    assert [a["name"] for a in added["attachments"]] == ["dingusfish.gif"]
    with Graph(emu) as graph:
        message = graph.get(f"{graph.mailbox}/messages/{added['id']}").json()
    assert message["subject"] == "Here is your dingus fish"
    assert message["hasAttachments"] is True
