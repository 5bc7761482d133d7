"""Hostile input: refused with ``InvalidRequest`` and nothing written, or stored and read back whole.

This extends the conformance suite's matrix (:class:`~coldtier.testing.ArchiveTests`),
which already covers the plain cases (``..``, ``/``, NUL, 129 characters, another
tenant, a microsecond outside the window, naive datetimes, non-JSON objects,
duplicate ids).  Here: look-alike and encoded tenant ids against every API,
timestamps in other zones and units, Arrow streams, huge events and far-away
dates.

A backend's test file subclasses :class:`HostileInputTests` and supplies the
two fixtures of every suite (``make_archive``, ``backdoor``; see
:mod:`coldtier.testing`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from coldtier import ArchiveWriteError, InvalidRequest

from ._backdoor import Backdoor
from ._base import MakeArchive, Suite
from ._checks import written
from ._data import make_events, make_table, window_of

__all__ = ["HostileInputTests"]

US = timedelta(microseconds=1)
AREA = "hostile input"

HOSTILE_TENANTS = [
    "acme/../etc",
    "/acme",
    "acme/",
    "acme\\x",
    "..%2F",
    "%2e%2e",
    "acme%2Fx",
    "acme\n",
    "\nacme",
    " acme",
    "acme ",
    "\u0430cme",  # Cyrillic a
    "acme\u200b",  # zero-width space
    "\u2025",  # two dot leader, looks like ".."
    "\uff0e\uff0e",  # fullwidth full stops
    "acme\uff0fx",  # fullwidth solidus
    "acme\x00",
    "\x00",
    "a" * 129,
    "a" * 10_000,
    "acme:x",
    "acme*",
    "~acme",
    "_coldtier~probe",
    None,
    b"acme",
    ["acme"],
]


class _NoOffset(tzinfo):
    """A time zone that does not know its offset: the datetime is effectively naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


EVENT_CASES = [
    "tenant-other-case",
    "tenant-trailing-space",
    "before-window-other-zone",
    "after-window-other-zone",
    "naive-end",
    "tz-without-offset",
    "payload-bytes",
    "payload-set",
    "payload-int-over-64-bit",
    "payload-non-str-key",
    "metadata-bytes",
    "version-bool",
    "version-2**64",
    "event-type-int",
    "entity-none",
    "id-int",
]


def _arrow(events: list[Any], **overrides: Any) -> pa.Table:
    columns: dict[str, Any] = {
        "event_id": pa.array([str(e.id) for e in events]),
        "event_type": pa.array([e.event_type for e in events]),
        "entity_id": pa.array([e.entity_id for e in events]),
        "payload": pa.array(['{"k":1}'] * len(events)),
        "timestamp": pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")),
    }
    columns.update(overrides)
    return pa.table(columns)


ARROW_CASES = [
    "ns-one-past-end",
    "ms-naive",
    "tenant-column-null",
    "uuid-case-duplicate",
    "uuid-braces",
    "uuid-urn",
    "stream-later-batch-other-tenant",
    "stream-duplicate-across-batches",
    "stream-later-batch-outside-window",
    "payload-not-json",
    "payload-json-nan",
    "metadata-not-json",
    "payload-binary",
]


class HostileInputTests(Suite):
    """Hostile tenant ids, events, Arrow input, huge events and far-away dates against every call."""

    def _refused(self, backdoor: Backdoor, call: Callable[[], Any], match: str | None = None) -> str:
        """``call`` must raise InvalidRequest and leave the storage untouched."""
        before = written(backdoor)
        with pytest.raises(InvalidRequest, match=match) as info:
            call()
        after = written(backdoor)
        self.record(AREA, inputs=1, errors_raised=1, partial_objects=len(set(after) - set(before)))
        assert after == before, f"{set(after) - set(before)} written by a refused call"
        return str(info.value)

    @pytest.mark.parametrize("tenant", HOSTILE_TENANTS, ids=[repr(t)[:20] for t in HOSTILE_TENANTS])
    def test_hostile_tenant_is_refused_by_every_call(
        self, make_archive: MakeArchive, backdoor: Backdoor, tenant: Any
    ) -> None:
        archive = make_archive()
        events = make_events("acme", 3)
        start, end = window_of(events)
        bad_events = [replace(e, tenant_id=tenant) for e in events]
        self._refused(backdoor, lambda: archive.archive(tenant, start, end, bad_events), "tenant")
        self._refused(backdoor, lambda: archive.read(tenant))
        self._refused(backdoor, lambda: archive.objects(tenant))
        self._refused(backdoor, lambda: list(archive.events(tenant)))
        if tenant is not None:  # verify(None) means every tenant
            self._refused(backdoor, lambda: archive.verify(tenant))

    def test_edge_tenants_are_accepted_and_isolated(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        """The boundary of the rule: legal but odd ids store, list and read only their own events."""
        archive = make_archive()
        tenants = ["a" * 128, "..a", "a..", "-", "_", "a.b-c_D", "acme", "acme-eu", "acme.eu"]
        for i, tenant in enumerate(tenants):
            events = make_events(tenant, 5, seed=i)
            archive.archive(tenant, *window_of(events), events)
        assert archive.tenants() == sorted(tenants)
        for i, tenant in enumerate(tenants):
            got = archive.read(tenant).column("event_id").to_pylist()
            assert sorted(got) == sorted(str(e.id) for e in make_events(tenant, 5, seed=i)), tenant
        self.record(
            AREA,
            inputs=len(tenants),
            events_checked=5 * len(tenants),
            note="inputs: calls with a hostile value (each must be InvalidRequest, nothing written) "
            "plus legal edge cases that must round-trip",
        )
        assert archive.verify().ok

    @pytest.mark.parametrize("case", EVENT_CASES)
    def test_hostile_events_are_refused(
        self, make_archive: MakeArchive, backdoor: Backdoor, case: str
    ) -> None:
        archive = make_archive()
        events: list[Any] = make_events("acme", 10)
        start, end = window_of(events)
        i = 4
        ev = events[i]
        match case:
            case "tenant-other-case":
                events[i] = replace(ev, tenant_id="ACME")
            case "tenant-trailing-space":
                events[i] = replace(ev, tenant_id="acme ")
            case "before-window-other-zone":
                # The window is given in +05:30; the event a microsecond before it, in UTC.
                start = start.astimezone(timezone(timedelta(hours=5, minutes=30)))
                events[0] = replace(events[0], timestamp=(start - US).astimezone(UTC))
            case "after-window-other-zone":
                events[-1] = replace(
                    events[-1], timestamp=(end + US).astimezone(ZoneInfo("America/New_York"))
                )
            case "naive-end":
                end = end.replace(tzinfo=None)
            case "tz-without-offset":
                events[i] = replace(ev, timestamp=ev.timestamp.replace(tzinfo=_NoOffset()))
            case "payload-bytes":
                events[i] = replace(ev, payload=b"\x00\x01")
            case "payload-set":
                events[i] = replace(ev, payload={1, 2})
            case "payload-int-over-64-bit":
                events[i] = replace(ev, payload={"n": 2**70})
            case "payload-non-str-key":
                events[i] = replace(ev, payload={1: "x"})
            case "metadata-bytes":
                events[i] = replace(ev, metadata=b"x")
            case "version-bool":
                events[i] = replace(ev, version=True)
            case "version-2**64":
                events[i] = replace(ev, version=2**64)
            case "event-type-int":
                events[i] = replace(ev, event_type=7)
            case "entity-none":
                events[i] = replace(ev, entity_id=None)
            case "id-int":
                events[i] = replace(ev, id=ev.id.int)
        self._refused(backdoor, lambda: archive.archive("acme", start, end, events))

    def test_window_edges_are_inclusive_in_any_zone(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        """The positive control of the cases above: exactly at the edges, in other zones, is accepted."""
        archive = make_archive()
        events = make_events("acme", 10)
        start, end = window_of(events)
        tokyo, ny = ZoneInfo("Asia/Tokyo"), ZoneInfo("America/New_York")
        events[0] = replace(events[0], timestamp=start.astimezone(tokyo))
        events[-1] = replace(events[-1], timestamp=end.astimezone(ny))
        receipt = archive.archive("acme", start.astimezone(ny), end.astimezone(tokyo), events)
        assert receipt.events == 10 and archive.read("acme").num_rows == 10
        self.record(AREA, inputs=1, events_checked=10)

    @pytest.mark.parametrize("case", ARROW_CASES)
    def test_hostile_arrow_is_refused(self, make_archive: MakeArchive, backdoor: Backdoor, case: str) -> None:
        archive = make_archive()
        events = make_events("acme", 10)
        start, end = window_of(events)
        data: Any
        match case:
            case "ns-one-past-end":
                ns = pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")).cast(
                    pa.timestamp("ns", tz="UTC")
                )
                ns = pa.array([*ns.to_pylist()[:-1], None], pa.timestamp("ns", tz="UTC"))
                last = pa.scalar(int(events[-1].timestamp.timestamp() * 1_000_000) * 1000 + 1, pa.int64())
                values = ns.cast(pa.int64()).fill_null(last)
                data = _arrow(events, timestamp=values.cast(pa.timestamp("ns", tz="UTC")))
            case "ms-naive":
                data = _arrow(
                    events,
                    timestamp=pa.array(
                        [e.timestamp.replace(tzinfo=None) for e in events], pa.timestamp("ms")
                    ),
                )
            case "tenant-column-null":
                data = _arrow(events, tenant_id=pa.array(["acme"] * 9 + [None], pa.string()))
            case "uuid-case-duplicate":
                ids = [str(e.id) for e in events]
                ids[7] = ids[2].upper()
                data = _arrow(events, event_id=pa.array(ids))
            case "uuid-braces":
                ids = [str(e.id) for e in events]
                ids[3] = "{" + ids[3] + "}"
                data = _arrow(events, event_id=pa.array(ids))
            case "uuid-urn":
                ids = [str(e.id) for e in events]
                ids[3] = "urn:uuid:" + ids[3]
                data = _arrow(events, event_id=pa.array(ids))
            case "stream-later-batch-other-tenant":
                table = _arrow(events, tenant_id=pa.array(["acme"] * 9 + ["acme-eu"]))
                data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
            case "stream-duplicate-across-batches":
                ids = [str(e.id) for e in events]
                ids[8] = ids[1]
                table = _arrow(events, event_id=pa.array(ids))
                data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
            case "stream-later-batch-outside-window":
                end = end - US
                table = _arrow(events)
                data = pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=3))
            case "payload-not-json":
                data = _arrow(events, payload=pa.array(['{"k":1}'] * 9 + ['{"k":']))
            case "payload-json-nan":
                data = _arrow(events, payload=pa.array(['{"k":1}'] * 9 + ['{"k":NaN}']))
            case "metadata-not-json":
                data = _arrow(events, metadata=pa.array([None] * 9 + ["not json"]))
            case "payload-binary":
                data = _arrow(events, payload=pa.array([b"\xff\xfe"] * 10, pa.binary()))
        self._refused(backdoor, lambda: archive.archive("acme", start, end, data))

    def test_event_larger_than_an_object_is_refused_before_anything_is_written(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        archive = make_archive(max_object_bytes=64 * 1024, object_events=10)
        events = make_events("acme", 40)
        events[20] = replace(
            events[20], payload={"blob": os.urandom(160_000).hex()}
        )  # 320 KB, incompressible
        message = self._refused(
            backdoor, lambda: archive.archive("acme", *window_of(events), events), "max_object_bytes"
        )
        assert "#20" in message or str(events[20].id) in message, message

    def test_huge_but_legal_payload_round_trips(self, make_archive: MakeArchive, backdoor: Backdoor) -> None:
        archive = make_archive()
        events = make_events("acme", 3)
        blob = "x" * (8 * 2**20)  # 8 MiB of one JSON string
        events[1] = replace(events[1], payload={"blob": blob, "nested": [[[[[[[[[[]]]]]]]]]]})
        archive.archive("acme", *window_of(events), events)
        back = {e.id: e for e in archive.events("acme")}
        assert back[events[1].id].payload["blob"] == blob
        self.record(AREA, inputs=1, events_checked=3)

    @pytest.mark.parametrize(
        "start",
        [
            datetime(1, 1, 1, tzinfo=UTC),
            datetime(999, 12, 31, 23, 59, tzinfo=UTC),
            datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
            datetime(9999, 12, 31, 23, 58, tzinfo=UTC),
        ],
        ids=["year-1", "year-999", "before-epoch", "year-9999"],
    )
    def test_far_away_dates_are_stored_where_they_can_be_read(
        self, make_archive: MakeArchive, backdoor: Backdoor, start: datetime
    ) -> None:
        """Either refused up front, or archived and readable: never stored and then invisible."""
        archive = make_archive()
        events = make_events("acme", 5, start=start, step=timedelta(seconds=3))
        try:
            receipt = archive.archive("acme", *window_of(events), events)
        except InvalidRequest:
            assert written(backdoor) == []
            self.record(AREA, inputs=1, errors_raised=1)
            return
        got = archive.read("acme").column("event_id").to_pylist()
        listed = [o.key for o in archive.objects("acme")]
        lost = len({str(e.id) for e in events} - set(got))
        self.record(AREA, inputs=1, events_checked=5, events_lost=lost)
        assert listed == list(receipt.keys), "stored under a key that listing never finds"
        assert lost == 0

    def test_nan_and_infinity_in_a_payload_are_refused(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        """JSON has no NaN or infinity; storing them as null would change the event silently."""
        archive = make_archive()
        for value in (math.nan, math.inf, -math.inf):
            events = make_events("acme", 5)
            events[3] = replace(events[3], payload={"reading": [1.0, value]})

            def call(events: list[Any] = events) -> object:
                return archive.archive("acme", *window_of(events), events)

            message = self._refused(backdoor, call)
            assert "#3" in message, message

    def test_stream_part_too_large_is_a_clear_error(
        self, make_archive: MakeArchive, backdoor: Backdoor
    ) -> None:
        """A stream's part that outgrows max_object_bytes is ArchiveWriteError, not an internal exception."""
        archive = make_archive(max_object_bytes=50_000, object_events=2_000)
        table = make_table(5_000)
        ts = table.column("timestamp")
        start, end = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
        with pytest.raises(ArchiveWriteError, match="object_events"):
            archive.archive("acme", start, end, table.to_reader(max_chunksize=500))
        self.record(AREA, inputs=1, errors_raised=1)
        assert written(backdoor) == []
