"""Case 1: 1,000,000 events as an Arrow table → local archive.

Baseline: what a careful user writes by hand — ``pq.write_table`` with
coldtier's exact Parquet writer properties (codec, level, row groups,
per-column encodings, dictionary and statistics choices, page CRCs), single
threaded, to a temp file, fsync, rename, fsync of the directory.  So the
ratio is the engine's cost (validation, sorting, the logical digest, parts),
not a difference of encoder settings.  An information line shows
``write_table`` with pyarrow's default encodings and the same codec.
"""

from __future__ import annotations

import dataclasses
import os
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

import coldtier
from coldtier import _format
from coldtier._engine.settings import Settings

from ._common import Row, cpu_note, interleave, median, sample_table, scratch

EVENTS = 1_000_000
START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)


def write_table_durably(table: pa.Table, path: str, **options: object) -> None:
    """``pq.write_table`` + fsync + rename + fsync of the directory."""
    temp = f"{path}.tmp"
    with open(temp, "wb") as f:
        pq.write_table(table, f, **options)  # type: ignore[arg-type]
        f.flush()
        os.fsync(f.fileno())
    os.rename(temp, path)
    fd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def exact_options() -> dict[str, object]:
    """coldtier's own writer properties, as ``pq.write_table`` keywords: the fair baseline."""
    return {**_format.writer_options(), "row_group_size": Settings().row_group_events}


def bare_options() -> dict[str, object]:
    """The codec and options a user would pass: coldtier's codec, level and row groups."""
    d = dataclasses.asdict(Settings())
    return {
        "compression": d["compression"],
        "compression_level": d["compression_level"],
        "row_group_size": d["row_group_events"],
    }


def run(quick: bool = False) -> list[Row]:
    table = sample_table(EVENTS)
    reps = 3 if quick else 5
    counter = iter(range(10**6))

    def bare(**options: object) -> None:
        with scratch("bare") as d:
            write_table_durably(table, str(d / f"x{next(counter)}.parquet"), **options)

    def archive(**options: object) -> None:
        with scratch("coldtier") as d:
            receipt = coldtier.open_archive(str(d), **options).archive("acme", START, END, table)
            assert receipt.events == EVENTS

    times = interleave(
        {
            "bare": lambda: bare(**exact_options()),
            "bare-defaults": lambda: bare(**bare_options()),
            "workers=1": lambda: archive(workers=1),
            "defaults": lambda: archive(),
        },
        reps,
    )
    base = median(times["bare"])
    workers = Settings().workers
    rows = []
    for name, what, limit, label in (
        ("workers=1", "1M events, Arrow → local, workers=1", 1.20, "floor ≤ 1.20"),
        ("defaults", f"1M events, Arrow → local, defaults (workers={workers})", 1.00, "target ≤ 1.00"),
    ):
        t = median(times[name])
        rows.append(
            Row(
                "1",
                what,
                t,
                base,
                target=label,
                passed=t / base <= limit,
                note=cpu_note(name, "bare") + " (baseline: write_table with coldtier's writer properties)",
                samples={name: times[name], "bare": times["bare"]},
            )
        )
    rows.append(
        Row(
            "1",
            "  (information) write_table with pyarrow's default encodings, same codec and row groups",
            median(times["bare-defaults"]),
            base,
            note=cpu_note("bare-defaults"),
        )
    )
    return rows
