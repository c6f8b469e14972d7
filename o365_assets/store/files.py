"""The attachment file store: streamed, hashed, atomic writes under names safe on every OS.

Built on `fsspec`: a plain path or `file://` URL is a local folder, any other fsspec URL
(`s3://`, `az://`, `memory://`, ...) works without changing callers.

Layout, relative to the store's root (e.g. `O365_DATA_DIR/attachments`)::

    2026/12/01/report.pdf            received date (in the partition's timezone) / safe name
    2026/12/01/report~1a2b3c4d.pdf   another file that wanted the same name
    .partial/<pid>@<host>.<token>.part   bytes being received, never a final name

Paths handed out and taken back are relative to the root, with `/` separators.

Writing is two-phase, so the caller can consult its index between hashing and storing::

    received = store.receive(chunks, expected_size=size)   # streamed to a temporary file
    path = index.path_of(received.sha256)                  # the caller's own look-up
    if path and store.verify(path, received.sha256):
        store.discard(received)                            # identical content: stored once
    else:
        path = store.commit(received, received_date, name, key=attachment_id)

`commit` moves the temporary file to its final name atomically (a killed process leaves at
most a temporary file, which `sweep_temps` later removes). Two different files wanting the same
name get deterministic names: the first free of `name`, `name~<hash of key>`,
`name~<content hash>`; a name already holding identical content is reused, so a retry stores
nothing twice. Process attachments in a stable order (received time, then attachment id) for
the same names on every run.

Rematerialising downloads nothing the store already holds::

    for row in rows_to_keep:                                # path and sha256 from the index
        if store.verify(row.path, row.sha256):
            continue                                        # present and intact
        received = store.receive(download(row), expected_size=row.size)
        store.restore(received, row.path, row.sha256)       # missing or corrupt: repaired

`restore` repairs in place, so every row that shares the file stays valid.

Public surface: `FileStore` (`receive`, `commit`, `discard`, `restore`, `verify`, `exists`,
`open`, `local_path`, `sweep_temps`), `Received`, `safe_name`, and the errors `StoreError`,
`SizeMismatchError`, `TooLargeError`, `UnsafePathError`.
"""

import contextlib
import functools
import hashlib
import logging
import os
import posixpath
import re
import secrets
import socket
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

logger = logging.getLogger(__name__)

TEMP_DIR = ".partial"
MAX_NAME_BYTES = 255
FALLBACK_NAME = "attachment"
READ_CHUNK = 1 << 20
# Chunks at least this large are hashed on a worker thread while the next is written.
_THREADED_HASH_MIN = 256 * 1024

_RESERVED_STEMS = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$", "CLOCK$"}
    | {f"{device}{digit}" for device in ("COM", "LPT") for digit in "0123456789¹²³"}
)
# Forbidden in Windows names, or separators somewhere.
_FORBIDDEN_CHARS = frozenset('<>:"/\\|?*')
# Control, format (bidi overrides, zero-width), surrogate, line and paragraph separators.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_MAX_EXTENSION_BYTES = 20
_TEMP_NAME = re.compile(r"^(?P<pid>\d+)@(?P<host>[A-Za-z0-9.-]+)\.(?P<token>[0-9a-f]+)\.part$")


class StoreError(Exception):
    """A write or a path the store refuses."""


class SizeMismatchError(StoreError):
    """The body was shorter or longer than the size it was expected to have."""


class TooLargeError(StoreError):
    """The body grew past the largest size the caller accepts."""


class UnsafePathError(StoreError):
    """A path that would leave the store's root, or that the store never hands out."""


@dataclass(frozen=True)
class Received:
    """Bytes received into a temporary file of the store, not yet under a final name."""

    path: str
    sha256: str
    size: int


def safe_name(name: str | None, fallback: str = FALLBACK_NAME) -> str:
    """A file name safe on every OS, derived from a hostile one.

    Keeps only the last path component; drops control and bidi-format characters; replaces
    characters Windows forbids; strips leading and trailing dots and spaces; escapes reserved
    Windows device names (CON, NUL, COM1, ... with any extension); normalises to NFC; keeps
    at most 255 bytes of UTF-8, shortening the stem and keeping the extension. An empty
    result becomes `fallback`.
    """
    text = unicodedata.normalize("NFC", name or "")
    components = [part for part in re.split(r"[/\\]", text) if part.strip(" .")]
    text = components[-1] if components else ""

    text = "".join(_safe_char(char) for char in text)
    text = " ".join(text.split())
    text = text.strip(" .") or fallback

    if text.split(".", 1)[0].rstrip(" ").upper() in _RESERVED_STEMS:
        text = "_" + text
    # TODO: only the name is bounded; on Windows without long-path support a deep root plus a
    # 255-byte name can pass the 260-character path limit and the write fails.
    return _fit(text, "")


def _safe_char(char: str) -> str:
    if char.isspace():
        return " "
    if unicodedata.category(char) in _DROPPED_CATEGORIES:
        return ""
    return "_" if char in _FORBIDDEN_CHARS else char


def _split_extension(name: str) -> tuple[str, str]:
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or " " in extension:
        return name, ""
    if len(extension.encode("utf-8")) > _MAX_EXTENSION_BYTES:
        return name, ""
    return stem, "." + extension


def _fit(name: str, suffix: str) -> str:
    """`name` with `suffix` before its extension, shortened to MAX_NAME_BYTES of UTF-8."""
    stem, extension = _split_extension(name)
    budget = MAX_NAME_BYTES - len((suffix + extension).encode("utf-8"))
    encoded = stem.encode("utf-8")
    if len(encoded) > budget:
        stem = encoded[:budget].decode("utf-8", errors="ignore").rstrip(" .") or FALLBACK_NAME
    return stem + suffix + extension


class FileStore:
    """Attachment files under one root, local or remote (see the module documentation)."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        fsync: bool = False,
    ) -> None:
        """Open (and create) the store at `root`, a path or an fsspec URL.

        With `fsync`, local writes are flushed to disk before they are renamed, so a power cut
        cannot leave a short file under a final name; without it such a file is found by
        `verify` and repaired on the next rematerialisation.
        """
        fs, root_path = fsspec.core.url_to_fs(os.fspath(root), **dict(storage_options or {}))
        self._fs: AbstractFileSystem = fs
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            root_path = os.path.realpath(root_path)
        self._root: str = root_path.rstrip("/") or "/"
        self._fsync = fsync and self._local
        self._fs.makedirs(self._join(TEMP_DIR), exist_ok=True)
        self._made: set[str] = set()
        self._inside: set[str] = {self._root}

    @property
    def root(self) -> str:
        """The root as the file system sees it (an absolute path when local)."""
        return self._root

    def receive(
        self,
        chunks: Iterable[bytes],
        *,
        expected_size: int | None = None,
        max_size: int | None = None,
    ) -> Received:
        """Stream `chunks` into a temporary file of the store, hashing as it goes.

        Raises `SizeMismatchError` when `expected_size` is given and the body is shorter or
        longer (reading stops as soon as it is longer), `TooLargeError` past `max_size`. On
        any failure the temporary file is removed.
        """
        # The pid is read now, not when the store was made: a forked worker writes as itself.
        relative = f"{TEMP_DIR}/{os.getpid()}@{_host()}.{secrets.token_hex(8)}.part"
        full = self._join(relative)
        digest = _StreamHash()
        size = 0
        try:
            with self._open(full, "wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    _check_growing(size, expected_size, max_size)
                    digest.update(chunk)
                    out.write(chunk)
                if self._fsync:
                    out.flush()
                    os.fsync(out.fileno())
            sha256 = digest.hexdigest()
            if expected_size is not None and size != expected_size:
                raise SizeMismatchError(f"body is {size} bytes, expected {expected_size}")
        except BaseException:
            digest.abandon()
            self._remove_quietly(full)
            raise
        return Received(relative, sha256, size)

    def commit(self, received: Received, received_date: date, name: str | None, *, key: str) -> str:
        """Give received bytes their final name; returns the path relative to the root.

        `key` (the attachment id) makes the name of a second, different file wanting the same
        name deterministic. A name that already holds the same bytes is reused.
        """
        directory = f"{received_date:%Y/%m/%d}"
        self._make_directories(directory)

        base = safe_name(name)
        for attempt in range(3):
            relative = f"{directory}/{_fit(base, _name_suffix(attempt, key, received.sha256))}"
            last = attempt == 2
            if self._place(received, relative, overwrite=last):
                return relative
            if self.verify(relative, received.sha256):
                self.discard(received)
                return relative
        raise StoreError("unreachable: the content-addressed name is always placed")

    def restore(self, received: Received, path: str, sha256: str) -> None:
        """Put received bytes at an existing path, replacing what is there (a repair).

        Raises `StoreError`, and discards the bytes, when they are not the expected content.
        """
        full = self._resolve(path)
        if received.sha256 != sha256.lower():
            self.discard(received)
            raise StoreError(f"received content does not match the sha256 recorded for {path}")

        self._make_directories(posixpath.dirname(path))
        if self._local:
            os.replace(self._join(received.path), full)
            self._sync_directory(posixpath.dirname(full))
        else:
            self._fs.mv(self._join(received.path), full)

    def discard(self, received: Received) -> None:
        """Drop received bytes that are not to be stored."""
        self._remove_quietly(self._join(received.path))

    def verify(self, path: str, sha256: str) -> bool:
        """True when `path` exists and its bytes hash to `sha256` (read in a stream)."""
        full = self._resolve(path)
        digest = hashlib.sha256()
        try:
            with self._open(full, "rb") as stream:
                while chunk := stream.read(READ_CHUNK):
                    digest.update(chunk)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return False
        return digest.hexdigest() == sha256.lower()

    def exists(self, path: str) -> bool:
        """True when a file is stored at `path`."""
        return bool(self._fs.isfile(self._resolve(path)))

    def open(self, path: str) -> IO[bytes]:
        """Open a stored file, or received bytes by `Received.path`, for reading."""
        return self._open(self._resolve(path), "rb")

    def local_path(self, path: str) -> Path:
        """The local file behind `path`, for readers that need one; local stores only."""
        if not self._local:
            raise StoreError("the store is not on the local file system")
        return Path(self._resolve(path))

    def sweep_temps(self, max_age: timedelta = timedelta(days=1)) -> int:
        """Remove temporary files that no live writer owns; returns how many were removed.

        A temporary file of this host is removed when its writing process is gone. Files of
        other hosts (a shared remote store) or with foreign names are removed once older
        than `max_age`. Temporary files of live processes are never touched.
        """
        removed = 0
        for full in self._temp_files():
            if self._abandoned(full, max_age):
                self._remove_quietly(full)
                removed += 1
        if removed:
            logger.info("removed %s abandoned temporary files from %s", removed, self._root)
        return removed

    def _temp_files(self) -> Iterator[str]:
        try:
            entries = self._fs.ls(self._join(TEMP_DIR), detail=False)
        except FileNotFoundError:
            return
        yield from (str(entry) for entry in entries)

    def _abandoned(self, full: str, max_age: timedelta) -> bool:
        match = _TEMP_NAME.match(posixpath.basename(full))
        if match and match["host"] == _host():
            pid = int(match["pid"])
            return pid != os.getpid() and not _process_alive(pid)

        try:
            modified: float = self._fs.modified(full).timestamp()
        except (NotImplementedError, FileNotFoundError, OSError):
            return False
        return time.time() - modified > max_age.total_seconds()

    def _place(self, received: Received, relative: str, *, overwrite: bool) -> bool:
        """Move received bytes to `relative` unless a file is there; True when moved."""
        source = self._join(received.path)
        target = self._join(relative)
        if self._local:
            placed = _local_move(source, target, overwrite=overwrite)
            if placed:
                self._sync_directory(posixpath.dirname(target))
            return placed

        # TODO: a remote store has no atomic rename-if-absent, so two writers racing for one
        # name can overwrite each other; the loser's row then points at the winner's bytes.
        if not overwrite and self._fs.exists(target):
            return False
        self._fs.mv(source, target)
        return True

    def _open(self, full: str, mode: str) -> IO[bytes]:
        # Local files skip fsspec's wrapper: a plain file object is all it would add.
        if self._local:
            return open(full, mode)
        stream: IO[bytes] = self._fs.open(full, mode)
        return stream

    def _join(self, relative: str) -> str:
        return f"{self._root}/{relative}" if self._root != "/" else f"/{relative}"

    def _resolve(self, path: str) -> str:
        """The full path of a relative store path, refusing anything that could escape."""
        if not path or "\x00" in path or "\\" in path or path.startswith("/"):
            raise UnsafePathError(f"not a store path: {path!r}")
        parts = path.split("/")
        if any(part in {"", ".", ".."} for part in parts) or re.match(r"^[A-Za-z]:", path):
            raise UnsafePathError(f"not a store path: {path!r}")

        full = self._join(path)
        self._check_inside(full)
        return full

    def _make_directories(self, relative: str) -> None:
        """Create the folders of `relative` one by one, refusing any that leads outside."""
        if not relative or relative in self._made:
            return
        if not self._local:
            self._fs.makedirs(self._join(relative), exist_ok=True)
            self._made.add(relative)
            return

        current = self._root
        for part in relative.split("/"):
            current = os.path.join(current, part)
            # Checked before creating: an existing link to elsewhere must not receive folders.
            self._check_inside(current)
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
            self._check_inside(current)
        self._made.add(relative)

    def _check_inside(self, full: str) -> None:
        """Refuse a path whose real location (symbolic links followed) leaves the root."""
        if not self._local:
            return

        # Folders already found inside are remembered; only a link as the last part can still
        # lead elsewhere.
        folder = os.path.dirname(full)
        if folder not in self._inside:
            self._require_inside(folder)
            self._inside.add(folder)
        if os.path.islink(full):
            self._require_inside(full)

    def _require_inside(self, full: str) -> None:
        real = os.path.realpath(full)
        if real != self._root and not real.startswith(self._root.rstrip(os.sep) + os.sep):
            raise UnsafePathError(f"path leaves the store: {full!r}")

    def _sync_directory(self, directory: str) -> None:
        if not self._fsync:
            return
        descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _remove_quietly(self, full: str) -> None:
        try:
            self._fs.rm_file(full)
        except FileNotFoundError:
            return
        except OSError as error:
            logger.warning("could not remove temporary file %s: %s", full, error)


class _StreamHash:
    """sha256 of a stream, computed beside the writing: large chunks are hashed on a worker
    thread (hashlib releases the GIL) while the caller writes them and reads the next."""

    _pool: ThreadPoolExecutor | None = None
    _pool_lock = threading.Lock()

    def __init__(self) -> None:
        self._digest = hashlib.sha256()
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes) -> None:
        # A producer reusing a mutable buffer would change the bytes under the worker.
        data = chunk if isinstance(chunk, bytes) else bytes(chunk)
        self._wait()
        if len(data) < _THREADED_HASH_MIN:
            self._digest.update(data)
        else:
            self._pending = self._workers().submit(self._digest.update, data)

    def hexdigest(self) -> str:
        self._wait()
        return self._digest.hexdigest()

    def abandon(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            with contextlib.suppress(Exception):
                self._pending.result()
            self._pending = None

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    @classmethod
    def _workers(cls) -> ThreadPoolExecutor:
        with cls._pool_lock:
            if cls._pool is None:
                cls._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sha256")
            return cls._pool


def _name_suffix(attempt: int, key: str, sha256: str) -> str:
    """The suffix of the n-th name tried for a file: none, from its key, from its content."""
    if attempt == 0:
        return ""
    if attempt == 1:
        return "~" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:8]
    return "~" + sha256[:16]


def _check_growing(size: int, expected_size: int | None, max_size: int | None) -> None:
    if expected_size is not None and size > expected_size:
        raise SizeMismatchError(f"body is longer than the expected {expected_size} bytes")
    if max_size is not None and size > max_size:
        raise TooLargeError(f"body is larger than {max_size} bytes")


def _local_move(source: str, target: str, *, overwrite: bool) -> bool:
    """Rename on the local file system; without `overwrite`, only if `target` is free.

    A hard link is an atomic create-if-absent, which a plain rename is not on POSIX.
    """
    if overwrite:
        os.replace(source, target)
        return True
    try:
        os.link(source, target)
    except FileExistsError:
        return False
    except OSError:
        # File systems without hard links: check, then rename (a narrow race remains).
        if os.path.lexists(target):
            return False
        os.replace(source, target)
        return True
    os.unlink(source)
    return True


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "localhost"


def _process_alive(pid: int) -> bool:
    if os.name == "nt":
        # TODO: no cheap liveness check on Windows (signal 0 there interrupts the process);
        # temporary files of dead processes on Windows stay until removed by hand.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
