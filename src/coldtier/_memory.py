"""The in-memory backend (fsspec ``memory://``), for tests and examples.

Nothing here is durable beyond the process; create-only is a check-and-set
under a process-wide lock, which is exact within one process.
"""

from __future__ import annotations

import threading
from typing import Any

from fsspec.implementations.memory import MemoryFileSystem

from ._fsspec import FsspecArchive
from ._options import ParsedURL

__all__ = ["MemoryArchive"]

_LOCK = threading.Lock()


class MemoryArchive(FsspecArchive):
    """Archive in fsspec's process-wide memory filesystem: ``memory://name``."""

    scheme = "memory"

    def __init__(self, name: str, **options: Any) -> None:
        fs = MemoryFileSystem(skip_instance_cache=True)
        root = fs._strip_protocol(name).rstrip("/") or "/"
        super().__init__(fs, root, description=f"memory://{root.lstrip('/')}", **options)

    @classmethod
    def _from_parsed(cls, parsed: ParsedURL) -> MemoryArchive:
        return cls(f"{parsed.netloc}{parsed.path}", **parsed.options)

    def _create(self, path: str, data: bytes, sha256: str) -> bool:
        with _LOCK:
            if self._fs.exists(path):
                return False
            self._fs.pipe_file(path, data)
            return True
