"""The local filesystem backend: the reference for durability.

A write is: temp file in the target directory → fsync → ``os.link`` to the
final name (fails if it exists, so never overwrites) → fsync the directory;
new directories are fsynced into their parents.  Temp files are named
``.~coldtier.<pid>.<random>.tmp``: no listing shows them, and a later writer
in the same directory removes those whose process is gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from fsspec.implementations.local import LocalFileSystem

from ..store import InvalidRequest, Location
from ._fsspec import FsspecStore

__all__ = ["LocalStore"]

_TEMP_RE = re.compile(r"\.~coldtier\.(\d+)\.[0-9a-f]+\.tmp")


class LocalStore(FsspecStore):
    """Objects in a local directory: ``file:///var/archive`` or a bare path."""

    scheme = "file"
    location_noun = "archive directory"

    def __init__(self, root: str | os.PathLike[str]) -> None:
        path = Path(root).expanduser().resolve()
        super().__init__(LocalFileSystem(), path.as_posix(), description=path.as_uri())
        self._swept: set[str] = set()

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

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        path = self.path(key)
        directory = os.path.dirname(path)
        _makedirs_durable(directory)
        self._sweep(directory)
        temp = os.path.join(directory, f".~coldtier.{os.getpid()}.{secrets.token_hex(8)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)
            except FileExistsError:
                return False
            _fsync_dir(directory)
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def get(self, key: str) -> bytes:
        with open(self.path(key), "rb") as f:
            return f.read()

    def delete(self, key: str) -> None:
        path = self.path(key)
        os.unlink(path)
        _fsync_dir(os.path.dirname(path))

    def _sweep(self, directory: str) -> None:
        """Remove temp files left in ``directory`` by writers that died."""
        if directory in self._swept:
            return
        with os.scandir(directory) as entries:
            for entry in entries:
                m = _TEMP_RE.fullmatch(entry.name)
                if m and not _alive(int(m[1])):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
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
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(directory: str) -> None:
    """``mkdir -p`` that fsyncs each parent whose entry it adds."""
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
