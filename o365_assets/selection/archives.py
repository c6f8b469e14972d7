"""The members of a zip archive, streamed one by one within limits.

Nothing is extracted to a path: a member's bytes go to the caller as chunks, to be written
through the file store under a safe name, so hostile member names (`../../x`, absolute paths,
drive letters) never reach the file system. The limits are enforced twice: on what the central
directory declares before anything is read (`decide` quarantines a bomb from
`DetectedType.archive`), and on the bytes actually produced while streaming.
"""

import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from o365_assets.selection.rules import ArchiveLimits

_SUPPORTED_COMPRESSION = frozenset(
    {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
)


class ArchiveError(Exception):
    """A zip that cannot be read, or a member whose bytes are damaged."""


class ArchiveLimitExceeded(ArchiveError):
    """A zip that expands past its limits while being read: treat it as a bomb."""


@dataclass
class _Budget:
    remaining: int


@dataclass
class ArchiveMember:
    """One file inside a zip. Valid only while `iter_zip_members` is being iterated.

    `path` is the member's path as the archive writes it (hostile, for the record only);
    `name` its last component. `problem` says why the member cannot be read (encrypted, a
    symbolic link, an unsupported compression); then `chunks` must not be called.
    """

    path: str
    name: str | None
    size: int
    compressed_size: int
    problem: str | None
    _archive: zipfile.ZipFile = field(repr=False)
    _info: zipfile.ZipInfo = field(repr=False)
    _budget: _Budget = field(repr=False)

    def chunks(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The member's bytes, decompressed as they are read; raises `ArchiveError` when the
        member is damaged and `ArchiveLimitExceeded` when it expands past the limits."""
        if self.problem:
            raise ArchiveError(self.problem)
        if self._archive.fp is None:
            raise RuntimeError("a zip member must be read while iter_zip_members is on it")

        produced = 0
        try:
            with self._archive.open(self._info) as stream:
                while chunk := stream.read(chunk_size):
                    produced += len(chunk)
                    self._budget.remaining -= len(chunk)
                    if produced > self.size:
                        raise ArchiveLimitExceeded(
                            f"zip bomb: member {self.path!r} expands past its declared size"
                        )
                    if self._budget.remaining < 0:
                        raise ArchiveLimitExceeded("zip bomb: expands past the total size limit")
                    yield chunk
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError) as error:
            raise ArchiveError(f"damaged zip member {self.path!r}: {error}") from error


def iter_zip_members(source: IO[bytes], limits: ArchiveLimits) -> Iterator[ArchiveMember]:
    """The file members of a zip (directories left out), each with its declared sizes.

    `source` is a seekable binary file. Raises `ArchiveLimitExceeded` before yielding
    anything when the central directory declares more members or more bytes than the limits
    allow, and `ArchiveError` when the zip cannot be opened.
    """
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as error:
        raise ArchiveError(f"not a readable zip: {error}") from error

    with archive:
        infos = [info for info in archive.infolist() if not info.is_dir()]
        declared = sum(info.file_size for info in infos)
        if len(infos) > limits.max_members:
            raise ArchiveLimitExceeded(
                f"zip bomb: {len(infos)} members, limit is {limits.max_members}"
            )
        if declared > limits.max_total_size:
            raise ArchiveLimitExceeded("zip bomb: declares more bytes than the total size limit")

        budget = _Budget(int(limits.max_total_size))
        for info in infos:
            yield ArchiveMember(
                path=info.filename,
                name=_last_component(info.filename),
                size=info.file_size,
                compressed_size=info.compress_size,
                problem=_member_problem(info),
                _archive=archive,
                _info=info,
                _budget=budget,
            )


def _last_component(path: str) -> str | None:
    parts = [part for part in path.replace("\\", "/").split("/") if part]
    return parts[-1] if parts else None


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    if info.flag_bits & 0x1:
        return "encrypted zip member, cannot be read"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link in a zip, not followed"
    if info.compress_type not in _SUPPORTED_COMPRESSION:
        return f"zip member compressed with unsupported method {info.compress_type}"
    return None
