"""The in-memory backend (fsspec ``memory://``), for tests and examples.

Nothing here is durable beyond the process; create-only is a check-and-set
under a process-wide lock, which is exact within one process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Self

from fsspec.implementations.memory import MemoryFileSystem

from ..store import Location
from ._fsspec import FsspecStore

__all__ = ["MemoryStore"]

_LOCK = threading.Lock()


class MemoryStore(FsspecStore):
    """Objects in fsspec's process-wide memory filesystem: ``memory://name``."""

    scheme = "memory"
    durable = False

    def __init__(self, name: str) -> None:
        fs = MemoryFileSystem(skip_instance_cache=True)
        root = fs._strip_protocol(name).rstrip("/") or "/"
        super().__init__(fs, root, description=f"memory://{root.lstrip('/')}")

    @classmethod
    def from_location(cls, location: Location) -> Self:
        return cls(f"{location.netloc}{location.path}")

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        path = self.path(key)
        with _LOCK:
            if self._fs.exists(path):
                return False
            self._fs.pipe_file(path, data)
            return True
