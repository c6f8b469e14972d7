"""Text encodings: find a file's encoding and give DuckDB a UTF-8 copy when it needs one.

Detection reads a sample, never the whole file: a byte-order mark decides first, then a strict
UTF-8 decode of the sample, then Windows-1252 when the sample reads as natural Latin-script text
in it (the code page Office saves Western European text in, which `charset-normalizer` often
mistakes for a Baltic or DOS code page on short samples), and only then `charset-normalizer`.
Transcoding streams the file in chunks, so a file of any size is converted in constant memory.
"""

import codecs
import logging
import re
from pathlib import Path

import charset_normalizer

logger = logging.getLogger(__name__)

SAMPLE_BYTES = 1 << 20
_CHUNK_BYTES = 1 << 20

UTF8 = "utf-8"
UTF8_BOM = "utf-8-sig"

# Checked longest first: the UTF-32 LE mark begins with the UTF-16 LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, UTF8_BOM),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


CP1252 = "cp1252"

# A symbol from the Latin-1 range between two letters: what a letter of another code page
# (Polish "ł", "ż") turns into when read as Windows-1252.
_SYMBOL_IN_WORD = re.compile(r"[^\W\d_][\u00a1-\u00bf\u00d7\u00f7][^\W\d_]")
_WORD = re.compile(r"\w+")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def detect_encoding(path: Path, sample_bytes: int = SAMPLE_BYTES) -> str:
    """The Python codec name of `path`'s text encoding, judged from its first bytes."""
    with path.open("rb") as handle:
        sample = handle.read(sample_bytes)
    return detect_sample_encoding(sample, truncated=len(sample) == sample_bytes)


def detect_sample_encoding(sample: bytes, truncated: bool = False) -> str:
    """The encoding of a sample of text; `truncated` says the sample may end mid-character."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name

    # TODO: Turkish (cp1254) text without its six distinct letters reads as Windows-1252 too;
    # a route's `encoding` option is the way to pin such files.
    if b"\x00" not in sample:
        if _is_utf8(sample, truncated):
            return UTF8
        if _reads_as_cp1252(sample):
            return CP1252

    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        # Not text in any encoding charset-normalizer knows; UTF-8 with replacement keeps
        # whatever is readable.
        return UTF8
    return codecs.lookup(best.encoding).name


def needs_transcoding(encoding: str) -> bool:
    """Whether DuckDB's readers need a UTF-8 copy of a file in this encoding."""
    return codecs.lookup(encoding).name not in {UTF8, UTF8_BOM}


def transcode_to_utf8(source: Path, encoding: str, target: Path) -> bool:
    """Write `source`, read as `encoding`, to `target` as UTF-8 without a byte-order mark.

    Returns True when every byte decoded cleanly; when some did not, the file is written again
    with U+FFFD in place of the undecodable bytes and False is returned.
    """
    try:
        _transcode(source, encoding, target, errors="strict")
        return True
    except UnicodeDecodeError:
        logger.warning("%s has bytes that are not %s; they are replaced", source.name, encoding)
        _transcode(source, encoding, target, errors="replace")
        return False


def _transcode(source: Path, encoding: str, target: Path, errors: str) -> None:
    codec = "utf-8-sig" if codecs.lookup(encoding).name == UTF8 else encoding
    decoder = codecs.getincrementaldecoder(codec)(errors=errors)
    with source.open("rb") as reader, target.open("w", encoding=UTF8, newline="") as writer:
        while chunk := reader.read(_CHUNK_BYTES):
            writer.write(decoder.decode(chunk))
        writer.write(decoder.decode(b"", final=True))


def _reads_as_cp1252(sample: bytes) -> bool:
    """Whether the sample reads as Latin-script text in Windows-1252.

    Accented letters of Western languages sit inside words that also have plain ASCII
    letters; text of another code page read as Windows-1252 instead gives words made only of
    accented letters (Cyrillic, Greek) or symbols inside words (Central European).
    """
    try:
        text = sample.decode(CP1252)
    except UnicodeDecodeError:
        return False
    accented = [word for word in _WORD.findall(text) if not word.isascii()]
    if not accented:
        return True
    mixed = sum(1 for word in accented if _ASCII_LETTER.search(word))
    return mixed >= 0.8 * len(accented) and not _SYMBOL_IN_WORD.search(text)


def _is_utf8(sample: bytes, truncated: bool) -> bool:
    try:
        sample.decode(UTF8)
    except UnicodeDecodeError as error:
        # A sample cut in the middle of a multi-byte character is still UTF-8.
        return (
            truncated
            and error.start >= len(sample) - 3
            and error.reason == "unexpected end of data"
        )
    return True
