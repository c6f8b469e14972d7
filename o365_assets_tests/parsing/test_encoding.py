from pathlib import Path

import pytest

from o365_assets.parsing.encoding import detect_sample_encoding, transcode_to_utf8

SAMPLES = {
    "french": "produit;prix\nCrème brûlée;7,50 €\n“très” bon – l’été déjà vu\n" * 20,
    "german": "name;city\nMüller;Köln\nGarçon;Besançon\n",
    "polish": "miasto;ulica\nŁódź;Piotrkowska\nKraków;Floriańska\nZażółć gęślą jaźń\n",
    "russian": "город;улица\nМосква;Тверская\nПривет мир;Санкт-Петербург\n",
    "greek": "πόλη;οδός\nΑθήνα;Ερμού\nΘεσσαλονίκη;Τσιμισκή\n",
}


@pytest.mark.parametrize(
    ("sample", "encoding", "expected"),
    [
        ("french", "cp1252", "cp1252"),
        ("german", "cp1252", "cp1252"),
        ("polish", "cp1250", "cp1250"),
        ("russian", "cp1251", "cp1251"),
        ("greek", "cp1253", "cp1253"),
        ("french", "utf-8", "utf-8"),
        ("russian", "utf-16-le", "utf-16-le"),
        ("german", "utf-16", "utf-16"),
        ("polish", "utf-8-sig", "utf-8-sig"),
    ],
)
def test_detection(sample: str, encoding: str, expected: str) -> None:
    assert detect_sample_encoding(SAMPLES[sample].encode(encoding)) == expected


def test_a_utf8_sample_cut_inside_a_character_is_still_utf8() -> None:
    data = ("é" * 100).encode()[:-1]

    assert detect_sample_encoding(data, truncated=True) == "utf-8"


def test_transcoding_streams_and_replaces_bad_bytes(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(("Zürich\n" * 400_000).encode("utf-16") + b"\xd8")
    target = tmp_path / "out.txt"

    clean = transcode_to_utf8(source, "utf-16", target)

    assert clean is False
    text = target.read_text(encoding="utf-8")
    assert text.startswith("Zürich\n")
    assert text.count("Zürich") == 400_000
    assert text.endswith("\ufffd")
