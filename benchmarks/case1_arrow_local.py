"""Case 1: 1,000,000 events as an Arrow table → local archive.

Baseline: what a careful user writes by hand — ``pq.write_table`` with the
same codec, level and row-group size, to a temp file, fsync, rename.  A second
baseline line uses coldtier's exact Parquet writer properties (per-column
encodings, dictionary and statistics choices), to show which part of the gain
is the encoder settings and which is the engine (parts encoded in parallel).
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

from ._common import CPU, Row, interleave, median, sample_table, scratch

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

    exact = {**_format.writer_options(), "row_group_size": Settings().row_group_events}
    times = interleave(
        {
            "bare": lambda: bare(**bare_options()),
            "bare-exact": lambda: bare(**exact),
            "workers=1": lambda: archive(workers=1),
            "defaults": lambda: archive(),
        },
        reps,
    )
    base = median(times["bare"])
    workers = Settings().workers
    rows = []
    for name, what, limit, label in (
        ("workers=1", "1M events, Arrow → local, workers=1", 1.10, "floor ≤ 1.10"),
        ("defaults", f"1M events, Arrow → local, defaults (workers={workers})", 0.75, "target ≤ 0.75"),
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
                note=f"CPU {median(CPU[name]):.2f} s vs {median(CPU['bare']):.2f} s",
                samples={name: times[name], "bare": times["bare"]},
            )
        )
    exact_t = median(times["bare-exact"])
    rows.append(
        Row(
            "1",
            "  bare write_table with coldtier's exact writer properties (encodings, dictionaries, statistics)",
            exact_t,
            base,
            note=f"CPU {median(CPU['bare-exact']):.2f} s",
        )
    )
    return rows
