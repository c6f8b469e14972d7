import struct
from pathlib import Path

from o365_assets.selection.mime import read_mime
from o365_assets.selection.tnef import MAX_TNEF_OBJECTS, TNEF_SIGNATURE, read_tnef
from o365_assets.selection.types import detect_type
from o365_assets_tests.selection.test_mime import CORPUS


def winmail(file: str) -> bytes:
    message = read_mime((CORPUS / file).read_bytes())
    (part,) = [part for part in message.attachments if part.name == "winmail.dat"]
    return part.data


def test_tnef_container_is_recognised_and_its_attachments_read() -> None:
    data = winmail("mimekit__rich-text.eml")

    contents = read_tnef(data)

    assert detect_type(data, "winmail.dat", "application/ms-tnef").type == "tnef"
    names = [part.name for part in contents.attachments]
    assert "kitten-playing-with-a-christmas-tree.jpg" in names
    kitten = contents.attachments[names.index("kitten-playing-with-a-christmas-tree.jpg")]
    assert kitten.kind == "tnef_part"
    assert detect_type(kitten.data, kitten.name).type == "jpg"
    assert contents.problems == ()


def test_tnef_holding_only_a_body_has_no_attachments() -> None:
    contents = read_tnef(winmail("mimekit__ukr.eml"))

    assert contents.attachments == ()
    assert contents.problems == ()


def test_a_png_labelled_as_tnef_is_not_unpacked() -> None:
    data = winmail("zbateson__m4006.eml")

    contents = read_tnef(data)

    assert detect_type(data, "winmail.dat", "application/ms-tnef").type == "png"
    assert contents.problems == ("TNEF not unpacked: not a TNEF container",)


def test_damaged_tnef_is_reported_not_raised() -> None:
    data = winmail("mimekit__rich-text.eml")

    for cut in (8, 40, 4000, len(data) // 2):
        contents = read_tnef(data[:cut])
        assert isinstance(contents.attachments, tuple)


def test_tnef_with_too_many_objects_is_not_unpacked() -> None:
    tiny = struct.pack("<BHHI", 1, 0x8000, 0x0001, 1) + b"x" + b"\x00\x00"
    data = TNEF_SIGNATURE + b"\x00\x00" + tiny * (MAX_TNEF_OBJECTS + 10)

    contents = read_tnef(data)

    assert contents.attachments == ()
    assert contents.problems[0].startswith("TNEF not unpacked: ")
    assert contents.problems[0].endswith(f"objects, limit is {MAX_TNEF_OBJECTS}")


def test_corpus_is_where_the_tests_expect_it() -> None:
    assert Path(CORPUS, "SOURCES.md").is_file()
