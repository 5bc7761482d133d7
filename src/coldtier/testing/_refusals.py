"""The conformance suite's refusals: bad tenants, events and Arrow input store nothing."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest

from coldtier import Archive, Event, InvalidRequest

from ._backdoor import Backdoor
from ._base import MakeArchive, Suite
from ._data import make_events, window_of

__all__ = ["RefusalTests"]

US = timedelta(microseconds=1)


class RefusalTests(Suite):
    """Part of :class:`~coldtier.testing.ArchiveTests`: what every backend must refuse."""

    @pytest.fixture
    def archive(self, make_archive: MakeArchive) -> Archive:
        return make_archive()

    BAD_TENANTS = ("", ".", "..", "a/b", "../x", "a" * 129, "acmé", "a\x00b", "%2F", "a b", "\uff41cme", 7)

    @pytest.mark.parametrize("tenant", BAD_TENANTS)
    def test_bad_tenant_is_refused(self, archive: Archive, backdoor: Backdoor, tenant: Any) -> None:
        events = make_events("acme", 3)
        with pytest.raises(InvalidRequest, match="tenant"):
            archive.archive(tenant, *window_of(events), events)
        assert backdoor.list_keys() == []

    @pytest.mark.parametrize(
        "case",
        [
            "other-tenant",
            "before-window",
            "after-window",
            "naive-timestamp",
            "naive-start",
            "start-after-end",
            "id-not-uuid",
            "payload-not-json",
            "metadata-not-json",
            "duplicate-id",
            "not-an-event",
            "not-iterable",
            "a-string",
            "negative-version",
        ],
    )
    def test_bad_events_are_refused(self, archive: Archive, backdoor: Backdoor, case: str) -> None:
        events: Any = make_events("acme", 10)
        start, end = window_of(events)
        i = 6
        match case:
            case "other-tenant":
                events[i] = replace(events[i], tenant_id="acme-eu")
            case "before-window":
                start = start + US
            case "after-window":
                end = end - US
            case "naive-timestamp":
                events[i] = replace(events[i], timestamp=events[i].timestamp.replace(tzinfo=None))
            case "naive-start":
                start = start.replace(tzinfo=None)
            case "start-after-end":
                start, end = end, start
            case "id-not-uuid":
                events[i] = replace(events[i], id=str(events[i].id))
            case "payload-not-json":
                events[i] = replace(events[i], payload={"x": object()})
            case "metadata-not-json":
                events[i] = replace(events[i], metadata={1j: 2})
            case "duplicate-id":
                events[i] = replace(events[i], id=events[2].id)
            case "not-an-event":
                events[i] = {"id": "x"}
            case "not-iterable":
                events = 42
            case "a-string":
                events = "events"
            case "negative-version":
                events[i] = replace(events[i], version=-1)
        with pytest.raises(InvalidRequest) as info:
            archive.archive("acme", start, end, events)
        message = str(info.value)
        if case in (
            "other-tenant",
            "naive-timestamp",
            "id-not-uuid",
            "payload-not-json",
            "metadata-not-json",
            "duplicate-id",
            "not-an-event",
            "negative-version",
        ):
            assert f"#{i}" in message, message
        assert backdoor.list_keys() == []

    @pytest.mark.parametrize(
        "case",
        [
            "missing-column",
            "extra-column",
            "bad-uuid",
            "tenant-column",
            "null-type",
            "naive-ns",
            "outside-window",
            "duplicate-id",
        ],
    )
    def test_bad_arrow_is_refused(self, archive: Archive, backdoor: Backdoor, case: str) -> None:
        events = make_events("acme", 10)
        start, end = window_of(events)
        columns: dict[str, Any] = {
            "event_id": pa.array([str(e.id) for e in events]),
            "event_type": pa.array([e.event_type for e in events]),
            "entity_id": pa.array([e.entity_id for e in events]),
            "payload": pa.array(["{}"] * 10),
            "timestamp": pa.array([e.timestamp.replace(tzinfo=None) for e in events], pa.timestamp("us")),
        }
        match case:
            case "missing-column":
                del columns["entity_id"]
            case "extra-column":
                columns["colour"] = pa.array(["red"] * 10)
            case "bad-uuid":
                columns["event_id"] = pa.array([str(e.id) for e in events[:9]] + ["nope"])
            case "tenant-column":
                columns["tenant_id"] = pa.array(["acme"] * 9 + ["acme-eu"])
            case "null-type":
                columns["event_type"] = pa.array([e.event_type for e in events[:9]] + [None])
            case "naive-ns":
                columns["timestamp"] = columns["timestamp"].cast(pa.timestamp("ns"))
            case "outside-window":
                end = end - US
            case "duplicate-id":
                columns["event_id"] = pa.array([str(e.id) for e in events[:9]] + [str(events[0].id)])
        with pytest.raises(InvalidRequest):
            archive.archive("acme", start, end, pa.table(columns))
        assert backdoor.list_keys() == []

    def test_reading_refuses_bad_tenant_and_window(self, archive: Archive) -> None:
        with pytest.raises(InvalidRequest):
            archive.read("../etc")
        with pytest.raises(InvalidRequest):
            archive.objects("acme", start=datetime(2024, 1, 1))
        with pytest.raises(InvalidRequest):
            archive.read("acme", datetime(2024, 2, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC))

    def test_event_type_is_frozen(self) -> None:
        event = make_events("acme", 1)[0]
        with pytest.raises(AttributeError):
            event.version = 2  # type: ignore[misc]
        assert isinstance(event.id, uuid.UUID) and not hasattr(event, "__dict__")
        assert isinstance(event, Event)
