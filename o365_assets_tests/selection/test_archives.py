import io
import struct
import zipfile
from datetime import date
from pathlib import Path

import pytest

from o365_assets.selection.archives import ArchiveError, ArchiveLimitExceeded, iter_zip_members
from o365_assets.selection.mime import read_mime
from o365_assets.selection.rules import ArchiveLimits
from o365_assets.store.files import FileStore
from o365_assets_tests.selection import samples
from o365_assets_tests.selection.test_mime import CORPUS

HOSTILE = ["../../evil.csv", "..\\..\\evil2.csv", "/etc/cron.d/evil3.csv", "C:\\Windows\\evil4.csv"]


def test_members_are_streamed_with_their_sizes() -> None:
    data = samples.zip_of({"reports/a.csv": samples.CSV, "b.pdf": samples.pdf(), "empty/": b""})

    members = [
        (member.path, member.name, member.size, b"".join(member.chunks(chunk_size=7)))
        for member in iter_zip_members(io.BytesIO(data), ArchiveLimits())
    ]

    assert [(path, name, size) for path, name, size, _ in members] == [
        ("reports/a.csv", "a.csv", len(samples.CSV)),
        ("b.pdf", "b.pdf", len(samples.pdf())),
    ]
    assert members[0][3] == samples.CSV


def test_hostile_member_names_land_inside_the_store(tmp_path: Path) -> None:
    data = samples.zip_of({name: samples.CSV for name in HOSTILE})
    store = FileStore(tmp_path / "attachments")

    paths = []
    for index, member in enumerate(iter_zip_members(io.BytesIO(data), ArchiveLimits())):
        received = store.receive(member.chunks())
        paths.append(store.commit(received, date(2026, 12, 1), member.name, key=str(index)))

    assert paths == [
        "2026/12/01/evil.csv",
        "2026/12/01/evil2.csv",
        "2026/12/01/evil3.csv",
        "2026/12/01/evil4.csv",
    ]
    written = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p) for p in written] == [f"attachments/{path}" for path in paths]


def test_too_many_members_or_bytes_stop_before_anything_is_read() -> None:
    data = samples.zip_of({f"{index}.csv": samples.CSV for index in range(5)})

    with pytest.raises(ArchiveLimitExceeded, match="5 members, limit is 4"):
        next(iter_zip_members(io.BytesIO(data), ArchiveLimits(max_members=4)))
    with pytest.raises(ArchiveLimitExceeded, match="total size limit"):
        next(iter_zip_members(io.BytesIO(data), ArchiveLimits(max_total_size=100)))


def test_a_member_that_lies_about_its_size_is_an_error() -> None:
    data = bytearray(samples.zip_of({"zeros.bin": b"\x00" * 100_000}))
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 1_000)
    struct.pack_into("<I", data, 22, 1_000)

    with pytest.raises(ArchiveError):
        for member in iter_zip_members(io.BytesIO(bytes(data)), ArchiveLimits()):
            b"".join(member.chunks())


def test_members_cannot_be_read_after_the_iteration_moved_on() -> None:
    (member,) = iter_zip_members(io.BytesIO(samples.zip_of({"a.csv": b"1"})), ArchiveLimits())

    with pytest.raises(RuntimeError, match="while iter_zip_members is on it"):
        next(member.chunks())


def test_encrypted_members_and_links_carry_a_problem() -> None:
    message = read_mime((CORPUS / "tika__testRFC822_encrypted_zip.eml").read_bytes())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        link = zipfile.ZipInfo("link.csv")
        link.external_attr = 0o120777 << 16
        archive.writestr(link, "/etc/passwd")

    (encrypted, *_) = iter_zip_members(io.BytesIO(message.attachments[0].data), ArchiveLimits())
    (symlink,) = iter_zip_members(buffer, ArchiveLimits())

    assert encrypted.problem == "encrypted zip member, cannot be read"
    assert symlink.problem == "symbolic link in a zip, not followed"
    with pytest.raises(ArchiveError):
        next(symlink.chunks())


def test_not_a_zip_is_an_archive_error() -> None:
    with pytest.raises(ArchiveError, match="not a readable zip"):
        next(iter_zip_members(io.BytesIO(b"PK\x03\x04garbage"), ArchiveLimits()))
