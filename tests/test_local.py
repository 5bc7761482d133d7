"""The local reference backend: the shipped suites plus durability specifics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fsspec.implementations.local import LocalFileSystem

import coldtier
from coldtier.testing import (
    ArchiveTests,
    FsspecBackdoor,
    HostileInputTests,
    ModelTests,
    make_events,
    window_of,
)
from coldtier.testing._checks import RESERVED_PREFIX
from tests._reliability import Figures


class LocalRig:
    backend_name = "local"

    @pytest.fixture
    def make_archive(self, tmp_path: Path):
        root = tmp_path / "archive"
        root.mkdir()  # an archive's root exists (a missing one is ArchiveNotFound), as a bucket does
        return lambda **options: coldtier.open_archive(str(root), **options)

    @pytest.fixture
    def backdoor(self, tmp_path: Path) -> FsspecBackdoor:
        return FsspecBackdoor(LocalFileSystem(), (tmp_path / "archive").as_posix())


class TestLocal(LocalRig, ArchiveTests):
    pass


class TestLocalModel(LocalRig, Figures, ModelTests):
    pass


class TestLocalHostile(LocalRig, Figures, HostileInputTests):
    pass


class TestLocalFileURL(TestLocal):
    """The same suite through a file:// URL."""

    @pytest.fixture
    def make_archive(self, tmp_path: Path):
        (tmp_path / "archive").mkdir()
        url = (tmp_path / "archive").as_uri()
        return lambda **options: coldtier.open_archive(url, **options)


def test_description_is_file_url(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    assert archive.description() == tmp_path.resolve().as_uri()


def test_stale_temp_files_of_dead_writers_are_swept(tmp_path: Path) -> None:
    events = make_events("acme", 10)
    start, end = window_of(events)
    month = tmp_path / "acme" / f"{start:%Y-%m}"
    month.mkdir(parents=True)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    stale = month / f".~coldtier.{int(dead.stdout)}.00ff.tmp"
    stale.write_bytes(b"partial")
    mine = month / f".~coldtier.{os.getpid()}.0aaa.tmp"
    mine.write_bytes(b"in flight")
    coldtier.open_archive(str(tmp_path)).archive("acme", start, end, events)
    assert not stale.exists()
    assert mine.exists()  # a live writer's temp file is left alone
    assert coldtier.open_archive(str(tmp_path)).objects("acme")  # temp files are never listed


KILLED_WRITER = textwrap.dedent(
    """
    import sys, coldtier
    from coldtier.testing._data import make_table
    table = make_table(600_000)
    ts = table.column("timestamp")
    start, end = ts[0].as_py(), ts[-1].as_py()
    from datetime import timezone
    archive = coldtier.open_archive(sys.argv[1], object_events=50_000, workers=1)
    print("ready", flush=True)
    archive.archive("acme", start.replace(tzinfo=timezone.utc), end.replace(tzinfo=timezone.utc), table)
    print("done", flush=True)
    """
)


@pytest.mark.parametrize("delay", [0.05, 0.3, 0.8])
def test_killed_writer_leaves_no_partial_object(tmp_path: Path, delay: float) -> None:
    """SIGKILL mid-archive: every object under a final key is complete and named by its hash."""
    root = tmp_path / "archive"
    root.mkdir()  # the archive's root exists before the writer starts (a missing one is ArchiveNotFound)
    with subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root)], stdout=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    archive = coldtier.open_archive(str(root))
    report = archive.verify()
    assert report.ok, report.problems
    for obj in archive.objects("acme"):
        assert obj.key.endswith(".parquet")
    # A fresh process completes the batch; every event is there exactly once.
    rerun = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(root)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    table = archive.read("acme")
    assert table.num_rows == 600_000
    assert archive.verify().ok
    leftovers = [
        p
        for p in root.rglob("*")
        if p.is_file()
        and not p.name.endswith(".parquet")
        and not p.relative_to(root).parts[0].startswith(RESERVED_PREFIX)  # the ledger's receipts
    ]
    assert leftovers == []
