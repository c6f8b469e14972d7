import hashlib
import os
import subprocess
import sys
import threading
import time
import unicodedata
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import duckdb
import pytest

from o365_assets.store.files import (
    MAX_NAME_BYTES,
    TEMP_DIR,
    FileStore,
    SizeMismatchError,
    StoreError,
    TooLargeError,
    UnsafePathError,
    safe_name,
)
from o365_assets.store.schema import ensure_schema

REPOSITORY = Path(__file__).resolve().parents[2]
DAY = date(2026, 12, 1)

HOSTILE_NAMES = [
    "../../x",
    "..\\..\\x",
    "/etc/passwd",
    "C:\\Windows\\system32\\drivers\\etc\\hosts",
    "CON.txt",
    "nul",
    "Com1.tar.gz",
    "LPT9",
    "CON .txt",
    "aux.",
    "é" * 150 + ".xlsx",
    "漢" * 120,
    "invoice\u202egpj.exe",
    "a\x00b.pdf",
    "",
    ".",
    "..",
    "....",
    " . . ",
    "report. ",
    ".hidden",
    'a<b>c:d|e?f*g".pdf',
    "line\nbreak\r\tand\x7fdel.csv",
    "zero\u200bwidth\u2028sep.csv",
    "bad\udcffsurrogate.csv",
    "e\u0301t\u0301e\u0301.csv",
]


def chunks_of(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def files_under(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("../../x", "x"),
        ("..\\..\\x", "x"),
        ("reports/2026/q1.xlsx", "q1.xlsx"),
        ("CON.txt", "_CON.txt"),
        ("nul", "_nul"),
        ("Com1.tar.gz", "_Com1.tar.gz"),
        ("CON .txt", "_CON .txt"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("a\x00b.pdf", "ab.pdf"),
        ("", "attachment"),
        (None, "attachment"),
        ("....", "attachment"),
        ("..", "attachment"),
        ("report. ", "report"),
        (".hidden", "hidden"),
        ('a<b>c:d|e?f*g".pdf', "a_b_c_d_e_f_g_.pdf"),
        ("e\u0301te\u0301.csv", "\u00e9t\u00e9.csv"),
        ("two   spaces\tand tab.csv", "two spaces and tab.csv"),
    ],
)
def test_safe_names(name: str | None, expected: str) -> None:
    assert safe_name(name) == expected


def test_long_multibyte_names_are_cut_to_255_bytes_keeping_the_extension() -> None:
    name = "é" * 150 + ".xlsx"

    safe = safe_name(name)

    assert len(name.encode()) == 305
    assert len(safe.encode()) <= MAX_NAME_BYTES
    assert safe.endswith(".xlsx")
    assert safe.startswith("é" * 100)
    assert unicodedata.is_normalized("NFC", safe)


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_every_hostile_name_becomes_a_file_inside_the_store(tmp_path: Path, name: str) -> None:
    store = FileStore(tmp_path / "store")

    path = store.commit(store.receive([b"data"]), DAY, name, key="k")

    leaf = path.rsplit("/", 1)[1]
    assert path.startswith("2026/12/01/")
    assert len(leaf.encode("utf-8")) <= MAX_NAME_BYTES
    assert not any(unicodedata.category(char) in {"Cc", "Cf", "Cs"} for char in leaf)
    assert not any(char in '<>:"/\\|?*' for char in leaf)
    assert leaf == leaf.strip(" .")
    assert leaf.split(".")[0].rstrip().upper() not in {"CON", "PRN", "AUX", "NUL", "COM1", "LPT9"}
    assert (tmp_path / "store" / path).read_bytes() == b"data"
    assert files_under(tmp_path) == [f"store/{path}"]


def test_received_bytes_are_hashed_and_committed_by_date(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    data = os.urandom(250_000)

    received = store.receive(chunks_of(data), expected_size=len(data))
    path = store.commit(received, DAY, "Q1 report.pdf", key="AAMk-1")

    assert received.sha256 == hashlib.sha256(data).hexdigest()
    assert received.size == len(data)
    assert path == "2026/12/01/Q1 report.pdf"
    assert (tmp_path / path).read_bytes() == data
    assert files_under(tmp_path) == [path]
    with store.open(path) as stream:
        assert stream.read() == data
    assert store.local_path(path) == tmp_path.resolve() / path


def test_two_different_files_with_one_name_get_distinct_deterministic_names(
    tmp_path: Path,
) -> None:
    def store_both(root: Path) -> list[str]:
        store = FileStore(root)
        return [
            store.commit(store.receive([content]), DAY, "report.pdf", key=key)
            for key, content in (("att-1", b"first"), ("att-2", b"second"))
        ]

    first_run = store_both(tmp_path / "one")
    second_run = store_both(tmp_path / "two")

    suffix = hashlib.sha256(b"att-2").hexdigest()[:8]
    assert first_run == ["2026/12/01/report.pdf", f"2026/12/01/report~{suffix}.pdf"]
    assert second_run == first_run
    assert (tmp_path / "one" / first_run[1]).read_bytes() == b"second"


def test_a_retry_stores_nothing_twice(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    first = store.commit(store.receive([b"same bytes"]), DAY, "report.pdf", key="att-1")
    other = store.commit(store.receive([b"other bytes"]), DAY, "report.pdf", key="att-2")

    again = store.commit(store.receive([b"same bytes"]), DAY, "report.pdf", key="att-1")
    other_again = store.commit(store.receive([b"other bytes"]), DAY, "report.pdf", key="att-2")

    assert (again, other_again) == (first, other)
    assert files_under(tmp_path) == sorted([first, other])


def test_identical_content_in_two_messages_is_stored_once(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "attachments")
    con = duckdb.connect(str(tmp_path / "o365.duckdb"))
    ensure_schema(con)
    content = os.urandom(50_000)

    def store_attachment(message_id: str, attachment_id: str, name: str, day: date) -> str:
        received = store.receive(chunks_of(content), expected_size=len(content))
        row = con.execute(
            "SELECT path FROM mail.attachments WHERE sha256 = ? AND path IS NOT NULL LIMIT 1",
            [received.sha256],
        ).fetchone()
        if row is not None and store.verify(row[0], received.sha256):
            store.discard(received)
            path = str(row[0])
        else:
            path = store.commit(received, day, name, key=attachment_id)
        con.execute(
            "INSERT INTO mail.attachments (message_id, attachment_id, name, kind, decision,"
            " sha256, path, received_date, decided_at)"
            " VALUES (?, ?, ?, 'file', 'kept', ?, ?, ?, now())",
            [message_id, attachment_id, name, received.sha256, path, day],
        )
        return path

    first = store_attachment("m1", "a1", "prices.xlsx", DAY)
    second = store_attachment("m2", "a2", "prices (1).xlsx", date(2026, 12, 2))

    assert first == second == "2026/12/01/prices.xlsx"
    assert files_under(tmp_path / "attachments") == [first]
    rows = con.execute("SELECT count(*) FROM mail.attachments WHERE path = ?", [first]).fetchone()
    assert rows == (2,)


def test_a_short_body_leaves_no_temporary_and_no_final_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path)

    with pytest.raises(SizeMismatchError, match="body is 900 bytes, expected 1000"):
        store.receive(chunks_of(b"x" * 900, 100), expected_size=1000)

    assert files_under(tmp_path) == []
    assert list((tmp_path / TEMP_DIR).iterdir()) == []


def test_a_long_body_is_refused_as_soon_as_it_overflows(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    pulled = []

    def endless() -> Iterator[bytes]:
        while True:
            pulled.append(1)
            yield b"y" * 100

    with pytest.raises(SizeMismatchError, match="longer than the expected 1000 bytes"):
        store.receive(endless(), expected_size=1000)
    with pytest.raises(TooLargeError):
        store.receive(endless(), max_size=550)

    assert len(pulled) == 11 + 6
    assert files_under(tmp_path) == []


def test_a_failing_download_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path)

    def broken() -> Iterator[bytes]:
        yield b"partial"
        raise ConnectionError("connection reset")

    with pytest.raises(ConnectionError):
        store.receive(broken())

    assert files_under(tmp_path) == []


def test_verify_finds_missing_and_corrupt_files_and_restore_repairs_them(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    data = b"the real content"
    sha = hashlib.sha256(data).hexdigest()
    path = store.commit(store.receive([data]), DAY, "a.csv", key="a")

    assert store.verify(path, sha)
    (tmp_path / path).write_bytes(b"the real conten")
    assert not store.verify(path, sha)
    store.restore(store.receive([data]), path, sha)
    assert store.verify(path, sha)

    (tmp_path / path).unlink()
    assert not store.verify(path, sha)
    assert not store.exists(path)
    store.restore(store.receive([data]), path, sha)
    assert store.verify(path, sha)
    assert files_under(tmp_path) == [path]


def test_restore_refuses_other_content(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    path = store.commit(store.receive([b"right"]), DAY, "a.csv", key="a")

    with pytest.raises(StoreError, match="does not match"):
        store.restore(store.receive([b"wrong"]), path, hashlib.sha256(b"right").hexdigest())

    assert (tmp_path / path).read_bytes() == b"right"
    assert files_under(tmp_path) == [path]


@pytest.mark.parametrize(
    "path",
    ["../outside", "/etc/passwd", "2026/../../outside", "C:/x", "a\\b", "", "a//b", "a/./b"],
)
def test_paths_that_could_escape_are_refused(tmp_path: Path, path: str) -> None:
    store = FileStore(tmp_path / "store")

    with pytest.raises(UnsafePathError):
        store.verify(path, "0" * 64)
    with pytest.raises(UnsafePathError):
        store.open(path)


def test_a_symbolic_link_inside_the_store_cannot_lead_writes_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "store"
    store = FileStore(root)
    (root / "2026").symlink_to(outside, target_is_directory=True)

    with pytest.raises(UnsafePathError):
        store.commit(store.receive([b"x"]), DAY, "a.csv", key="a")

    assert list(outside.rglob("*")) == []


def test_concurrent_writers_of_one_name_never_overwrite_each_other(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    barrier = threading.Barrier(8)
    paths: dict[int, str] = {}

    def write(index: int) -> None:
        received = store.receive([f"content {index}".encode()])
        barrier.wait()
        paths[index] = store.commit(received, DAY, "report.pdf", key=f"att-{index}")

    threads = [threading.Thread(target=write, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(paths.values())) == 8
    for index, path in paths.items():
        assert (tmp_path / path).read_bytes() == f"content {index}".encode()


WRITER = """
import os, sys
from o365_assets.store.files import FileStore

store = FileStore(sys.argv[1])

def chunks():
    yield b"x" * 1000
    if sys.argv[2] == "die":
        os._exit(3)
    print("ready", flush=True)
    sys.stdin.readline()
    yield b"y"

store.receive(chunks())
"""


def test_sweep_removes_temporaries_of_dead_writers_only(tmp_path: Path) -> None:
    environment = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    command = [sys.executable, "-c", WRITER, str(tmp_path)]
    dead = subprocess.run([*command, "die"], env=environment, check=False, timeout=60)
    live = subprocess.Popen(
        [*command, "wait"], env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert live.stdout is not None and live.stdout.readline() == b"ready\n"
        temps = {path.name.split("@")[0]: path for path in (tmp_path / TEMP_DIR).iterdir()}
        assert dead.returncode == 3
        assert set(temps) == {str(dead_pid(temps, live.pid)), str(live.pid)}

        removed = FileStore(tmp_path).sweep_temps()

        assert removed == 1
        assert [path.name for path in (tmp_path / TEMP_DIR).iterdir()] == [
            temps[str(live.pid)].name
        ]
    finally:
        live.communicate(b"\n", timeout=60)

    assert FileStore(tmp_path).sweep_temps() == 1
    assert list((tmp_path / TEMP_DIR).iterdir()) == []


def dead_pid(temps: dict[str, Path], live_pid: int) -> int:
    (pid,) = [int(pid) for pid in temps if int(pid) != live_pid]
    return pid


def test_sweep_removes_foreign_temporaries_by_age(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    old = tmp_path / TEMP_DIR / "123@other-host.0011aabb.part"
    recent = tmp_path / TEMP_DIR / "456@other-host.ccdd0011.part"
    for path in (old, recent):
        path.write_bytes(b"partial")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))

    assert store.sweep_temps() == 1
    assert [path.name for path in (tmp_path / TEMP_DIR).iterdir()] == [recent.name]


def test_a_remote_store_needs_no_change_in_callers() -> None:
    root = f"memory://o365-test-{uuid.uuid4().hex}/attachments"
    store = FileStore(root)
    data = b"remote bytes"

    path = store.commit(store.receive([data], expected_size=len(data)), DAY, "../a.csv", key="k")
    duplicate = store.commit(store.receive([b"other"]), DAY, "a.csv", key="k2")

    assert path == "2026/12/01/a.csv"
    assert duplicate.startswith("2026/12/01/a~")
    assert store.verify(path, hashlib.sha256(data).hexdigest())
    with store.open(path) as stream:
        assert stream.read() == data
    with pytest.raises(StoreError):
        store.local_path(path)


def test_durable_writes_sync_to_disk(tmp_path: Path) -> None:
    store = FileStore(tmp_path, fsync=True)

    path = store.commit(store.receive([b"durable"]), DAY, "a.csv", key="k")

    assert (tmp_path / path).read_bytes() == b"durable"
