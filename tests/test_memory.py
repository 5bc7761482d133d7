"""The memory backend runs the shipped suites unchanged."""

from __future__ import annotations

import uuid

import pytest
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier.testing import ArchiveTests, FsspecBackdoor, HostileInputTests, ModelTests
from tests._reliability import Figures


class MemoryRig:
    backend_name = "memory"

    @pytest.fixture
    def name(self) -> str:
        return f"suite-{uuid.uuid4().hex}"

    @pytest.fixture
    def make_archive(self, name: str):
        return lambda **options: coldtier.open_archive(f"memory://{name}", **options)

    @pytest.fixture
    def backdoor(self, name: str) -> FsspecBackdoor:
        return FsspecBackdoor(MemoryFileSystem(skip_instance_cache=True), f"/{name}")


class TestMemory(MemoryRig, ArchiveTests):
    pass


class TestMemoryModel(MemoryRig, Figures, ModelTests):
    pass


class TestMemoryHostile(MemoryRig, Figures, HostileInputTests):
    pass


@pytest.mark.parametrize("workers", [2, 3, 4])
def test_many_small_parts_never_hang_the_pipeline(workers: int) -> None:
    """Encoders gated by part index: hundreds of parts on few threads all finish."""
    import threading

    from coldtier.testing import make_events, window_of

    events = make_events("acme", 600)
    archive = coldtier.open_archive(f"memory://pipeline-{uuid.uuid4().hex}", object_events=2, workers=workers)
    outcome: list[object] = []
    worker = threading.Thread(
        target=lambda: outcome.append(archive.archive("acme", *window_of(events), events)), daemon=True
    )
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "archive hung"
    (receipt,) = outcome
    assert receipt.events == 600 and len(receipt.keys) == 300  # type: ignore[attr-defined]
    assert archive.read("acme").num_rows == 600
