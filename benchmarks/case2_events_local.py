"""Case 2: 200,000 ``Event`` objects → local archive.

Baseline: what a careful user writes by hand — one Python list per column,
``orjson.dumps`` for the payload and metadata, ``pa.table`` with the stored
schema, then case 1's route (``write_table`` with coldtier's writer
properties, fsync, rename, directory fsync).  It neither validates nor sorts;
coldtier does both.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

import coldtier
from coldtier._format import SCHEMA
from coldtier.testing import make_events, window_of

from ._common import Row, cpu_note, interleave, median, scratch
from .case1_arrow_local import exact_options, write_table_durably

EVENTS = 200_000


def hand_written(events: list[coldtier.Event], path: str) -> None:
    dumps = orjson.dumps
    ids, types, entities, payloads, stamps, metadata, versions = [], [], [], [], [], [], []
    for e in events:
        ids.append(str(e.id))
        types.append(e.event_type)
        entities.append(e.entity_id)
        payloads.append(dumps(e.payload).decode())
        stamps.append(e.timestamp)
        metadata.append(None if e.metadata is None else dumps(e.metadata).decode())
        versions.append(e.version)
    table = pa.table([ids, types, entities, payloads, stamps, metadata, versions], schema=SCHEMA)
    write_table_durably(table, path, **exact_options())


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
            "200k Event objects → local, vs column lists + orjson.dumps + pa.table + case 1's route",
            c,
            b,
            target="≤ 1.00",
            passed=c / b <= 1.00,
            note=cpu_note("coldtier", "hand-written"),
            samples=times,
        )
    ]
