"""One-off: what the format-2 logical digest costs, next to writing the same table.

``PYTHONPATH=src python -m benchmarks.digest_cost [--events N] [--repeat R]``

Prints ms per 1M events (best and median of ``R`` runs, wall clock and
process CPU) for:

* ``logical_digest`` of a ``make_table`` table (as the write path gets it),
  threaded (the default above a few MiB) and forced serial;
* the same on the table re-chunked as a Parquet read gives it back;
* the raw SHA-256 floor: ``hashlib.sha256`` over the table's buffers;
* ``pq.write_table`` of the same table to a ``BytesIO`` (zstd, coldtier's
  codec default; and snappy), the cost the digest is added to;
* one part as the engine encodes it (``_engine.put.encode``: the digest on
  the shared hashing threads while the Parquet writer runs, the footer last)
  against ``_format.encode`` of the same part with a digest already known:
  the wall time the digest still adds when a second core is free.

Not a unit test and not one of the ``python -m benchmarks`` cases.  The
machine is often shared: read the load average printed with the figures.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import io
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC

import pyarrow as pa
import pyarrow.parquet as pq

from coldtier import _digest, _format
from coldtier._engine.put import encode as engine_encode
from coldtier._engine.settings import Settings
from coldtier._format import SCHEMA
from coldtier._types import Window
from coldtier.testing._data import make_table


def timed(fn: Callable[[], object], repeat: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    fn()  # warm: page in the buffers, import lazily loaded kernels
    for _ in range(repeat):
        gc.collect()
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return walls, cpus


def raw_sha256(table: pa.Table) -> None:
    h = hashlib.sha256()
    for column in table.columns:
        for chunk in column.chunks:
            for buf in chunk.buffers():
                if buf is not None:
                    h.update(buf)
    h.digest()


def write(table: pa.Table, compression: str) -> None:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression=compression)


def serial(table: pa.Table) -> None:
    saved = _digest._PARALLEL_ROWS
    _digest._PARALLEL_ROWS = 1 << 62
    try:
        _digest.logical_digest(table)
    finally:
        _digest._PARALLEL_ROWS = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    n, repeat = args.events, args.repeat

    table = make_table(n).cast(SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", row_group_size=131_072)
    reread = pq.read_table(io.BytesIO(sink.getvalue()))
    assert _digest.logical_digest(reread) == _digest.logical_digest(table)

    buffer_bytes = sum(b.size for c in table.columns for ch in c.chunks for b in ch.buffers() if b is not None)
    print(f"{n:,} events, {buffer_bytes / 2**20:.0f} MiB of Arrow buffers, {os.cpu_count()} CPUs")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(f"{'ms per 1M events':<46} {'best':>8} {'median':>8} {'cpu best':>9}")
    scale = 1_000_000 / n * 1000
    cases: list[tuple[str, Callable[[], object]]] = [
        ("logical_digest (threaded)", lambda: _digest.logical_digest(table)),
        ("logical_digest (serial)", lambda: serial(table)),
        ("logical_digest, Parquet-read chunking", lambda: _digest.logical_digest(reread)),
        ("sha256 of all Arrow buffers (floor)", lambda: raw_sha256(table)),
        ("pq.write_table to BytesIO, zstd", lambda: write(table, "zstd")),
        ("pq.write_table to BytesIO, snappy", lambda: write(table, "snappy")),
    ]
    part = table.slice(0, min(n, Settings().object_events))
    ts = part.column("timestamp")
    own = Window(ts[0].as_py().replace(tzinfo=UTC), ts[len(ts) - 1].as_py().replace(tzinfo=UTC))
    meta = _format.footer("acme", own, part.num_rows, None, None, digest=_digest.logical_digest(part))
    settings = Settings()
    cases += [
        (f"one part ({part.num_rows:,}): _format.encode only", lambda: _format.encode(part, meta, **settings.encoding())),
        (f"one part ({part.num_rows:,}): engine encode + digest", lambda: engine_encode("acme", own, part, None, None, settings=settings)),
    ]
    results = {}
    for name, fn in cases:
        walls, cpus = timed(fn, repeat)
        results[name] = min(walls)
        print(
            f"{name:<46} {min(walls) * scale:8.1f} {statistics.median(walls) * scale:8.1f}"
            f" {min(cpus) * scale:9.1f}"
        )
    print()
    digest, zstd = results["logical_digest (threaded)"], results["pq.write_table to BytesIO, zstd"]
    print(f"digest / write_table(zstd): {digest / zstd:.0%}")
    only, both = (results[name] for name, _ in cases[-2:])
    print(f"wall the digest adds to encoding one part (digest beside the writer): {both / only - 1:+.0%}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
