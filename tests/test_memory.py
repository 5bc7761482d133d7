"""The memory backend runs the conformance suite unchanged."""

from __future__ import annotations

import uuid

import pytest
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier.testing import ArchiveTests, FsspecBackdoor


class TestMemory(ArchiveTests):
    @pytest.fixture
    def name(self) -> str:
        return f"suite-{uuid.uuid4().hex}"

    @pytest.fixture
    def make_archive(self, name: str):
        return lambda **options: coldtier.open_archive(f"memory://{name}", **options)

    @pytest.fixture
    def backdoor(self, name: str) -> FsspecBackdoor:
        return FsspecBackdoor(MemoryFileSystem(skip_instance_cache=True), f"/{name}")
