"""The conformance suite: one base class, run unchanged against every backend.

Fixtures (see :class:`coldtier.testing.Suite`): ``make_archive`` and ``backdoor``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from coldtier import Archive, IntegrityError, logical_digest

from ._backdoor import Backdoor
from ._base import MakeArchive
from ._checks import RESERVED_PREFIX
from ._data import make_events, window_of
from ._refusals import RefusalTests

__all__ = ["ArchiveTests"]

US = timedelta(microseconds=1)
KEY_RE = re.compile(
    r"(?P<tenant>[A-Za-z0-9._-]+)/(?P<month>\d{4}-\d\d)/archive\.(?P=tenant)\."
    r"(?P<start>\d{4}-\d\d-\d\dT\d{6}Z)-(?P<end>\d{4}-\d\d-\d\dT\d{6}Z)\.(?P<digest>[0-9a-f]{16})\.parquet"
)
#: The stored columns, exactly (DESIGN.md section 3), written out here rather than taken from the engine.
STORED_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us"), nullable=False),
        pa.field("metadata", pa.string(), nullable=True),
        pa.field("version", pa.uint64(), nullable=False),
    ]
)


def _ids(table: pa.Table) -> list[str]:
    return [str(x) for x in table.column("event_id").to_pylist()]


def _footer(data: bytes) -> dict[str, str]:
    md = pq.read_metadata(pa.BufferReader(data)).metadata or {}
    return {k.decode(): v.decode() for k, v in md.items()}


class ArchiveTests(RefusalTests):
    """Conformance tests for a coldtier backend.

    Subclasses provide the fixtures ``make_archive`` (a factory of new archive
    objects on one fresh, empty location per test) and ``backdoor``.
    """

    # -- layout --------------------------------------------------------------

    def test_key_layout_and_digest(self, archive: Archive, backdoor: Backdoor) -> None:
        events = make_events("acme", 50)
        start, end = window_of(events)
        receipt = archive.archive("acme", start, end, events)
        assert receipt.created and receipt.events == 50 and len(receipt.keys) == 1
        (key,) = receipt.keys
        m = KEY_RE.fullmatch(key)
        assert m, key
        assert m["tenant"] == "acme"
        assert m["month"] == f"{start:%Y-%m}"
        assert m["start"] == start.strftime("%Y-%m-%dT%H%M%SZ")
        assert m["end"] == end.strftime("%Y-%m-%dT%H%M%SZ")
        assert [k for k in backdoor.list_keys() if not k.startswith(RESERVED_PREFIX)] == [key]
        data = backdoor.get(key)
        assert len(data) == receipt.bytes
        table = pq.read_table(pa.BufferReader(data))
        digest = logical_digest(table)  # format 2: the events' identity (docs/FORMAT.md), not the bytes'
        assert digest[:16] == m["digest"]
        assert hashlib.sha256(data).hexdigest()[:16] != m["digest"]
        assert table.schema.remove_metadata().equals(STORED_SCHEMA.remove_metadata())
        assert table.num_rows == 50
        stamps = table.column("timestamp").to_pylist()
        assert stamps == sorted(stamps)
        footer = _footer(data)
        assert footer["coldtier.format"] == "2"
        assert footer["coldtier.digest"] == digest
        assert footer["coldtier.tenant_id"] == "acme"
        assert footer["coldtier.events"] == "50"
        assert datetime.fromisoformat(footer["coldtier.start"]) == start
        assert datetime.fromisoformat(footer["coldtier.end"]) == end
        in_file = re.findall(rb"coldtier\.[a-z_]+", data[-2000:])
        assert in_file == sorted(in_file)  # footer keys are written in sorted order

    def test_same_batch_gives_same_bytes_as_event_or_arrow(self, archive: Archive) -> None:
        events = make_events("acme", 20)
        start, end = window_of(events)
        table = archive.read("acme")
        assert table.num_rows == 0
        first = archive.archive("acme", start, end, events)
        stored = archive.read("acme").drop_columns(["tenant_id"])
        again = archive.archive("acme", start, end, stored)
        assert again.keys == first.keys and not again.created

    def test_idempotent_repeat(self, archive: Archive, backdoor: Backdoor) -> None:
        events = make_events("acme", 30)
        start, end = window_of(events)
        first = archive.archive("acme", start, end, events)
        second = archive.archive("acme", start, end, list(reversed(events)))
        assert first.created and not second.created
        assert second.keys == first.keys and second.bytes == first.bytes
        assert [k for k in backdoor.list_keys() if k.endswith(".parquet")] == list(first.keys)

    def test_same_window_different_events_both_kept(self, archive: Archive) -> None:
        a = make_events("acme", 10, seed=1)
        b = make_events("acme", 10, seed=2)
        start, end = window_of(a)
        ra = archive.archive("acme", start, end, a)
        rb = archive.archive("acme", start, end, b)
        assert ra.keys != rb.keys and ra.created and rb.created
        assert len(archive.objects("acme")) == 2
        assert sorted(_ids(archive.read("acme"))) == sorted(str(e.id) for e in a + b)

    def test_concurrent_writers_of_one_batch_settle_to_one_object(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        events = make_events("acme", 200)
        start, end = window_of(events)
        archives = [make_archive() for _ in range(8)]
        barrier = threading.Barrier(8)
        receipts: list[Any] = [None] * 8
        errors: list[BaseException] = []

        def run(i: int) -> None:
            barrier.wait()
            try:
                receipts[i] = archives[i].archive("acme", start, end, events)
            except BaseException as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len({r.keys for r in receipts}) == 1
        assert sum(r.created for r in receipts) >= 1
        assert [k for k in backdoor.list_keys() if k.endswith(".parquet")] == list(receipts[0].keys)
        assert archives[0].read("acme").num_rows == 200

    def test_split_batch_objects_each_complete(self, make_archive: MakeArchive, backdoor: Backdoor) -> None:
        archive = make_archive(object_events=40)
        events = make_events("acme", 100)
        start, end = window_of(events)
        receipt = archive.archive("acme", start, end, events)
        assert len(receipt.keys) == 3 and receipt.events == 100
        counts = []
        for index, key in enumerate(receipt.keys):
            data = backdoor.get(key)
            m = KEY_RE.fullmatch(key)
            assert m, key
            rows = pq.read_table(pa.BufferReader(data))
            assert logical_digest(rows)[:16] == m["digest"]
            footer = _footer(data)
            assert footer["coldtier.part"] == str(index) and footer["coldtier.parts"] == "3"
            # Each part is named by its own rows' window, inside the call's (kept in the footer).
            stamps = rows.column("timestamp").to_pylist()
            assert m["start"] == stamps[0].strftime("%Y-%m-%dT%H%M%SZ")
            assert m["end"] == stamps[-1].strftime("%Y-%m-%dT%H%M%SZ")
            assert datetime.fromisoformat(footer["coldtier.call_start"]) == start
            assert datetime.fromisoformat(footer["coldtier.call_end"]) == end
            counts.append(int(footer["coldtier.events"]))
        assert counts == [40, 40, 20]
        assert archive.read("acme").num_rows == 100
        again = make_archive(object_events=40).archive("acme", start, end, events)
        assert again.keys == receipt.keys and not again.created

    def test_empty_batch_is_a_no_op(self, archive: Archive, backdoor: Backdoor) -> None:
        start = datetime(2024, 1, 1, tzinfo=UTC)
        receipt = archive.archive("acme", start, start, [])
        assert (receipt.keys, receipt.events, receipt.bytes, receipt.created) == ((), 0, 0, False)
        assert backdoor.list_keys() == []

    # -- input forms -----------------------------------------------------------

    def test_arrow_table_and_stream_input(self, archive: Archive) -> None:
        events = make_events("acme", 60)
        start, end = window_of(events)
        table = pa.table(
            {
                "event_id": [str(e.id) for e in events],
                "event_type": [e.event_type for e in events],
                "entity_id": [e.entity_id for e in events],
                "payload": ['{"k": 1}'] * 60,
                "timestamp": pa.array([e.timestamp for e in events], pa.timestamp("ms", tz="Europe/Paris")),
                "tenant_id": ["acme"] * 60,
            }
        )
        receipt = archive.archive("acme", start, end, table)
        assert receipt.events == 60
        got = archive.read("acme")
        assert got.column("payload").to_pylist() == ['{"k": 1}'] * 60  # stored as given
        assert got.column("version").to_pylist() == [1] * 60
        reader = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))
        assert archive.archive("acme", start, end, reader).keys == receipt.keys

    def test_events_round_trip(self, archive: Archive) -> None:
        events = make_events("acme", 25)
        odd = replace(
            events[0],
            payload={"nested": {"list": [1, 2.5, None, True]}, "ü": "☃"},
            metadata={"trace": "x"},
            version=7,
        )
        events[0] = odd
        start, end = window_of(events)
        archive.archive("acme", start, end, events)
        back = list(archive.events("acme"))
        assert sorted(back, key=lambda e: e.id) == sorted(events, key=lambda e: e.id)
        assert all(e.timestamp.tzinfo is not None for e in back)

    # -- reading ---------------------------------------------------------------

    def test_inclusive_window_and_each_event_once(self, archive: Archive) -> None:
        events = make_events("acme", 30)
        start, end = window_of(events)
        archive.archive("acme", start, end, events[:20])
        archive.archive("acme", start, end, events[10:])  # overlaps ids 10..19
        everything = archive.read("acme")
        assert _ids(everything) == [str(e.id) for e in events]
        assert everything.column("tenant_id").to_pylist() == ["acme"] * 30
        t5, t9 = events[5].timestamp, events[9].timestamp
        assert _ids(archive.read("acme", t5, t9)) == [str(e.id) for e in events[5:10]]
        assert _ids(archive.read("acme", t5 + US, t9 - US)) == [str(e.id) for e in events[6:9]]
        assert _ids(archive.read("acme", t5, t5)) == [str(events[5].id)]
        assert [e.id for e in archive.events("acme", t5, t9)] == [e.id for e in events[5:10]]
        assert archive.read("acme", end + US).num_rows == 0

    def test_objects_filtered_by_window_oldest_first(self, archive: Archive) -> None:
        jan = make_events("acme", 5, start=datetime(2024, 1, 10, tzinfo=UTC))
        feb = make_events("acme", 5, start=datetime(2024, 2, 10, tzinfo=UTC))
        archive.archive("acme", *window_of(feb), feb)
        archive.archive("acme", *window_of(jan), jan)
        objs = archive.objects("acme")
        assert [o.start for o in objs] == [jan[0].timestamp, feb[0].timestamp]
        assert all(o.size > 0 and o.digest and o.tenant_id == "acme" for o in objs)
        only_feb = archive.objects("acme", start=datetime(2024, 2, 1, tzinfo=UTC))
        assert [o.key for o in only_feb] == [objs[1].key]
        only_jan = archive.objects("acme", end=datetime(2024, 1, 31, tzinfo=UTC))
        assert [o.key for o in only_jan] == [objs[0].key]

    def test_tenant_prefix_isolation(self, archive: Archive) -> None:
        acme = make_events("acme", 5, seed=1)
        acme_eu = make_events("acme-eu", 5, seed=2)
        archive.archive("acme", *window_of(acme), acme)
        archive.archive("acme-eu", *window_of(acme_eu), acme_eu)
        assert archive.tenants() == ["acme", "acme-eu"]
        assert sorted(_ids(archive.read("acme"))) == sorted(str(e.id) for e in acme)
        assert all(o.tenant_id == "acme" and "/acme/" in f"/{o.key}" for o in archive.objects("acme"))
        assert sorted(_ids(archive.read("acme-eu"))) == sorted(str(e.id) for e in acme_eu)
        assert archive.read("acm").num_rows == 0

    # -- integrity -------------------------------------------------------------

    def test_verify_clean_archive(self, archive: Archive) -> None:
        events = make_events("acme", 40)
        archive.archive("acme", *window_of(events), events)
        report = archive.verify()
        assert report.ok and report.objects == 1 and report.events == 40 and report.problems == ()

    @pytest.mark.parametrize("damage", ["flip", "truncate"])
    def test_verify_catches_damage(self, archive: Archive, backdoor: Backdoor, damage: str) -> None:
        good = make_events("acme", 40, seed=1)
        bad = make_events("acme", 40, seed=2, start=datetime(2024, 5, 1, tzinfo=UTC))
        archive.archive("acme", *window_of(good), good)
        (key,) = archive.archive("acme", *window_of(bad), bad).keys
        data = bytearray(backdoor.get(key))
        if damage == "flip":
            data[len(data) // 2] ^= 0x01
        else:
            del data[len(data) - 100 :]
        backdoor.put(key, bytes(data))
        report = archive.verify("acme")
        assert not report.ok and report.objects == 2
        assert [p.key for p in report.problems] == [key] * len(report.problems)
        assert "digest" in str(report.problems[0])

    def test_refused_create_with_other_content_is_integrity_error(
        self, archive: Archive, backdoor: Backdoor
    ) -> None:
        events = make_events("acme", 10)
        start, end = window_of(events)
        (key,) = archive.archive("acme", start, end, events).keys
        backdoor.put(key, b"not the archived bytes")
        with pytest.raises(IntegrityError, match=re.escape(key)):
            archive.archive("acme", start, end, events)
        assert backdoor.get(key) == b"not the archived bytes"  # never overwritten

    def test_backdoor_lists_every_key(self, backdoor: Backdoor) -> None:
        """The suite's checks are only as good as the backdoor: it must see dot-files and canaries."""
        keys = [
            ".hidden",
            "acme/2024-03/.~coldtier.1.00ff.tmp",
            "acme/2024-03/notes.txt",
            f"{RESERVED_PREFIX}probe/probe-0",
        ]
        for key in keys:
            backdoor.put(key, key.encode())
        assert backdoor.list_keys() == sorted(keys)
        assert [backdoor.get(k) for k in keys] == [k.encode() for k in keys]

    def test_probe(self, archive: Archive, backdoor: Backdoor) -> None:
        archive.probe()
        # Nothing at all is left behind (no canary under the reserved prefix, no
        # temp file, under any name), and the archive's own listing shows nothing.
        assert backdoor.list_keys() == []
        assert archive.tenants() == []
        assert archive.verify().objects == 0

    def test_description_is_a_url(self, archive: Archive) -> None:
        text = archive.description()
        assert "://" in text and "@" not in text
        assert text in repr(archive)
