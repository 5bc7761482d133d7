"""What happened for tenant T on day X?  A walkthrough of reading an archive back.

    python examples/day_x.py                          # archives the sample into a temp dir first
    python examples/day_x.py --archive demo-archive --tenant globex --day 2024-03-03

With no ``--archive`` the shipped sample events are archived (one object per
tenant and UTC day, as a retention pass would hand them over) into a temporary
directory.  Then it answers the question the way an operator would: which
objects cover the day, what is in them, who was busiest, and whether the
objects it relied on are intact.  The same answers from a shell are printed
at the end.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.compute as pc

import coldtier
from coldtier.jsonl import load_events

SAMPLE = Path(__file__).parent / "data" / "sample-events.jsonl"


def archive_sample(archive: coldtier.Archive) -> None:
    batches: dict[tuple[str, datetime], list[coldtier.Event]] = defaultdict(list)
    with SAMPLE.open("rb") as lines:
        for event in load_events(lines):
            day = event.timestamp.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            batches[(event.tenant_id, day)].append(event)
    for (tenant, day), events in sorted(batches.items()):
        archive.archive(tenant, day, day + timedelta(days=1) - timedelta(microseconds=1), events)
    print(f"archived {sum(map(len, batches.values()))} sample events in {len(batches)} batches")


def what_happened(archive: coldtier.Archive, tenant: str, day: datetime) -> int:
    end = day + timedelta(days=1) - timedelta(microseconds=1)
    print(f"\n== what happened for {tenant} on {day:%Y-%m-%d} (UTC) ==")

    # 1. Which objects can hold the answer?  Decided from key names alone.
    objs = archive.objects(tenant, start=day, end=end)
    print(f"\n{len(objs)} object(s) overlap the day:")
    for obj in objs:
        print(f"  {obj.key}  ({obj.size} bytes)")
    if not objs:
        print("nothing archived for that day")
        return 0

    # 2. The events: each once, in time order, only those inside the day.
    table = archive.read(tenant, start=day, end=end)
    stamps = table.column("timestamp")
    first, last = pc.min_max(stamps).values()
    print(f"\n{table.num_rows} events between {first.as_py():%H:%M:%S} and {last.as_py():%H:%M:%S}")

    print("\nby event type:")
    kinds = table.group_by("event_type").aggregate([("event_id", "count")]).sort_by("event_type")
    for kind, count in zip(kinds["event_type"].to_pylist(), kinds["event_id_count"].to_pylist(), strict=True):
        print(f"  {kind:15} {count:5}")

    hours = pc.hour(stamps)
    per_hour = table.append_column("hour", hours).group_by("hour").aggregate([("event_id", "count")])
    busiest = per_hour.sort_by([("event_id_count", "descending"), ("hour", "ascending")]).slice(0, 1)
    print(
        f"\nbusiest hour: {busiest['hour'][0].as_py():02d}:00 with {busiest['event_id_count'][0].as_py()} events"
    )

    entities = (
        table.group_by("entity_id")
        .aggregate([("event_id", "count")])
        .sort_by([("event_id_count", "descending"), ("entity_id", "ascending")])
    )
    top = entities["entity_id"][0].as_py()
    print(f"most active entity: {top} ({entities['event_id_count'][0].as_py()} events); its day:")

    # 3. One entity's story, streamed as Event objects.
    for event in archive.events(tenant, start=day, end=end):
        if event.entity_id == top:
            print(f"  {event.timestamp:%H:%M:%S} {event.event_type:15} v{event.version} {event.payload}")

    # 4. Can we trust it?  Re-hash every object of the tenant.
    report = archive.verify(tenant)
    verdict = "intact" if report.ok else f"{len(report.problems)} problem(s)"
    print(f"\nverify {tenant}: {report.objects} objects, {report.events} events, {verdict}")
    for problem in report.problems:
        print(f"  {problem}")

    url = archive.description()
    print("\nthe same from a shell:")
    print(f"  coldtier ls {url} --tenant {tenant} --day {day:%Y-%m-%d}")
    print(f"  coldtier read {url} --tenant {tenant} --day {day:%Y-%m-%d} --format table")
    print(f"  coldtier read {url} --tenant {tenant} --day {day:%Y-%m-%d} -o {tenant}-{day:%Y-%m-%d}.parquet")
    print(f"  coldtier verify {url} --tenant {tenant}")
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--archive", help="archive URL (default: a temp dir filled with the sample)")
    parser.add_argument("--tenant", default="acme")
    parser.add_argument("--day", default="2024-03-02", help="UTC day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    day = datetime.strptime(args.day, "%Y-%m-%d").replace(tzinfo=UTC)
    if args.archive:
        return what_happened(coldtier.open_archive(args.archive), args.tenant, day)
    with tempfile.TemporaryDirectory(prefix="coldtier-day-x-") as tmp:
        archive = coldtier.open_archive(tmp)
        archive_sample(archive)
        code = what_happened(archive, args.tenant, day)
        print("(this temporary archive is removed now; pass --archive DIR to keep one)")
        return code


if __name__ == "__main__":
    sys.exit(main())
