"""Input as :class:`~coldtier.Event` objects: checked and converted column-wise."""

from __future__ import annotations

import array
import math
import uuid
from collections.abc import Iterable
from dataclasses import fields, is_dataclass
from datetime import datetime, timezone
from itertools import repeat
from operator import attrgetter, sub
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._errors import InvalidRequest
from .._format import SCHEMA
from .._types import Event
from .arrow import check_unique_ids
from .window import EPOCH, Window

__all__ = ["from_events"]


def _json(value: Any, what: str, index: int, event_id: object) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequest(f"event #{index} ({event_id}): {what} is not JSON-serialisable: {exc}") from None


#: Time zones whose ``utcoffset`` is never ``None`` (anything else is checked per event).
_FIXED_ZONES = (timezone, ZoneInfo)


def from_events(tenant_id: str, win: Window, events: Iterable[object]) -> pa.Table:
    """Validate ``Event`` objects and convert them column-wise to :data:`SCHEMA`.

    Every check of DESIGN.md §2.6 runs before any column is built.  The work is
    column-wise: each field is gathered and checked for the whole batch at C
    speed (``map``, sets of types, ``orjson``); only a batch that fails a check
    is walked event by event, to name the first offending event.
    """
    evs: list[Any] = events if isinstance(events, list) else list(events)
    n = len(evs)
    if n == 0:
        return SCHEMA.empty_table()
    if set(map(type, evs)) != {Event} and not all(isinstance(ev, Event) for ev in evs):
        _name_first_bad(tenant_id, win, evs)
    ids: list[Any] = list(map(attrgetter("id"), evs))
    tenants: list[Any] = list(map(attrgetter("tenant_id"), evs))
    stamps: list[Any] = list(map(attrgetter("timestamp"), evs))
    types: list[Any] = list(map(attrgetter("event_type"), evs))
    entities: list[Any] = list(map(attrgetter("entity_id"), evs))
    versions: list[Any] = list(map(attrgetter("version"), evs))
    kinds = set(map(type, stamps))
    zones = set(map(attrgetter("tzinfo"), stamps)) if all(issubclass(k, datetime) for k in kinds) else {None}
    if (
        set(map(type, ids)) != {uuid.UUID}
        or tenants.count(tenant_id) != n
        or None in zones
        or not all(isinstance(z, _FIXED_ZONES) for z in zones)
        or set(map(type, types)) | set(map(type, entities)) != {str}
        or set(map(type, versions)) != {int}
        or min(versions) < 0
        or max(versions) >= 1 << 64
    ):
        _name_first_bad(tenant_id, win, evs)
    # Aware minus aware is exact (both sides go through utcoffset).
    micros = pa.array(list(map(sub, stamps, repeat(EPOCH))), pa.duration("us")).cast(pa.int64())
    lo, hi = pc.min_max(micros).values()
    if lo.as_py() < win.start_us or hi.as_py() > win.end_us:
        _name_first_bad(tenant_id, win, evs)
    payloads = _json_column(list(map(attrgetter("payload"), evs)))
    metas = _json_column(list(map(attrgetter("metadata"), evs)))
    if payloads is None or metas is None:
        _name_first_bad(tenant_id, win, evs)  # raises for the first value orjson refuses
        # Only values orjson takes one by one but not inside a list (nesting depth) get here.
        payloads = pa.array([orjson.dumps(ev.payload) for ev in evs], pa.binary())
        metas = pa.array([orjson.dumps(ev.metadata) for ev in evs], pa.binary())
    _refuse_non_finite(evs, "payload", payloads)
    _refuse_non_finite(evs, "metadata", metas)
    # dumps(None) is b"null": no metadata is stored as a null, as allsource-core does.
    nulls = pc.equal(metas, pa.scalar(b"null", pa.binary()))
    if pc.any(nulls).as_py():
        metas = pc.if_else(nulls, pa.scalar(None, pa.binary()), metas)
    table = pa.Table.from_arrays(
        [
            _uuid_strings(ids),
            pa.array(types, pa.string()),
            pa.array(entities, pa.string()),
            payloads.cast(pa.string()),
            micros.cast(pa.timestamp("us")),
            metas.cast(pa.string()),
            pa.array(versions, pa.uint64()),
        ],
        schema=SCHEMA,
    )
    check_unique_ids(table)
    return table


def _refuse_non_finite(events: list[Any], field: str, column: pa.Array) -> None:
    """Refuse NaN and infinities, which orjson writes as ``null``: the event would change.

    Only values whose JSON holds ``null`` (other than a bare ``null``) are walked.
    """
    data = column.buffers()[2]
    if data is None or b"null" not in data.to_pybytes():
        return
    hits = pc.and_(pc.match_substring(column, "null"), pc.not_equal(column, pa.scalar(b"null", pa.binary())))
    if not pc.any(hits).as_py():
        return
    for i in pc.indices_nonzero(hits).to_pylist():
        if _non_finite(getattr(events[i], field)):
            raise InvalidRequest(
                f"event #{i} ({events[i].id}): {field} holds NaN or infinity, which JSON cannot represent"
            )


def _non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(map(_non_finite, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_non_finite, value))
    if is_dataclass(value) and not isinstance(value, type):
        return any(_non_finite(getattr(value, f.name)) for f in fields(value))
    return False


def _name_first_bad(tenant_id: str, win: Window, events: list[Any]) -> None:
    """Walk a batch that failed a column-wise check; raise for its first offending event."""
    lo, hi = win.start, win.end
    for i, ev in enumerate(events):
        if not isinstance(ev, Event):
            raise InvalidRequest(f"event #{i} is a {type(ev).__name__}, not a coldtier.Event")
        eid = ev.id
        if type(eid) is not uuid.UUID:
            raise InvalidRequest(f"event #{i}: id {eid!r} is not a uuid.UUID")
        if ev.tenant_id != tenant_id:
            raise InvalidRequest(f"event #{i} ({eid}) belongs to tenant {ev.tenant_id!r}, not {tenant_id!r}")
        ts = ev.timestamp
        if not isinstance(ts, datetime) or ts.tzinfo is None or ts.utcoffset() is None:
            raise InvalidRequest(f"event #{i} ({eid}): timestamp {ts!r} is not a tz-aware datetime")
        if ts < lo or ts > hi:
            raise InvalidRequest(
                f"event #{i} ({eid}): timestamp {ts.isoformat()} is outside the window "
                f"[{lo.isoformat()}, {hi.isoformat()}]"
            )
        if type(ev.event_type) is not str or type(ev.entity_id) is not str:
            raise InvalidRequest(f"event #{i} ({eid}): event_type and entity_id must be str")
        ver = ev.version
        if type(ver) is not int or ver < 0 or ver >= 1 << 64:
            raise InvalidRequest(f"event #{i} ({eid}): version {ver!r} is not an unsigned 64-bit int")
        _json(ev.payload, "payload", i, eid)
        _json(ev.metadata, "metadata", i, eid)


#: Between values in one ``orjson.dumps`` call; compact JSON never holds a raw newline.
_SEPARATOR = orjson.Fragment(b"\n")


def _json_column(values: list[Any]) -> pa.Array | None:
    """Compact JSON of each value as a binary array, from one ``orjson`` call.

    ``orjson.dumps`` costs ~2 µs per call whatever the value (buffer setup),
    and ~0.1 µs per small value inside one call.  So the values are dumped as
    one list with a raw newline fragment between them, ``[v1,\n,v2,\n,...]``,
    and split on ``,\n,`` by Arrow.  ``None`` when orjson refuses the list
    (the caller then names the offending event).
    """
    n = len(values)
    mixed: list[Any] = [_SEPARATOR] * (2 * n)
    mixed[::2] = values
    try:
        out = orjson.dumps(mixed)
    except (TypeError, orjson.JSONEncodeError):
        return None
    bounds = pa.py_buffer(array.array("q", [1, len(out) - 3]))  # inside "[" ... ",\n]"
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, bounds, pa.py_buffer(out)])
    parts = pc.split_pattern(whole, b",\n,").flatten()
    if len(parts) != n:  # a Fragment inside a value held the separator
        return None
    return parts.cast(pa.binary())


def _uuid_strings(ids: list[uuid.UUID]) -> pa.Array:
    """Canonical UUID text of ``ids``, built from one ``orjson`` call.

    orjson writes a list of UUIDs as ``["<36 chars>","<36 chars>",...]``; with
    the quotes and commas removed, the ids sit back to back, 36 bytes each.
    """
    packed = orjson.dumps(ids)[2:-2].replace(b'","', b"")
    offsets = array.array("i", range(0, 36 * len(ids) + 1, 36))
    return pa.StringArray.from_buffers(len(ids), pa.py_buffer(offsets), pa.py_buffer(packed))

