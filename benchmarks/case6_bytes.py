"""Case 6: bytes per event, vs allsource-core's default (snappy, same columns).

Baseline: ``pq.write_table(table, compression="snappy")`` of the same
columns and rows, batched the same way (per tenant and day for the sample,
one file for the generated million).  coldtier's bytes are what its receipts
report (every object, footers included).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import coldtier
from coldtier import _format, _validate
from coldtier.jsonl import load_events

from ._common import Row, sample_table, scratch

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "data" / "sample-events.jsonl"
US = timedelta(microseconds=1)


def snappy_bytes(table: pa.Table) -> int:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    return int(sink.getvalue().size)


def run(quick: bool = False) -> list[Row]:
    rows = []
    batches: dict[tuple[str, datetime], list[coldtier.Event]] = defaultdict(list)
    with SAMPLE.open("rb") as lines:
        for event in load_events(lines, tenant_id=""):
            day = event.timestamp.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            batches[(event.tenant_id, day)].append(event)
    ours = theirs = events = 0
    with scratch("bytes") as d:
        archive = coldtier.open_archive(str(d))
        for (tenant, day), group in sorted(batches.items()):
            end = day + timedelta(days=1) - US
            ours += archive.archive(tenant, day, end, group).bytes
            win = _validate.window(day, end)
            theirs += snappy_bytes(_format.sort_events(_validate.from_events(tenant, win, group)))
            events += len(group)
    rows.append(
        Row(
            "6",
            f"bytes/event, examples/data sample ({events} events, {len(batches)} tenant-days)",
            ours / events,
            theirs / events,
            unit="B",
            target="target ≤ 0.65",
            passed=ours / theirs <= 0.65,
        )
    )
    table = sample_table(1_000_000)
    start, end = datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 3, 2, tzinfo=UTC)
    with scratch("bytes") as d:
        receipt = coldtier.open_archive(str(d)).archive("acme", start, end, table)
    theirs = snappy_bytes(table)
    rows.append(
        Row(
            "6",
            f"bytes/event, make_table 1M events ({len(receipt.keys)} objects vs 1 file)",
            receipt.bytes / table.num_rows,
            theirs / table.num_rows,
            unit="B",
            target="target ≤ 0.65",
            passed=receipt.bytes / theirs <= 0.65,
        )
    )
    return rows
