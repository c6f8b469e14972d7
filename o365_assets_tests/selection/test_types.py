import io
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from o365_assets.selection import types
from o365_assets.selection.mime import read_mime
from o365_assets.selection.types import detect_type, type_from_content_type, type_from_name
from o365_assets_tests.selection import samples

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "eml"

EML = samples.message(attachments=[("a.csv", "text/csv", samples.CSV)])

DEFAULT_TYPES: dict[str, Callable[[], bytes]] = {
    "csv": lambda: samples.CSV,
    "tsv": lambda: samples.TSV,
    "xlsx": samples.xlsx,
    "xls": samples.xls,
    "pdf": samples.pdf,
    "docx": samples.docx_bytes,
    "json": lambda: samples.JSON,
    "txt": lambda: samples.TXT,
    "eml": lambda: EML,
}


@pytest.mark.parametrize("expected", sorted(DEFAULT_TYPES))
def test_every_default_type_is_detected_from_the_bytes_alone(expected: str) -> None:
    detected = detect_type(DEFAULT_TYPES[expected](), name=None, content_type=None)

    assert detected.type == expected
    assert detected.by_content
    assert detected.mismatch is None


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (samples.xlsm, "xlsm"),
        (samples.pptx_like, "pptx"),
        (samples.ods_like, "ods"),
        (samples.jar_like, "jar"),
        (lambda: samples.zip_of({"a.csv": samples.CSV}), "zip"),
        (samples.png, "png"),
        (samples.jpeg, "jpg"),
        (samples.pe_executable, "exe"),
        (lambda: samples.JSONL, "jsonl"),
        (lambda: samples.HTML, "html"),
        (lambda: b"\x7fELF\x02\x01\x01" + b"\x00" * 60, "elf"),
        (lambda: b"#!/bin/sh\nrm -rf /tmp/x\n", "script"),
        (lambda: b"", "empty"),
        (lambda: bytes(range(256)) * 4, "unknown"),
    ],
)
def test_containers_programs_and_images_are_told_apart(
    make: Callable[[], bytes], expected: str
) -> None:
    assert detect_type(make()).type == expected


def test_detection_reads_a_seekable_file_as_well_as_bytes(tmp_path: Path) -> None:
    path = tmp_path / "book.bin"
    path.write_bytes(samples.xlsx())

    with path.open("rb") as file:
        detected = detect_type(file, name="book.bin")

    assert detected.type == "xlsx"


def test_dos_stub_without_pe_header_is_still_a_program() -> None:
    assert detect_type(b"MZ" + b"\x00" * 200).type == "dos-exe"


def test_utf16_text_with_bom_is_text() -> None:
    data = "id\tname\n1\tAnn\n2\tBob\n".encode("utf-16")

    detected = detect_type(data, name="export.txt")

    assert detected.type == "txt"
    assert detected.mismatch is None


def test_latin1_csv_is_text() -> None:
    data = "id;nom;montant\n1;Ève;3,50\n2;Zoë;4,00\n".encode("latin-1")

    assert detect_type(data).type == "csv"


@pytest.mark.parametrize(
    ("make", "name", "reason"),
    [
        (samples.pe_executable, "invoice.pdf", "named .pdf, content is a Windows executable (PE)"),
        (lambda: samples.HTML, "report.xlsx", "named .xlsx, content is HTML"),
        (samples.xlsx, "export.csv", "named .csv, content is an Excel workbook (xlsx)"),
        (samples.pdf, "data.json", "named .json, content is a PDF document"),
        (lambda: samples.TXT, "scan.pdf", "named .pdf, content is plain text"),
        (lambda: bytes(range(256)) * 4, "table.csv", "named .csv, content is binary data"),
        (samples.zip_of, "letter.docx", "named .docx, content is a zip archive"),
        (samples.pe_executable, "photo.jpg", "named .jpg, content is a Windows executable (PE)"),
    ],
)
def test_names_that_lie_about_the_content_are_a_mismatch(
    make: Callable[..., bytes], name: str, reason: str
) -> None:
    data = make({"a.txt": b"x"}) if make is samples.zip_of else make()

    detected = detect_type(data, name=name)

    assert detected.mismatch is not None
    assert detected.mismatch.startswith(reason)


def test_an_executable_declared_as_a_document_is_a_mismatch_without_a_name() -> None:
    detected = detect_type(samples.pe_executable(), name=None, content_type="application/pdf")

    assert detected.mismatch == "declared application/pdf, content is a Windows executable (PE)"


def test_an_honestly_named_executable_is_no_mismatch() -> None:
    detected = detect_type(samples.pe_executable(), name="setup.exe")

    assert detected.type == "exe"
    assert detected.mismatch is None


@pytest.mark.parametrize(
    ("make", "name", "content_type", "expected"),
    [
        (samples.xlsx, "book.xlsx", "application/octet-stream", "xlsx"),
        (samples.xlsx, "legacy.xls", "application/vnd.ms-excel", "xlsx"),
        (lambda: samples.CSV, "export.csv", "application/vnd.ms-excel", "csv"),
        (lambda: samples.CSV, "notes.txt", "text/plain", "txt"),
        (lambda: samples.TSV, "export.csv", None, "csv"),
        (samples.png, "logo.jpg", "image/jpeg", "png"),
        (samples.docx_bytes, "letter.zip", "application/zip", "docx"),
        (lambda: b"-----BEGIN PGP SIGNATURE-----\nabc\n", "signature.asc", None, "signature"),
        (lambda: EML, "forwarded.txt", "text/plain", "txt"),
    ],
)
def test_benign_disagreements_are_not_a_mismatch(
    make: Callable[[], bytes], name: str, content_type: str | None, expected: str
) -> None:
    detected = detect_type(make(), name=name, content_type=content_type)

    assert detected.mismatch is None
    assert detected.type == expected


def test_a_wrong_declared_type_is_kept_as_a_note() -> None:
    detected = detect_type(samples.pdf(), name="scan.pdf", content_type="image/png")

    assert detected.mismatch is None
    assert detected.notes == ("declared image/png, content is a PDF document",)


def test_unrecognised_bytes_take_the_type_of_a_harmless_name() -> None:
    detected = detect_type(bytes(range(256)), name="clip.heic")

    assert detected.type == "heic"
    assert not detected.by_content
    assert detected.mismatch is None


def test_unrecognised_bytes_do_not_trust_a_declared_type() -> None:
    detected = detect_type(b"\x00\x00\x00\x00", name="test.db", content_type="text/plain")

    assert detected.type == "unknown"


def test_pdf_header_after_junk_in_the_first_kilobyte_is_a_pdf() -> None:
    assert detect_type(b"\r\n" * 100 + samples.pdf()).type == "pdf"


def test_a_text_head_is_not_mistaken_for_a_weak_binary_signature() -> None:
    # "BM" starts BMP images; a CSV whose first column starts with it stays a CSV.
    data = b"BMW,Munich,1916\nAudi,Ingolstadt,1909\n"

    assert detect_type(data, name="cars.csv").type == "csv"


def test_xhtml_is_html() -> None:
    data = b'<?xml version="1.0"?>\n<!DOCTYPE html>\n<html xmlns="x"><body/></html>'

    assert detect_type(data, name="page.xhtml").type == "html"


def test_zip_summary_counts_members_and_ratio_without_expanding() -> None:
    data = samples.zip_of({"zeros.bin": b"\x00" * (4 << 20), "a.txt": b"hello"})

    summary = detect_type(data).archive

    assert summary is not None
    assert summary.members == 2
    assert summary.uncompressed_size == (4 << 20) + 5
    assert summary.max_ratio > 500
    assert summary.max_ratio_member == "zeros.bin"


def test_zip_with_huge_entry_count_is_summarised_from_its_end_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(types, "ZIP_ENTRIES_READ_MAX", 10)
    data = samples.zip_of({f"{index}.txt": b"x" for index in range(11)})

    summary = detect_type(data).archive

    assert summary is not None
    assert summary.members == 11
    assert not summary.entries_read


def test_zip_end_record_that_lies_about_the_count_is_read_as_declared() -> None:
    data = bytearray(samples.zip_of({"a.txt": b"x"}))
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 60000, 60000)

    detected = detect_type(bytes(data))

    assert detected.type == "zip"


def test_damaged_zip_is_noted_not_raised() -> None:
    data = samples.xlsx()[:200]

    detected = detect_type(data, name="book.xlsx")

    assert detected.type == "zip"
    assert detected.notes and detected.notes[0].startswith("damaged zip")
    assert detected.mismatch == "named .xlsx, content is a zip archive"


def test_encrypted_zip_is_flagged() -> None:
    corpus = CORPUS / "tika__testRFC822_encrypted_zip.eml"
    part = read_mime(corpus.read_bytes()).attachments[0]

    summary = detect_type(part.data, part.name).archive

    assert summary is not None and summary.encrypted


def test_type_claims_of_names_and_content_types() -> None:
    assert type_from_name("Report.Final.XLSX") == "xlsx"
    assert type_from_name("archive.tar.gz") == "gz"
    assert type_from_name("noextension") is None
    assert type_from_name(".bashrc") is None
    assert type_from_name("../../evil.exe") == "exe"
    assert type_from_content_type("application/PDF; name=x.pdf") == "pdf"
    assert type_from_content_type("application/octet-stream") is None
    assert type_from_content_type(None) is None


def test_detection_leaves_a_file_at_its_start() -> None:
    buffer = io.BytesIO(samples.xlsx())
    buffer.seek(100)

    detect_type(buffer)

    assert buffer.tell() == 0
    assert zipfile.is_zipfile(buffer)


def test_unnamed_real_world_stubs_are_told_apart_by_their_bytes() -> None:
    # Every part of this message is application/octet-stream (or image/unknown) without a name:
    # only the bytes can tell what each is.
    message = read_mime((CORPUS / "rspamd__gargantua.eml").read_bytes())

    found = {
        detect_type(part.data, part.name, part.content_type).type for part in message.attachments
    }

    office = {"doc", "xls", "ppt", "msg", "docx", "xlsx", "pptx", "odt", "ods", "odp"}
    others = {"pdf", "rtf", "zip", "rar", "7z", "apk", "elf", "csv", "ics", "vcf", "html", "png"}
    assert office | others <= found


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 50_000,
        b"{" + b'"a":' * 5000,
        b"PK\x05\x06" + b"\xff" * 18,
        b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    ],
)
def test_hostile_heads_never_raise(data: bytes) -> None:
    assert detect_type(data, name="x.json").type in types.TYPES
