"""Case 4: streaming 5,000,000 and 20,000,000 events from a RecordBatchReader → local: peak memory.

Each run is a child process (``python -m benchmarks.case4_stream_memory
--child MODE EVENTS DIR``) that generates its stream lazily, 65,536 rows per
batch, so the generator holds one batch at a time; the child reports its own
peak RSS (``VmHWM``); the worst of three runs counts.  ``stream`` hands coldtier the reader; ``table`` reads
the whole stream into one table first, then archives the table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pyarrow as pa

from ._common import Row, scratch

BATCH = 65_536
START_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z
STEP_US = 1_000  # 20M events span ~5.6 hours
_TYPES = ("order.created", "order.paid", "order.shipped", "user.login", "user.updated")


def batches(total: int, seed: int = 0) -> Iterator[pa.RecordBatch]:
    """``total`` events in batches, built vectorised (numpy), nothing kept between batches."""
    import numpy as np
    import pyarrow.compute as pc

    rng = np.random.default_rng(seed)
    hexdigits = np.frombuffer(b"0123456789abcdef", np.uint8)
    dash = np.full((1, 1), ord("-"), np.uint8)
    kinds = pa.array(_TYPES)
    for offset in range(0, total, BATCH):
        n = min(BATCH, total - offset)
        raw = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
        raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
        nibbles = hexdigits[np.stack([raw >> 4, raw & 0x0F], axis=2).reshape(n, 32)]
        d = np.broadcast_to(dash, (n, 1))
        text = np.concatenate(
            [
                nibbles[:, :8],
                d,
                nibbles[:, 8:12],
                d,
                nibbles[:, 12:16],
                d,
                nibbles[:, 16:20],
                d,
                nibbles[:, 20:],
            ],
            axis=1,
        )
        ids = pa.StringArray.from_buffers(
            n, pa.py_buffer(np.arange(0, 36 * (n + 1), 36, dtype=np.int32)), pa.py_buffer(text.tobytes())
        )
        seq = pa.array(np.arange(offset, offset + n, dtype=np.int64))
        amount = pa.array(rng.integers(0, 100_000, size=n) / 100)
        payload = pc.binary_join_element_wise(
            '{"n":', seq.cast(pa.string()), ',"amount":', amount.cast(pa.string()), ',"currency":"EUR"}', ""
        )
        entity = pc.binary_join_element_wise(
            "entity-", pa.array(rng.integers(0, 5_000, size=n)).cast(pa.string()), ""
        )
        meta = pa.array(
            np.where(np.arange(offset, offset + n) % 3 == 0, None, '{"source":"bench"}'), pa.string()
        )
        yield pa.RecordBatch.from_arrays(
            [
                ids,
                kinds.take(pa.array(rng.integers(0, len(_TYPES), size=n))),
                entity,
                payload,
                pa.array(START_US + (offset + np.arange(n, dtype=np.int64)) * STEP_US, pa.timestamp("us")),
                meta,
                pa.array(np.ones(n, dtype=np.uint64)),
            ],
            names=["event_id", "event_type", "entity_id", "payload", "timestamp", "metadata", "version"],
        )


def window(total: int) -> tuple[datetime, datetime]:
    start = datetime.fromtimestamp(START_US / 1e6, UTC)
    end = datetime.fromtimestamp((START_US + total * STEP_US) / 1e6, UTC)
    return start, end


def peak_rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, total: int, directory: str) -> None:
    import coldtier

    first = next(batches(1))
    reader = pa.RecordBatchReader.from_batches(first.schema, batches(total))
    began = time.perf_counter()
    archive = coldtier.open_archive(directory)
    source = reader if mode == "stream" else reader.read_all()
    receipt = archive.archive("acme", *window(total), source)
    assert receipt.events == total, receipt
    print(
        json.dumps(
            {
                "peak_mib": peak_rss_mib(),
                "seconds": time.perf_counter() - began,
                "objects": len(receipt.keys),
                "bytes": receipt.bytes,
            }
        )
    )


def measure(mode: str, total: int) -> dict[str, float]:
    with scratch(f"stream-{mode}") as d:
        out = subprocess.run(
            [sys.executable, "-m", "benchmarks.case4_stream_memory", "--child", mode, str(total), str(d)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run(quick: bool = False) -> list[Row]:
    small, large = (5_000_000, 20_000_000)
    # The peak depends on how the parts in flight happen to overlap in time, and
    # a longer stream has more chances to hit its worst case: the worst of a
    # few runs is the bound to compare, not their median.
    reps = 1 if quick else 3
    streamed = {n: [measure("stream", n) for _ in range(reps)] for n in (small, large)}
    whole = {n: measure("table", n) for n in (small, large)}
    peak = {n: max(r["peak_mib"] for r in streamed[n]) for n in (small, large)}
    rows = []
    for n in (small, large):
        s, t = streamed[n][0], whole[n]
        runs = ", ".join(f"{r['peak_mib']:.0f}" for r in streamed[n])
        rows.append(
            Row(
                "4",
                f"{n // 1_000_000}M events streamed → local: peak RSS, worst of [{runs}] MiB "
                f"({s['seconds']:.0f} s, {s['objects']:.0f} objects), vs read-all-first ({t['seconds']:.0f} s)",
                peak[n],
                t["peak_mib"],
                unit="MiB",
                target="< 1024 MiB",
                passed=peak[n] < 1024,
            )
        )
    growth = peak[large] / peak[small] - 1
    rows.append(
        Row(
            "4",
            f"peak RSS, {large // 1_000_000}M vs {small // 1_000_000}M events streamed (worst runs)",
            peak[large],
            peak[small],
            unit="MiB",
            target="within 10 %",
            passed=abs(growth) <= 0.10,
            note=f"{growth:+.1%}",
        )
    )
    return rows


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "--child":
    child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
