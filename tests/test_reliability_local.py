"""Disk faults on the local backend: full disk, read-only directory, permission denied.

Every fault is real, produced by the kernel:

* **full disk**: a 1 MiB tmpfs mounted for the test (``ENOSPC``), when the
  machine allows ``mount``; always also a writer process whose file size is
  capped with ``RLIMIT_FSIZE`` (``EFBIG`` mid-write, or death by ``SIGXFSZ``
  mid-write, leaving a partial temp file behind);
* **read-only directory**: the tmpfs remounted read-only (``EROFS``), and a
  directory of mode 0555 written by an unprivileged process (``EACCES``);
* **permission denied**: a writer process running as ``nobody`` (root ignores
  file modes, so the test drops privileges in the child) in a root-owned
  directory, and an existing object it may not read.

Each must give a clear :class:`~coldtier.ArchiveWriteError` (or succeed, when
the object is already complete), leave no partial object under a final key,
and leave no temp file once the next writer has started there; a retry once
the fault is gone stores every event exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fsspec.implementations.local import LocalFileSystem

import coldtier
from coldtier.testing import FsspecBackdoor
from coldtier.testing._data import make_table
from tests._reliability import check_store, tally, timed

ROOT = Path(__file__).resolve().parents[1]
NOBODY = 65534
AREA = "disk faults (local)"


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    """A world-readable scratch directory (pytest's tmp_path is 0700, closed to ``nobody``)."""
    path = Path(tempfile.mkdtemp(prefix="coldtier-disk-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def batch(workdir: Path) -> tuple[Path, pa.Table]:
    """~2.4 MiB of Parquet: 8 objects of ~300 KiB with ``object_events=5000``."""
    table = make_table(40_000, seed=7)
    path = workdir / "batch.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    path.chmod(0o644)
    return path, table


def _window(table: pa.Table) -> tuple[Any, Any]:
    ts = table.column("timestamp")
    return ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[bool]:
    """Mount a tmpfs of ``size`` at ``path``; yields False when the machine does not allow it."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        yield False
        return
    if done.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)


def _remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True, capture_output=True)


def _unprivileged() -> tuple[str, ...]:
    """Writer flags that take away root's power to ignore file modes (none needed otherwise)."""
    return ("--as-user", str(NOBODY)) if os.geteuid() == 0 else ()


def _write(
    root: Path, batch: Path, *flags: str, options: dict[str, Any] | None = None, **popen: Any
) -> tuple[int, dict[str, Any]]:
    """Run the writer process; its exit status and its ``done``/``error`` JSON."""
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "COLDTIER_WRITER_OPTIONS": json.dumps(options or {"object_events": 5_000, "workers": 2}),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.crash_writer", str(root), str(batch), "acme", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **popen,
    )
    for line in proc.stdout.splitlines():
        if line.startswith(("done ", "error ")):
            kind, _, payload = line.partition(" ")
            return proc.returncode, {"kind": kind, **json.loads(payload)}
    return proc.returncode, {"kind": "none", "stderr": proc.stderr[-2000:]}


def _after_fault(root: Path, table: pa.Table, error: str | None, *, fix: Any = None) -> None:
    """The checks every fault ends with, and the retry once the fault is gone."""
    store = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
    tally(AREA, "local", faults=1, errors_raised=error is not None, partial_objects=len(store.partial))
    assert store.partial == [], store.partial
    if fix is not None:
        fix()
    archive = coldtier.open_archive(str(root), object_events=5_000)
    receipt = archive.archive("acme", *_window(table), table)
    got = archive.read("acme").column("event_id").to_pylist()
    lost = len(set(table.column("event_id").to_pylist()) - set(got))
    after = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
    tally(
        AREA, "local", trials=1, events_checked=len(got), events_lost=lost, partial_objects=len(after.partial)
    )
    assert lost == 0 and len(got) == len(set(got)) == table.num_rows
    assert archive.verify().ok
    assert after.partial == [] and after.other == [], after  # no temp file survives the next start
    assert set(receipt.keys) <= set(after.final)


def _assert_clear(result: dict[str, Any], *reasons: str) -> str:
    assert result["kind"] == "error", result
    assert result["type"] == "ArchiveWriteError", result
    message: str = result["message"]
    assert "keep the originals" in message or "could not be confirmed" in message, message
    assert any(r in message for r in reasons), message
    return message


# -- full disk -----------------------------------------------------------------

ONE_OBJECT = {"object_events": 1_000_000}


def test_full_tmpfs_is_a_clear_error_and_a_retry_after_space_is_freed_completes(
    workdir: Path, batch: tuple[Path, pa.Table]
) -> None:
    path, table = batch
    mount = workdir / "full"
    with timed(AREA, "local"), _tmpfs(mount, "1m") as mounted:
        if not mounted:
            pytest.skip("mount is not permitted here; the RLIMIT_FSIZE tests cover a full disk")
        root = mount / "archive"
        # One object (~2.4 MiB) that cannot fit: nothing under its key, no temp file.
        code, result = _write(root, path, options=ONE_OBJECT)
        assert code == 3
        _assert_clear(result, "No space left")
        store = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        tally(AREA, "local", faults=1, errors_raised=1, partial_objects=len(store.partial))
        assert store.final == [] and store.other == [], store
        # Split into parts: those that fit are whole, the rest fail; once the disk grows a retry completes.
        code, result = _write(root, path)
        assert code == 3
        _assert_clear(result, "No space left")
        _after_fault(root, table, "ENOSPC", fix=lambda: _remount(mount, "size=64m"))


@pytest.mark.parametrize("flags", [(), ("--die-on-xfsz",)], ids=["EFBIG", "SIGXFSZ-kill"])
def test_file_size_limit_mid_write(
    workdir: Path, batch: tuple[Path, pa.Table], flags: tuple[str, ...]
) -> None:
    """RLIMIT_FSIZE: the kernel refuses (or kills the writer) part-way through the object's bytes."""
    path, table = batch
    root = workdir / f"fsize-{'-'.join(flags) or 'efbig'}"
    with timed(AREA, "local"):
        code, result = _write(root, path, "--fsize", str(200_000), *flags, options=ONE_OBJECT)
        store = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        assert store.final == [], store
        if flags:
            assert code == -signal.SIGXFSZ, (code, result)  # killed mid-write
            assert len(store.temp) == 1, store  # the dead writer's partial temp file ...
            assert os.path.getsize(root / store.temp[0]) == 200_000
        else:
            assert code == 3
            _assert_clear(result, "File too large")
            assert store.other == [], store
        _after_fault(root, table, None if flags else "EFBIG")  # ... is swept by the next writer


# -- read-only directory -----------------------------------------------------------


@pytest.mark.parametrize("existing", [False, True], ids=["new-tenant", "existing-month"])
def test_read_only_filesystem(workdir: Path, batch: tuple[Path, pa.Table], existing: bool) -> None:
    path, table = batch
    mount = workdir / f"ro-{existing}"
    with timed(AREA, "local"), _tmpfs(mount, "64m") as mounted:
        if not mounted:
            pytest.skip("mount is not permitted here; the mode-0555 test covers a read-only directory")
        root = mount / "archive"
        if existing:
            _write(root, path, options={"object_events": 39_000})  # leaves an object and the month dir
        before = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        _remount(mount, "ro")
        code, result = _write(root, path)
        assert code == 3
        _assert_clear(result, "Read-only file system")
        after = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        assert after.final == before.final and after.other == []
        _after_fault(root, table, "EROFS", fix=lambda: _remount(mount, "rw"))


@pytest.mark.parametrize("existing", [False, True], ids=["new-tenant", "existing-month"])
def test_read_only_directory_mode(workdir: Path, batch: tuple[Path, pa.Table], existing: bool) -> None:
    """A directory of mode 0555, written by a process without root's override."""
    path, table = batch
    root = workdir / f"mode-{existing}"
    root.mkdir()
    with timed(AREA, "local"):
        if existing:
            _write(root, path)
            for directory in (root, root / "acme", *root.glob("acme/*")):
                directory.chmod(0o555)
        else:
            root.chmod(0o555)
        before = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        # The second case must still fail: the objects exist, so the retry only confirms them.
        code, result = _write(root, path, *_unprivileged(), options={"object_events": 4_000})
        assert code == 3, result
        _assert_clear(result, "Permission denied")
        after = check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix()))
        assert after.final == before.final and after.other == []

        def fix() -> None:
            for directory in (root, *root.rglob("*")):
                if directory.is_dir():
                    directory.chmod(0o755)

        _after_fault(root, table, "EACCES", fix=fix)


# -- permission denied --------------------------------------------------------------


def test_root_owned_directory_refuses_an_unprivileged_writer(
    workdir: Path, batch: tuple[Path, pa.Table]
) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to create a directory the writer does not own")
    path, table = batch
    root = workdir / "owned"
    root.mkdir(mode=0o755)
    with timed(AREA, "local"):
        code, result = _write(root, path, *_unprivileged())
        assert code == 3
        _assert_clear(result, "Permission denied")
        assert check_store(FsspecBackdoor(LocalFileSystem(), root.as_posix())).final == []
        _after_fault(root, table, "EACCES")


def test_existing_object_that_cannot_be_read_is_not_confirmed(
    workdir: Path, batch: tuple[Path, pa.Table]
) -> None:
    """The object is there but unreadable to this writer: not success, and not touched."""
    path, table = batch
    root = workdir / "unreadable"
    root.mkdir(mode=0o755)
    with timed(AREA, "local"):
        code, result = _write(root, path, options=ONE_OBJECT)
        assert code == 0, result
        (key,) = result["keys"]
        before = (root / key).read_bytes()
        (root / key).chmod(0o000)  # unreadable to any writer that is not root
        for directory in (root, *root.rglob("*")):
            if directory.is_dir():
                directory.chmod(0o777)  # the writer may create temp files, but not read the object
        code, result = _write(root, path, *_unprivileged(), options=ONE_OBJECT)
        assert code == 3, result
        message = _assert_clear(result, "Permission denied")
        assert "could not be confirmed" in message
        (root / key).chmod(0o644)
        assert (root / key).read_bytes() == before  # untouched
        _after_fault(root, table, "EACCES")
