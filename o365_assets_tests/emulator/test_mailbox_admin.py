"""The admin API and its Python client: mail added, changed, moved and removed while the
emulator runs shows up through Graph, and the API refuses callers without the key."""

import base64
import hashlib
from collections.abc import Iterator

import pytest
import requests

from o365_assets.emulator import EmulatorConfig, MailboxSettings, ThreadedEmulator
from o365_assets.emulator.control import EmulatorControl, EmulatorControlError
from o365_assets_tests.emulator.graph_client import Graph, assert_graph_error, delegated_token

IMMUTABLE = 'IdType="ImmutableId"'


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedEmulator]:
    """One emulator for the module: each test adds and changes only its own messages."""
    mail = MailboxSettings(messages=4, large_attachment_bytes=0)
    config = EmulatorConfig(state_dir=tmp_path_factory.mktemp("admin"), mail=mail)
    with ThreadedEmulator(config) as emulator:
        yield emulator


@pytest.fixture
def control(emu: ThreadedEmulator) -> Iterator[EmulatorControl]:
    with EmulatorControl(emu.info) as client:
        yield client


@pytest.fixture
def graph(emu: ThreadedEmulator) -> Iterator[Graph]:
    with Graph(emu) as client:
        yield client


def test_admin_needs_the_key(emu: ThreadedEmulator) -> None:
    url = f"{emu.info['base_url']}/_emulator/stats"
    with requests.Session() as session:
        session.trust_env = False
        session.verify = emu.info["ca_path"]
        assert_graph_error(session.get(url, timeout=30), 401)
        wrong = session.get(url, headers={"X-Emulator-Admin": "guess"}, timeout=30)
        assert_graph_error(wrong, 401)
        right = {"X-Emulator-Admin": emu.info["admin_key"]}
        assert session.get(url, headers=right, timeout=30).status_code == 200
        missing = session.get(f"{emu.info['base_url']}/_emulator/nothing", headers=right)
        assert_graph_error(missing, 404)


def test_added_message_with_every_kind_of_attachment(
    control: EmulatorControl, graph: Graph, emu: ThreadedEmulator
) -> None:
    data = b"region,amount\nNorth,12\n"
    inner = b"From: a@example.com\r\nSubject: inner\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    added = control.add_message(
        subject="Quarterly pack",
        sender="Pat Doe <pat@fabrikam.example>",
        body="<p>see attached</p><img src='cid:pic@x'>",
        attachments=[
            EmulatorControl.file("q.csv", data, "text/csv"),
            EmulatorControl.file(
                "pic.png", b"\x89PNG...", "image/png", is_inline=True, content_id="pic@x"
            ),
            EmulatorControl.generated("xlsx", name="pack.xlsx"),
            EmulatorControl.generated("large", name="big.csv", size=400_000),
            EmulatorControl.reference("Plan.docx", "https://contoso.sharepoint.com/plan.docx"),
            EmulatorControl.item(inner, name="inner.eml"),
        ],
    )
    by_name = {record["name"]: record for record in added["attachments"]}
    assert by_name["q.csv"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert by_name["pic.png"]["is_inline"] is True
    assert by_name["pack.xlsx"]["expected_type"] == "xlsx"
    assert by_name["big.csv"]["size"] == 400_000
    assert by_name["Plan.docx"]["kind"] == "reference"
    assert by_name["inner.eml"]["kind"] == "item"
    assert {r["attachment_id"] for r in control.records()} >= {
        r["attachment_id"] for r in added["attachments"]
    }

    message = graph.get(f"{graph.mailbox}/messages/{added['id']}", prefer=IMMUTABLE).json()
    assert message["subject"] == "Quarterly pack"
    assert message["from"]["emailAddress"] == {"name": "Pat Doe", "address": "pat@fabrikam.example"}
    for name in ("q.csv", "pack.xlsx", "big.csv", "inner.eml"):
        record = by_name[name]
        path = f"{graph.mailbox}/messages/{added['id']}/attachments/{record['attachment_id']}"
        assert graph.sha256_of_value(f"{path}/$value") == record["sha256"], name


def test_update_changes_the_change_key_and_fields(control: EmulatorControl, graph: Graph) -> None:
    added = control.add_message(subject="before")
    first = graph.get(f"{graph.mailbox}/messages/{added['id']}").json()
    control.update_message(added["id"], subject="after", is_read=True, categories=["Red"])
    second = graph.get(f"{graph.mailbox}/messages/{added['id']}").json()
    assert (second["subject"], second["isRead"], second["categories"]) == ("after", True, ["Red"])
    assert second["changeKey"] != first["changeKey"]


def test_remove_and_move(control: EmulatorControl, graph: Graph) -> None:
    gone = control.add_message(subject="short-lived")
    control.remove_message(gone["id"])
    assert_graph_error(graph.get(f"{graph.mailbox}/messages/{gone['id']}"), 404)
    with pytest.raises(EmulatorControlError, match="404"):
        control.remove_message(gone["id"])

    moving = control.add_message(subject="moving")
    moved = control.move_message(moving["id"], "archive")
    assert moved["folder"] == "archive"
    assert moved["rest_id"] != moving["rest_id"]
    archive = graph.get(f"{graph.mailbox}/mailFolders/archive/messages", prefer=IMMUTABLE)
    assert moving["id"] in {m["id"] for m in archive.json()["value"]}
    with pytest.raises(EmulatorControlError, match="404"):
        control.move_message(moving["id"], "nowhere")


def test_bad_admin_input_is_a_400(control: EmulatorControl) -> None:
    with pytest.raises(EmulatorControlError, match="400"):
        control.add_message(attachments=[{"name": "x.bin"}])
    with pytest.raises(EmulatorControlError, match="400"):
        control.add_message(attachments=[{"content_base64": "%%%not base64"}])
    with pytest.raises(EmulatorControlError, match="400"):
        control.add_message(sender="")
    with pytest.raises(EmulatorControlError, match="404"):
        control.add_message(folder="nowhere")
    with pytest.raises(EmulatorControlError, match="400"):
        control.add_message(attachments=[{"generate": "mp3"}])


def test_mail_for_a_users_own_mailbox(control: EmulatorControl, emu: ThreadedEmulator) -> None:
    control.add_message(mailbox=emu.info["user"], subject="for megan")
    with Graph(emu, token=delegated_token(emu, "Mail.Read User.Read")) as mine:
        subjects = [m["subject"] for m in mine.get("/me/messages").json()["value"]]
    assert subjects == ["for megan"]
    own = control.records(mailbox=emu.info["user"])
    assert own == []


def test_stats_count_messages_and_requests(control: EmulatorControl, graph: Graph) -> None:
    before = control.stats()
    graph.get(f"{graph.mailbox}/messages")
    control.add_message(subject="one more")
    after = control.stats()
    mailbox = graph.info["mailbox"]
    assert after["messages"][mailbox] == before["messages"][mailbox] + 1
    assert after["totals"]["requests"] == before["totals"].get("requests", 0) + 1
    assert after["change_sequence"] > before["change_sequence"]


def test_raw_eml_with_base64_parts(control: EmulatorControl) -> None:
    payload = base64.b64encode(b"a,b\r\n1,2\r\n").decode()
    raw = (
        "From: Robot <robot@example.com>\r\nSubject: export\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
        "Content-Type: text/plain\r\n\r\nsee file\r\n--b1\r\n"
        'Content-Type: text/csv; name="e.csv"\r\nContent-Transfer-Encoding: base64\r\n'
        'Content-Disposition: attachment; filename="e.csv"\r\n\r\n'
        f"{payload}\r\n--b1--\r\n"
    ).encode()
    added = control.add_message(eml=raw)
    assert [(r["name"], r["size"]) for r in added["attachments"]] == [("e.csv", 10)]
