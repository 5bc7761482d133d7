"""An :class:`~coldtier.store.ObjectStore` over any fsspec filesystem: stat, get, list, delete.

A backend built on fsspec subclasses :class:`FsspecStore` and adds its
create-only :meth:`~coldtier.store.ObjectStore.put` (fsspec has no portable
one) and, where its store keeps metadata, a richer :meth:`stat`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fsspec.asyn import sync

from ..store import ArchiveNotFound, Entry, ObjectStore, Stat
from ._deadline import Limits, guarded

__all__ = ["FsspecStore"]

T = TypeVar("T")


class FsspecStore(ObjectStore):
    """Keys live under ``root`` of the fsspec filesystem ``fs``."""

    #: What the location is called in "does not exist" errors.
    location_noun: str = "bucket"

    def __init__(self, fs: Any, root: str, *, description: str, limits: Limits | None = None) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._description = description
        #: Bounds on each request of a remote store (``timeout``, ``max_attempts``); None: local.
        self.limits = limits

    def description(self) -> str:
        return self._description

    def path(self, key: str) -> str:
        """The filesystem path of ``key``."""
        return f"{self._root}/{key}" if key else self._root

    def _key(self, path: str) -> str:
        return path.rstrip("/")[len(self._root) + 1 :]

    def location_exists(self) -> bool:
        """Whether the root (bucket, directory) exists; asked only when a listing finds nothing.

        Note for implementers: the default says yes; override where a
        missing location would otherwise read as an empty archive.
        """
        return True

    def hidden(self, name: str) -> bool:
        """Whether a listed name is the store's own (a temp file) and no reader may see it."""
        return False

    def run(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any, **kwargs: Any) -> T:
        """Run a coroutine function of the filesystem's library on its event loop, from this thread."""
        result: T = sync(self._fs.loop, fn, *args, **kwargs)
        return result

    def bounded(self, what: str, key: str, call: Callable[[], T], *, nbytes: int = 0) -> T:
        """``call()``, a timeout turned into :class:`StoreTimeout` naming ``what`` of ``key``."""
        if self.limits is None:
            return call()
        return guarded(self.limits, f"{what} of {key or '/'}", call, nbytes=nbytes)

    # -- primitives ---------------------------------------------------------------

    def stat(self, key: str) -> Stat:
        info = self.bounded("HEAD", key, lambda: self._fs.info(self.path(key)))
        return Stat(size=int(info["size"]))

    def get(self, key: str) -> bytes:
        data: bytes = self.bounded("GET", key, lambda: self._fs.cat_file(self.path(key)))
        return data

    def list(self, prefix: str) -> list[Entry]:
        try:
            found: list[dict[str, Any]] = self.bounded(
                "LIST", prefix, lambda: self._fs.ls(self.path(prefix), detail=True)
            )
        except FileNotFoundError as exc:
            if not self.location_exists():
                raise ArchiveNotFound(
                    f"{self._description} does not exist (no such {self.location_noun})"
                ) from exc
            return []
        entries = []
        for info in found:
            key = self._key(info["name"])
            if not key or self.hidden(key.rsplit("/", 1)[-1]):
                continue
            entries.append(Entry(key, int(info.get("size") or 0), info.get("type") == "directory"))
        if not entries and not prefix and not self.location_exists():
            raise ArchiveNotFound(f"{self._description} does not exist (no such {self.location_noun})")
        return entries

    def delete(self, key: str) -> None:
        self.bounded("DELETE", key, lambda: self._fs.rm_file(self.path(key)))
