"""Durable keyring files: create-only, fsynced (file and directory), mode 0600."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["create_file", "fsync_dir", "make_dir", "replace_file"]




def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp(path: Path, data: bytes) -> Path:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def create_file(path: Path, data: bytes) -> bool:
    """Write ``path`` create-only and durably (mode 0600); False when it already existed."""
    tmp = _temp(path, data)
    try:
        os.link(tmp, path)
        created = True
    except FileExistsError:
        created = False
    finally:
        tmp.unlink()
    fsync_dir(path.parent)
    return created


def replace_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically and durably (rotation only)."""
    os.replace(_temp(path, data), path)
    fsync_dir(path.parent)


def make_dir(path: Path) -> None:
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        fsync_dir(path.parent)
