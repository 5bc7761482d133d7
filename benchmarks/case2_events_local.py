"""Case 2: 200,000 ``Event`` objects → local archive.

Baseline: the obvious hand-written route — ``dataclasses.asdict`` +
``json.dumps`` + ``pa.Table.from_pylist`` + ``pq.write_table`` (same codec),
fsync, rename.  It neither validates nor sorts; coldtier does both.
"""

from __future__ import annotations

import dataclasses
import json

import pyarrow as pa

import coldtier
from coldtier._format import SCHEMA
from coldtier.testing import make_events, window_of

from ._common import Row, interleave, median, scratch
from .case1_arrow_local import bare_options, write_table_durably

EVENTS = 200_000


def hand_written(events: list[coldtier.Event], path: str) -> None:
    rows = []
    for event in events:
        row = dataclasses.asdict(event)
        rows.append(
            {
                "event_id": str(row["id"]),
                "event_type": row["event_type"],
                "entity_id": row["entity_id"],
                "payload": json.dumps(row["payload"], separators=(",", ":")),
                "timestamp": row["timestamp"],
                "metadata": None
                if row["metadata"] is None
                else json.dumps(row["metadata"], separators=(",", ":")),
                "version": row["version"],
            }
        )
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    write_table_durably(table, path, **bare_options())


def run(quick: bool = False) -> list[Row]:
    events = make_events("acme", EVENTS)
    start, end = window_of(events)
    reps = 3

    def bare() -> None:
        with scratch("hand") as d:
            hand_written(events, str(d / "x.parquet"))

    def archive() -> None:
        with scratch("coldtier") as d:
            assert coldtier.open_archive(str(d)).archive("acme", start, end, events).events == EVENTS

    times = interleave({"hand-written": bare, "coldtier": archive}, reps, warmup=not quick)
    c, b = median(times["coldtier"]), median(times["hand-written"])
    return [
        Row(
            "2",
            "200k Event objects → local, vs asdict + json.dumps + from_pylist + write_table",
            c,
            b,
            target="target ≤ 0.5",
            passed=c / b <= 0.5,
            samples=times,
        )
    ]
