"""Checks on zip-based office files (xlsx, xlsm, ods, docx) before any library opens them.

A zip bomb is a small file that inflates to gigabytes; an office library that opens it would
exhaust memory. The zip's central directory states each member's sizes without inflating
anything, so it is read first and the file refused when the sizes are out of bounds.
"""

import zipfile
from pathlib import Path

from o365_assets.parsing.sources import QuarantineError

# Largest total the members may inflate to.
MAX_UNCOMPRESSED_BYTES = 1 << 30
# Largest inflation ratio of one member; real workbooks and documents stay below 30.
MAX_RATIO = 100
# Members smaller than this are not judged by their ratio (tiny XML files compress oddly).
RATIO_FLOOR_BYTES = 1 << 20
MAX_MEMBERS = 10_000

# Office files saved with a password are OLE compound files holding an encrypted package.
_COMPOUND_FILE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def check_office_zip(path: Path, kind: str) -> None:
    """Refuse `path` unless it is a zip whose members inflate within safe bounds.

    Raises `QuarantineError` naming the reason: encrypted, not a zip, too many members, a
    member or the whole inflating past the limits.
    """
    with path.open("rb") as handle:
        magic = handle.read(len(_COMPOUND_FILE_MAGIC))
    if magic == _COMPOUND_FILE_MAGIC:
        raise QuarantineError(f"password-protected (encrypted) {kind} file")

    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise QuarantineError(f"not a valid {kind} file (broken zip container)") from error

    if len(members) > MAX_MEMBERS:
        raise QuarantineError(f"{kind} container has {len(members)} members, more than allowed")

    total = sum(member.file_size for member in members)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise QuarantineError(
            f"{kind} container would inflate to {total} bytes, more than "
            f"{MAX_UNCOMPRESSED_BYTES} (zip bomb?)"
        )
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
            raise QuarantineError(
                f"{kind} container member inflates {ratio:.0f} times, more than {MAX_RATIO} "
                "(zip bomb?)"
            )
