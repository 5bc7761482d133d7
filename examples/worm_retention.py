"""A retention loop for a WORM bucket: coalesce hourly windows into objects of at least 128 KiB.

Under Object Lock, ``coldtier repack`` cannot delete small objects once it
has merged them, and a cold storage class bills each object at least its
minimum size.  So merge before writing: :class:`coldtier.coalesce.Coalescer`
holds small windows until they encode to ``min_object_bytes`` and archives
them in one call.  The originals of a window are deleted only once a receipt
covers it; until then they stay in the event store::

    python examples/worm_retention.py                 # into a temporary directory
    python examples/worm_retention.py s3://bucket/cold?region=eu-west-1&object_lock_mode=COMPLIANCE&object_lock_days=2555
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import coldtier
from coldtier.coalesce import Coalescer
from coldtier.jsonl import load_events

SAMPLE = Path(__file__).parent / "data" / "sample-events.jsonl"
Window = tuple[datetime, datetime]


def retention_loop(
    archive: coldtier.Archive,
    tenant: str,
    hours: list[tuple[datetime, datetime, list[coldtier.Event]]],
    delete_originals: Callable[[list[Window]], None],
    *,
    min_object_bytes: int = 128 * 1024,
) -> int:
    """Archive ``hours`` of ``tenant`` in coalesced calls; the number of objects written."""
    pending = Coalescer(archive, tenant, min_object_bytes=min_object_bytes)
    objects = 0
    for start, end, events in hours:
        receipt = pending.add(start, end, events)
        if receipt is not None:  # durable: these windows may go from the event store now
            delete_originals(pending.last_flushed)
            objects += len(receipt.keys)
    receipt = pending.flush()  # the end of the pass: whatever is left, even if small
    if receipt is not None:
        delete_originals(pending.last_flushed)
        objects += len(receipt.keys)
    return objects


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="coldtier-worm-")
    with SAMPLE.open("rb") as lines:
        events = [e for e in load_events(lines) if e.tenant_id == "acme"]
    store: dict[Window, list[coldtier.Event]] = {}
    for event in events:  # the "event store": one window per UTC hour
        hour = event.timestamp.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        store.setdefault((hour, hour + timedelta(hours=1) - timedelta(microseconds=1)), []).append(event)
    hours = [(s, e, evs) for (s, e), evs in sorted(store.items())]

    def delete(windows: list[Window]) -> None:
        for window in windows:
            del store[window]

    archive = coldtier.open_archive(url)
    objects = retention_loop(archive, "acme", hours, delete, min_object_bytes=32 * 1024)
    print(f"{len(hours)} hourly windows -> {objects} objects in {archive.description()}; originals left: {len(store)}")
    assert archive.read("acme").num_rows == len(events) and archive.verify().ok


if __name__ == "__main__":
    main()
