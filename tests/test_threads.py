"""One ``Archive`` shared by many threads (DESIGN.md §8, README "Use it"): what is stored afterwards.

8 threads archive many tenants' batches through one archive at once — small
one-part calls, repeats of the same call racing each other, and a multi-part
batch through the pipeline — and the store is then read back through a
backdoor (the filesystem, not the archive): one object per batch, each
holding exactly its batch's events, every repeat ``created=False`` or the one
that created it.
"""

from __future__ import annotations

import io
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier.testing import FsspecBackdoor
from coldtier.testing._data import make_table

THREADS = 8
TENANTS = 64
START = datetime(2024, 3, 1, tzinfo=UTC)
DAY_US = 86_400_000_000
#: Small parts, so that the one large batch goes through the encode/put pipeline.
OPTIONS = {"object_events": 1_000}
FIRST_US = int((START - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def _batch(seed: int, events: int) -> Any:
    return make_table(events, start_us=FIRST_US, step_us=DAY_US // events, seed=seed)


@pytest.fixture(params=["local", "memory"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[coldtier.Archive, FsspecBackdoor]:
    if request.param == "local":
        root = tmp_path / "archive"
        root.mkdir()
        return coldtier.open_archive(str(root), **OPTIONS), FsspecBackdoor(LocalFileSystem(), root.as_posix())
    name = f"threads-{uuid.uuid4().hex}"
    return coldtier.open_archive(f"memory://{name}", **OPTIONS), FsspecBackdoor(
        MemoryFileSystem(), f"/{name}"
    )


def test_one_archive_shared_by_eight_threads(rig: tuple[coldtier.Archive, FsspecBackdoor]) -> None:
    archive, backdoor = rig
    end = START + timedelta(days=1) - timedelta(microseconds=1)
    batches = {f"t{i:03d}": _batch(i, 20 + i % 7) for i in range(TENANTS)}
    big = _batch(10_000, 3_000)  # split into 3 parts: the pipeline, beside the small calls
    # Every tenant's call three times (racing repeats), the big batch twice, all shuffled together.
    jobs = [(t, batches[t]) for _ in range(3) for t in batches] + [("big", big)] * 2
    jobs = jobs[::2] + jobs[1::2]

    def call(job: tuple[str, Any]) -> tuple[str, coldtier.Receipt]:
        tenant, table = job
        return tenant, archive.archive(tenant, START, end, table)

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(call, jobs))

    created = Counter(t for t, r in results if r.created)
    assert created == Counter({t: 1 for t in [*batches, "big"]}), "each batch created exactly once"
    receipts: dict[str, set[tuple[str, ...]]] = {}
    for tenant, receipt in results:
        receipts.setdefault(tenant, set()).add(receipt.keys)
    assert all(len(keys) == 1 for keys in receipts.values()), "repeats name the same objects"

    stored: dict[str, list[str]] = {}
    for key in backdoor.list_keys():
        stored.setdefault(key.split("/", 1)[0], []).append(key)
    assert sorted(stored) == sorted([*batches, "big"])
    for tenant, keys in stored.items():
        (expected_keys,) = receipts[tenant]
        assert sorted(keys) == sorted(expected_keys)
        expected = big if tenant == "big" else batches[tenant]
        ids = [i for key in keys for i in _ids(backdoor.get(key))]
        assert sorted(ids) == sorted(expected.column("event_id").to_pylist())
    assert len(stored["big"]) == 3


def _ids(data: bytes) -> list[str]:
    ids: list[str] = pq.read_table(io.BytesIO(data), use_threads=False).column("event_id").to_pylist()
    return ids
