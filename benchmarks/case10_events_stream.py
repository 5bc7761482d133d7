"""Case 10: ``events()`` streaming 1,000,000 events (10 daily objects of 100k) back as ``coldtier.Event``.

Baseline: by hand — ``pq.read_table`` of each of the same files, ``to_pylist``,
and an ``Event`` built per row (``uuid.UUID``, ``orjson.loads`` of payload and
metadata, a UTC timestamp).  It neither dedupes nor checks digests; coldtier
does both.  Memory: the peak RSS of a child process streaming 250k and 1M
events (flat in length means about equal).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, timedelta
from pathlib import Path

import orjson
import pyarrow.parquet as pq

import coldtier

from ._common import Row, cpu_note, interleave, median, scratch
from .case9_reads_at_scale import FIRST, US, fill

DAYS, PER_DAY = 10, 100_000

# The child's own peak: VmHWM of its address space.  ru_maxrss would not do
# on Linux: it keeps the high-water mark of the parent's memory the child was
# forked from, so it reported the benchmark process's RSS, whatever ran before.
_CHILD = """
import sys
from datetime import datetime, timedelta, timezone
import coldtier
first = datetime(2024, 1, 1, tzinfo=timezone.utc)
n = sum(1 for _ in coldtier.open_archive(sys.argv[1]).events("acme", first, first + timedelta(days=int(sys.argv[2]))))
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(n, peak // 1024)
"""


def by_hand(files: list[Path]) -> int:
    loads, n = orjson.loads, 0
    for path in files:
        for row in pq.read_table(path, use_threads=False).to_pylist():
            meta = row["metadata"]
            coldtier.Event(
                uuid.UUID(row["event_id"]),
                row["event_type"],
                row["entity_id"],
                "acme",
                loads(row["payload"]),
                row["timestamp"].replace(tzinfo=UTC),
                None if meta is None else loads(meta),
                row["version"],
            )
            n += 1
    return n


def run(quick: bool = False) -> list[Row]:
    reps = 3
    with scratch("events") as root:
        fill(coldtier.open_archive(str(root)), DAYS, PER_DAY)
        files = sorted(root.glob("acme/*/*.parquet"))
        lo, hi = FIRST, FIRST + timedelta(days=DAYS) - US

        def stream() -> None:
            assert sum(1 for _ in coldtier.open_archive(str(root)).events("acme", lo, hi)) == DAYS * PER_DAY

        times = interleave({"events()": stream, "by hand": lambda: by_hand(files)}, reps, warmup=False)
        peaks = {}
        for days in (DAYS // 4, DAYS):
            out = subprocess.run(
                [sys.executable, "-c", _CHILD, str(root), str(days)], capture_output=True, text=True, check=True
            ).stdout.split()
            peaks[days] = int(out[1])
    c, b = median(times["events()"]), median(times["by hand"])
    small, large = peaks[DAYS // 4], peaks[DAYS]
    return [
        Row(
            "10",
            "events() streaming 1M events; vs pq.read_table + to_pylist + Event by hand",
            c,
            b,
            target="≤ 1.0",
            passed=c / b <= 1.0,
            note=cpu_note("events()", "by hand"),
            samples=times,
        ),
        Row(
            "10",
            f"events() peak RSS streaming 1M vs 250k events (child process) — {large} vs {small} MiB",
            large,
            small,
            unit="MiB",
            target="flat (≤ 1.10)",
            passed=large / small <= 1.10,
        ),
    ]
