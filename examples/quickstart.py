"""Quickstart: archive the shipped sample events, list them, read one day back, verify.

Run with ``make demo`` (or ``python examples/quickstart.py [ARCHIVE_URL]``);
the default archive is the local directory ``./demo-archive``.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import coldtier
from coldtier.jsonl import load_events

SAMPLE = Path(__file__).parent / "data" / "sample-events.jsonl"


def main(url: str) -> int:
    archive = coldtier.open_archive(url)
    print(f"archive: {archive.description()}")

    # Group the sample by tenant and UTC day, as a retention pass would hand it over.
    batches: dict[tuple[str, datetime], list[coldtier.Event]] = defaultdict(list)
    with SAMPLE.open("rb") as lines:
        for event in load_events(lines):
            day = event.timestamp.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            batches[(event.tenant_id, day)].append(event)

    for (tenant, day), events in sorted(batches.items()):
        end = day + timedelta(days=1) - timedelta(microseconds=1)
        receipt = archive.archive(tenant, day, end, events)
        state = "stored" if receipt.created else "already there"
        print(f"  {tenant} {day:%Y-%m-%d}: {receipt.events:5} events, {receipt.bytes:7} bytes, {state}")

    print("\nobjects of acme:")
    for obj in archive.objects("acme"):
        print(f"  {obj.key}  ({obj.size} bytes)")

    day = datetime(2024, 3, 2, tzinfo=UTC)
    table = archive.read("acme", start=day, end=day + timedelta(days=1) - timedelta(microseconds=1))
    print(f"\nwhat happened for acme on {day:%Y-%m-%d}: {table.num_rows} events")
    counts = table.group_by("event_type").aggregate([("event_id", "count")]).sort_by("event_type")
    for kind, count in zip(counts["event_type"].to_pylist(), counts["event_id_count"].to_pylist(), strict=True):
        print(f"  {kind:15} {count}")
    first = next(archive.events("acme", start=day))
    print(f"  first: {first.timestamp:%H:%M:%S} {first.event_type} {first.entity_id} {first.payload}")

    report = archive.verify()
    print(f"\nverify: {report.objects} objects, {report.events} events, "
          f"{'OK' if report.ok else 'PROBLEMS'}")
    for problem in report.problems:
        print(f"  {problem}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "demo-archive"))
