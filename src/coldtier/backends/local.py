"""The local filesystem backend: the reference for durability.

A write is: temp file in the target directory → fsync → ``link`` to the
final name (fails if it exists, so never overwrites) → fsync the directory.
Every directory on the path is fsynced into its parent the first time this
process writes under it — also when another writer created it and may not
have fsynced it yet — so a put is durable when it returns, power cut or not.
Temp files are named ``.~coldtier.<pid>.<random>.tmp``: no listing shows
them, and a later writer in the same directory removes those whose process
is gone.

The root is trusted (it is resolved once, when the store is opened); below
it, on a volume other users may write to, nothing is: every path is walked
one component at a time through directory file descriptors opened with
``O_NOFOLLOW``, so no write, read or listing follows a symbolic link.  A
symlink, FIFO, device node or directory where the archive expects its own
directory or object is refused with :class:`~coldtier.store.UnsafeEntry`,
naming it, and a listing shows such an entry with ``Entry.unsafe`` set (so
``verify`` reports it and checks the rest); objects are opened
``O_NONBLOCK`` and ``fstat``-ed before a byte is read, so a FIFO never hangs
a reader.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat as stat_mode
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Self

from fsspec.implementations.local import LocalFileSystem

from ..store import ArchiveNotFound, Entry, Fault, InvalidRequest, Location, Stat, UnsafeEntry
from ._fsspec import FsspecStore

__all__ = ["LocalStore", "UnsafeEntry"]

_TEMP_RE = re.compile(r"\.~coldtier\.(\d+)\.[0-9a-f]+\.tmp")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KINDS = {
    stat_mode.S_IFLNK: "a symbolic link",
    stat_mode.S_IFIFO: "a FIFO",
    stat_mode.S_IFCHR: "a character device",
    stat_mode.S_IFBLK: "a block device",
    stat_mode.S_IFSOCK: "a socket",
    stat_mode.S_IFDIR: "a directory",
    stat_mode.S_IFREG: "a regular file",
}


def _kind(mode: int) -> str:
    """What a file of ``mode`` is, and why it is not used: ``"a FIFO (not opened)"``."""
    kind = _KINDS.get(stat_mode.S_IFMT(mode), "a special file")
    if stat_mode.S_ISLNK(mode):
        return f"{kind} (not followed)"
    if stat_mode.S_ISDIR(mode) or stat_mode.S_ISREG(mode):
        return kind
    return f"{kind} (not opened)"


class LocalStore(FsspecStore):
    """Objects in a local directory: ``file:///var/archive`` or a bare path."""

    scheme = "file"
    location_noun = "archive directory"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser().resolve()
        super().__init__(LocalFileSystem(), path.as_posix(), description=path.as_uri())
        self._swept: set[str] = set()
        #: Directories (keys) this process has fsynced into their parents.
        self._durable: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_location(cls, location: Location) -> Self:
        if location.scheme not in ("", "file"):
            raise InvalidRequest(f"not a local URL: {location.scheme}://")
        if location.netloc not in ("", "localhost"):
            raise InvalidRequest(f"file:// URL names a remote host {location.netloc!r}; use file:///path")
        if not location.path:
            raise InvalidRequest("local archive URL has no path")
        return cls(location.path)

    def location_exists(self) -> bool:
        if os.path.exists(self._root) and not os.path.isdir(self._root):
            raise NotADirectoryError(f"{self._root} is not a directory")
        return os.path.isdir(self._root)

    def hidden(self, name: str) -> bool:
        return _TEMP_RE.fullmatch(name) is not None

    def classify(self, exc: BaseException) -> Fault | None:
        if isinstance(exc, UnsafeEntry):
            return None  # its message says what it is; not "not found" or "denied"
        return super().classify(exc)

    # -- walking below the root -------------------------------------------------

    @contextlib.contextmanager
    def _open_dir(self, parts: list[str], *, create: bool = False) -> Iterator[int]:
        """A file descriptor of the directory ``root/parts...``, never through a symlink."""
        if create:
            _makedirs_durable(self._root)
        fd = os.open(self._root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, name in enumerate(parts):
                key = "/".join(parts[: depth + 1])
                made = False
                if create:
                    try:
                        os.mkdir(name, 0o777, dir_fd=fd)
                        made = True
                    except FileExistsError:
                        pass
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise self._unsafe(fd, name, key, "a directory") from exc
                    raise
                if create and (made or key not in self._durable):
                    # Whoever made it, its entry may not be on disk yet: make it so.
                    os.fsync(fd)
                    with self._lock:
                        self._durable.add(key)
                os.close(fd)
                fd = child
            yield fd
        finally:
            os.close(fd)

    def _unsafe(self, dir_fd: int, name: str, key: str, expected: str) -> UnsafeEntry:
        try:
            found = _kind(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
        except OSError:
            found = "not usable"
        return UnsafeEntry(key, found, expected)

    @contextlib.contextmanager
    def _open_object(self, key: str) -> Iterator[tuple[int, os.stat_result]]:
        *parts, name = key.split("/")
        with self._open_dir(parts) as dfd:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise self._unsafe(dfd, name, key, "an object (a regular file)") from exc
                raise
            try:
                info = os.fstat(fd)
                if not stat_mode.S_ISREG(info.st_mode):
                    raise UnsafeEntry(key, _kind(info.st_mode), "an object (a regular file)")
                yield fd, info
            finally:
                os.close(fd)

    # -- primitives ---------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        *parts, name = key.split("/")
        with self._open_dir(parts, create=True) as dfd:
            self._sweep("/".join(parts), dfd)
            temp = f".~coldtier.{os.getpid()}.{secrets.token_hex(8)}.tmp"
            fd = os.open(
                temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dfd
            )
            try:
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(temp, name, src_dir_fd=dfd, dst_dir_fd=dfd, follow_symlinks=False)
                except FileExistsError:
                    return False
                os.fsync(dfd)
                return True
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp, dir_fd=dfd)

    def get(self, key: str) -> bytes:
        with self._open_object(key) as (fd, info):
            chunks: list[bytes] = []
            remaining = info.st_size
            while True:
                chunk = os.read(fd, max(remaining, 1 << 16))
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
                remaining -= len(chunk)

    def stat(self, key: str) -> Stat:
        with self._open_object(key) as (_, info):
            return Stat(size=info.st_size)

    def list(self, prefix: str) -> list[Entry]:
        parts = prefix.split("/") if prefix else []
        try:
            with self._open_dir(parts) as dfd:
                entries = []
                with os.scandir(dfd) as found:
                    for item in found:
                        if self.hidden(item.name):
                            continue
                        key = f"{prefix}/{item.name}" if prefix else item.name
                        info = item.stat(follow_symlinks=False)
                        if stat_mode.S_ISDIR(info.st_mode):
                            entries.append(Entry(key, is_dir=True))
                        elif stat_mode.S_ISREG(info.st_mode):
                            entries.append(Entry(key, info.st_size))
                        else:  # listed, never followed or opened: verify reports it, reads refuse it
                            entries.append(Entry(key, unsafe=_kind(info.st_mode)))
        except FileNotFoundError as exc:
            if not self.location_exists():
                raise ArchiveNotFound(
                    f"{self._description} does not exist (no such {self.location_noun})"
                ) from exc
            return []
        return entries

    def delete(self, key: str) -> None:
        *parts, name = key.split("/")
        with self._open_dir(parts) as dfd:
            os.unlink(name, dir_fd=dfd)
            os.fsync(dfd)

    def _sweep(self, directory: str, dir_fd: int) -> None:
        """Remove temp files left in ``directory`` by writers that died."""
        if directory in self._swept:
            return
        with os.scandir(dir_fd) as entries:
            for entry in entries:
                m = _TEMP_RE.fullmatch(entry.name)
                if m and not _alive(int(m[1])):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name, dir_fd=dir_fd)
        with self._lock:
            self._swept.add(directory)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(directory: str) -> None:
    """``mkdir -p`` of the (trusted) root that fsyncs each parent whose entry it adds."""
    if os.path.isdir(directory):
        return
    parent = os.path.dirname(directory)
    if parent != directory:
        _makedirs_durable(parent)
    try:
        os.mkdir(directory)
    except FileExistsError:
        return
    _fsync_dir(parent)
