"""The backdoor a suite reads and writes storage through, bypassing coldtier."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Backdoor", "FsspecBackdoor"]


class Backdoor(Protocol):
    """Direct access to a backend's storage, bypassing coldtier.

    Keys are relative to the archive's root, as in :attr:`Receipt.keys`.
    """

    def list_keys(self) -> list[str]:
        """Every stored object under the root (sorted): temp files, dot-files and canaries included."""

    def get(self, key: str) -> bytes:
        """The raw bytes of one object."""

    def put(self, key: str, data: bytes) -> None:
        """Write (or overwrite) one object unconditionally."""


class FsspecBackdoor:
    """A :class:`Backdoor` over any fsspec filesystem (use an instance of your own)."""

    def __init__(self, fs: Any, root: str) -> None:
        self.fs = fs
        self.root = root.rstrip("/")

    def list_keys(self) -> list[str]:
        try:
            found = self.fs.find(self.root)
        except FileNotFoundError:
            return []
        return sorted(p[len(self.root) + 1 :] for p in found)

    def get(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(f"{self.root}/{key}")
        return data

    def put(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)  # local disk needs the directories
        self.fs.pipe_file(path, data)
