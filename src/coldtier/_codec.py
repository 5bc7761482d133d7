"""The object codec: events ⇄ Arrow ⇄ Parquet bytes, digests and key names.

Everything here is pure (no I/O), deterministic, and shared by every backend:
the same tenant, window and events always give the same bytes, hence the same
digest and key.
"""

from __future__ import annotations

import array
import hashlib
import math
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from itertools import repeat
from operator import attrgetter, sub
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._errors import InvalidRequest
from ._types import Event

__all__ = [
    "SCHEMA",
    "UTC",
    "FORMAT_VERSION",
    "KeyInfo",
    "Window",
    "digest_of",
    "encode",
    "from_arrow",
    "from_events",
    "object_key",
    "parse_key",
    "sort_events",
    "validate_tenant",
    "window",
]

FORMAT_VERSION = "1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

#: The stored columns, in allsource-core's order and types (DESIGN.md §3).
SCHEMA = pa.schema(
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
_REQUIRED = tuple(f.name for f in SCHEMA if not f.nullable)
_OPTIONAL_DEFAULTS = {"metadata": None, "version": 1}

_TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUIDS_RE = r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*$"
_KEY_TIME = "%Y-%m-%dT%H%M%SZ"
_KEY_RE = re.compile(
    r"archive\.(?P<tenant>[A-Za-z0-9._-]{1,128})"
    r"\.(?P<start>\d{4}-\d\d-\d\dT\d{6}Z)-(?P<end>\d{4}-\d\d-\d\dT\d{6}Z)"
    r"(?:\.(?P<digest>[0-9a-f]{16}))?\.parquet"
)


def validate_tenant(tenant_id: object) -> str:
    """Return ``tenant_id`` if it is a valid tenant id (allsource-core's rule)."""
    if not isinstance(tenant_id, str) or not _TENANT_RE.fullmatch(tenant_id) or tenant_id in (".", ".."):
        raise InvalidRequest(
            f"invalid tenant_id {tenant_id!r}: need 1-128 characters of [A-Za-z0-9._-], not '.' or '..'"
        )
    return tenant_id


def _aware_utc(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidRequest(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """A validated, inclusive ``[start, end]`` window in UTC."""

    start: datetime
    end: datetime

    @property
    def start_us(self) -> int:
        return (self.start - _EPOCH) // _US

    @property
    def end_us(self) -> int:
        return (self.end - _EPOCH) // _US


def window(start: object, end: object) -> Window:
    """Validate an inclusive window: tz-aware datetimes with ``start <= end``."""
    s = _aware_utc(start, "start")
    e = _aware_utc(end, "end")
    if s > e:
        raise InvalidRequest(f"start {s.isoformat()} is after end {e.isoformat()}")
    return Window(s, e)


def optional_window(start: object, end: object) -> tuple[datetime | None, datetime | None]:
    """Validate a reading window where either end may be open (``None``)."""
    s = None if start is None else _aware_utc(start, "start")
    e = None if end is None else _aware_utc(end, "end")
    if s is not None and e is not None and s > e:
        raise InvalidRequest(f"start {s.isoformat()} is after end {e.isoformat()}")
    return s, e


def rfc3339(value: datetime) -> str:
    """UTC RFC 3339 with microseconds and a ``Z``: what the footer stores."""
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v:%m-%dT%H:%M:%S.%f}Z"  # strftime's %Y does not pad years < 1000


# ---------------------------------------------------------------------------
# Input: Event objects


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
    micros = pa.array(list(map(sub, stamps, repeat(_EPOCH))), pa.duration("us")).cast(pa.int64())
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
    _check_unique_ids(table)
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


# ---------------------------------------------------------------------------
# Input: Arrow


def _first_bad(mask: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first ``True`` in a boolean mask (nulls count as ``True``)."""
    filled = pc.fill_null(mask, True)
    return int(pc.index(filled, True).as_py())


def _describe_row(table: pa.Table, index: int) -> str:
    eid = table.column("event_id")[index].as_py() if "event_id" in table.column_names else None
    return f"event #{index} ({eid})"


def from_arrow(tenant_id: str, win: Window, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """Validate an Arrow table and normalise it to :data:`SCHEMA`.

    Accepts ``timestamp[us]`` without a zone (read as UTC) or any tz-aware
    timestamp unit; ``metadata`` and ``version`` may be absent (null and 1);
    an optional ``tenant_id`` column must match.  Payloads and metadata are
    stored as given, once they parse as JSON.
    """
    table = conform_arrow(tenant_id, win, data)
    corrected = None
    for check in arrow_checks(table):
        corrected = check() or corrected
    return table if corrected is None else corrected


def arrow_checks(table: pa.Table) -> list[Callable[[], pa.Table | None]]:
    """The checks of :func:`from_arrow` that :func:`conform_arrow` leaves, as independent calls.

    Each raises :class:`InvalidRequest` or returns ``None``, or (the id check)
    a corrected table.  They share nothing, so the write engine runs them side
    by side while the parts encode; a failure is reported as if they had run
    in list order (JSON of payloads, JSON of metadata, ids).
    """
    return [
        partial(_check_json, table, "payload"),
        partial(_check_json, table, "metadata"),
        partial(check_ids, table),
    ]


def conform_arrow(tenant_id: str, win: Window, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """:func:`from_arrow` but for :func:`check_ids`: columns, types, nulls, tenant, window."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    names = data.column_names
    allowed = set(SCHEMA.names) | {"tenant_id"}
    extra = [n for n in names if n not in allowed]
    if extra:
        raise InvalidRequest(f"unexpected column(s) {extra}; allowed: {sorted(allowed)}")
    missing = [n for n in _REQUIRED if n not in names and n not in _OPTIONAL_DEFAULTS]
    if missing:
        raise InvalidRequest(f"missing column(s) {missing}")
    n = data.num_rows

    if "tenant_id" in names:
        col = data.column("tenant_id")
        bad = pc.not_equal(col, pa.scalar(tenant_id, col.type))
        if n and (col.null_count or pc.any(bad).as_py()):
            i = _first_bad(bad)
            raise InvalidRequest(
                f"{_describe_row(data, i)} belongs to tenant {col[i].as_py()!r}, not {tenant_id!r}"
            )

    columns = []
    for field in SCHEMA:
        if field.name in names:
            col = data.column(field.name)
        elif field.name in _OPTIONAL_DEFAULTS:
            default = _OPTIONAL_DEFAULTS[field.name]
            col = pa.chunked_array(
                [pa.nulls(n, field.type) if default is None else pa.array([default] * n, field.type)],
                field.type,
            )
        else:  # pragma: no cover - caught above
            raise InvalidRequest(f"missing column {field.name!r}")
        if field.name == "timestamp":
            col = _timestamps(col)
        elif col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidRequest(
                    f"column {field.name!r} has type {col.type}, which does not convert "
                    f"to {field.type}: {exc}"
                ) from None
        if not field.nullable and col.null_count:
            i = _first_bad(pc.is_null(col))
            raise InvalidRequest(f"{_describe_row(data, i)}: {field.name} is null")
        columns.append(col)
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    if n == 0:
        return table

    ts = table.column("timestamp")
    lo, hi = pc.min_max(ts).values()
    if lo.value < win.start_us or hi.value > win.end_us:
        bad = pc.or_(
            pc.less(ts, pa.scalar(win.start_us, pa.timestamp("us"))),
            pc.greater(ts, pa.scalar(win.end_us, pa.timestamp("us"))),
        )
        i = _first_bad(bad)
        raise InvalidRequest(
            f"{_describe_row(table, i)}: timestamp {ts[i].as_py().isoformat()}Z is outside "
            f"the window [{rfc3339(win.start)}, {rfc3339(win.end)}]"
        )
    return table


def check_ids(table: pa.Table) -> pa.Table | None:
    """Event ids are UUID text, each once.

    Returns ``None`` when ``table`` stands as it is, or a corrected table (ids
    given in upper case are stored lower-cased).
    """
    ids = table.column("event_id")
    if _all_canonical_uuids(ids):
        _check_unique_ids(table)
        return None
    ok = pc.match_substring_regex(ids, _UUID_RE)
    if pc.all(ok).as_py():
        _check_unique_ids(table)
        return None
    ids = pc.utf8_lower(ids)
    ok = pc.match_substring_regex(ids, _UUID_RE)
    if not pc.all(ok).as_py():
        i = _first_bad(pc.invert(ok))
        raise InvalidRequest(f"{_describe_row(table, i)}: event_id is not a UUID")
    table = table.set_column(0, SCHEMA.field(0), ids)
    _check_unique_ids(table)
    return table


def _check_json(table: pa.Table, name: str) -> None:
    """The text of column ``name`` (payload or metadata) must parse as JSON (no NaN).

    Stored as given, but a value that does not parse would make ``events()``,
    ``read --format jsonl`` and allsource-core fail on the archive later.
    Checked in slices so that memory stays flat; see :func:`_json_slice_ok`
    for the fast route and ``orjson`` (~0.4 µs per value) for the exact one.
    A column whose values repeat (metadata often does) is checked once per
    distinct value: ``unique`` keeps first appearances in order, so the
    first bad distinct value is the first bad row.
    """
    column = table.column(name)
    values: pa.Array | pa.ChunkedArray = column
    if len(pc.unique(column.slice(0, 65_536))) * 8 <= min(65_536, len(column)):
        values = pc.unique(column)
    loads = orjson.loads
    for offset in range(0, len(values), 65_536):
        piece = values.slice(offset, 65_536)
        if _json_slice_ok(piece):
            continue
        texts = piece.to_pylist()
        try:
            for text in texts:
                if text is not None:
                    loads(text)
        except orjson.JSONDecodeError as exc:
            bad = next(t for t in texts if t is not None and not _parses(t))
            i = offset + texts.index(bad) if values is column else pc.index(column, bad).as_py()
            raise InvalidRequest(f"{_describe_row(table, i)}: {name} is not JSON: {exc}") from None


def _json_slice_ok(piece: pa.ChunkedArray) -> bool:
    """True when every value of ``piece`` surely parses with orjson; False means "look closer".

    With msgspec installed (optional), the values joined into one JSON array
    are validated without building Python objects (a quarter of orjson's
    time), and the count of elements proves each value is one JSON value.
    msgspec nests less deep than orjson, so it is the stricter there; numbers
    beyond the float range it does not check, and orjson refuses them.  Such
    a number needs an exponent of three digits or a hundred digits in a row:
    text that could hold one is left to orjson.
    """
    try:
        import msgspec  # noqa: PLC0415 - optional: orjson value by value is the fallback
    except ImportError:
        return False
    values = pc.drop_null(piece)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return True
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values), ",")
    text = pc.binary_join_element_wise("[", joined, "]", "")
    try:
        decoded = msgspec.json.decode(memoryview(text.buffers()[2]), type=list[msgspec.Raw])
    except (msgspec.DecodeError, RecursionError):  # msgspec nests less deep than orjson
        return False
    if len(decoded) != len(values):
        return False
    # One pattern per exponent letter: a literal first byte lets RE2 skip ahead with memchr.
    if any(pc.any(pc.match_substring_regex(text, f"{e}[+-]?[0-9]{{3}}")).as_py() for e in "eE"):
        return False
    long = pc.greater_equal(pc.binary_length(values), 100)
    return not (
        pc.any(long).as_py() and pc.any(pc.match_substring_regex(values.filter(long), "[0-9]{100}")).as_py()
    )


def _parses(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def _all_canonical_uuids(ids: pa.ChunkedArray) -> bool:
    """True when every id is lower-case canonical UUID text; False means "look closer".

    Matching the regex row by row costs ~90 ns per id; when every id is 36
    bytes long, a chunk's ids sit back to back in its data buffer, and one
    match of the repeated pattern over that whole buffer costs half as much.
    """
    if ids.type != pa.string() or ids.null_count:
        return False
    lengths = pc.min_max(pc.binary_length(ids))
    if lengths["min"].as_py() != 36 or lengths["max"].as_py() != 36:
        return False
    for chunk in ids.chunks:
        if len(chunk) == 0:
            continue
        offsets = memoryview(chunk.buffers()[1]).cast("i")
        bounds = array.array("q", [offsets[chunk.offset], offsets[chunk.offset + len(chunk)]])
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(bounds), chunk.buffers()[2]])
        if not pc.match_substring_regex(whole, _UUIDS_RE)[0].as_py():
            return False
    return True


def _timestamps(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if not pa.types.is_timestamp(t):
        raise InvalidRequest(f"column 'timestamp' has type {t}, need timestamp[us] or a tz-aware timestamp")
    if t.tz is None and t.unit != "us":
        raise InvalidRequest(
            f"column 'timestamp' is naive {t}; give timestamp[us] (read as UTC) or a tz-aware type"
        )
    try:
        # A tz-aware timestamp's values are already UTC; dropping the zone keeps them.
        return col.cast(pa.timestamp(t.unit)).cast(pa.timestamp("us"))
    except pa.ArrowInvalid as exc:
        raise InvalidRequest(f"column 'timestamp' does not convert to microseconds: {exc}") from None


def _check_unique_ids(table: pa.Table) -> None:
    """Refuse a batch that holds an event id twice, naming the first repeat."""
    ids = table.column("event_id")
    if table.num_rows < 2 or _surely_unique(ids):
        return
    if pc.count_distinct(ids).as_py() != table.num_rows:
        first: dict[str, int] = {}
        for i, eid in enumerate(ids.to_pylist()):  # rare path: name the first repeat
            if eid in first:
                raise InvalidRequest(f"event #{i} ({eid}) repeats the id of event #{first[eid]} in the batch")
            first[eid] = i


def _surely_unique(ids: pa.ChunkedArray) -> bool:
    """True when the 36-byte ids are pairwise distinct, by sorting a 64-bit hash of each.

    Arrow's exact distinct count hashes strings into a table of a million
    entries (~0.3 s per million ids); a weighted sum of five overlapping 8-byte
    words of each id, sorted, takes ~15 ms.  Equal hashes mean "maybe
    equal": the caller then counts exactly.  Needs numpy (optional).
    """
    try:
        import numpy as np  # noqa: PLC0415 - optional: the exact count is the fallback
    except ImportError:
        return False
    hashes = []
    for chunk in ids.chunks:
        n = len(chunk)
        if n == 0:
            continue
        if chunk.type != pa.string() or chunk.null_count:
            return False
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, n + 1, chunk.offset * 4)
        first = int(offsets[0])
        if int(offsets[-1]) - first != 36 * n or not bool(np.all(np.diff(offsets) == 36)):
            return False
        data = chunk.buffers()[2]
        mixed = np.zeros(n, np.uint64)
        for word, at in enumerate((0, 8, 16, 24, 28)):  # covers bytes 0..35
            lane = np.ndarray((n,), "<u8", data, first + at, (36,))
            mixed += lane * np.uint64(_MIX[word])  # wraps mod 2**64, as meant
        hashes.append(mixed)
    if not hashes:
        return True
    ordered = np.sort(np.concatenate(hashes))
    return not bool(np.any(ordered[1:] == ordered[:-1]))


_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)


# ---------------------------------------------------------------------------
# Encoding


def sort_events(table: pa.Table) -> pa.Table:
    """Rows sorted by ``(timestamp, event_id)``; nearly free when already in that order.

    Equal timestamps are common (second or millisecond clocks): rows in time
    order are checked pairwise on their ids only where the time ties.
    """
    n = table.num_rows
    if n < 2:
        return table
    ts = table.column("timestamp").combine_chunks()
    before, after = ts.slice(0, n - 1), ts.slice(1)
    if pc.all(pc.less_equal(before, after)).as_py():
        ties = pc.equal(before, after)
        if not pc.any(ties).as_py():
            return table
        ids = table.column("event_id").combine_chunks()
        first, second = ids.slice(0, n - 1).filter(ties), ids.slice(1).filter(ties)
        if pc.all(pc.less(first, second)).as_py():
            return table
    order = pc.sort_indices(table, sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")])
    return table.take(order)


def footer(tenant_id: str, win: Window, events: int, part: int | None, parts: int | None) -> dict[str, str]:
    meta = {
        "coldtier.end": rfc3339(win.end),
        "coldtier.events": str(events),
        "coldtier.format": FORMAT_VERSION,
        "coldtier.start": rfc3339(win.start),
        "coldtier.tenant_id": tenant_id,
    }
    if part is not None:
        meta["coldtier.part"] = str(part)
    if parts is not None:
        meta["coldtier.parts"] = str(parts)
    return dict(sorted(meta.items()))


#: Columns whose values repeat enough for a dictionary page to pay; the others
#: (ids, payloads, timestamps) are near-unique, where a dictionary is built
#: only to be abandoned.
_DICTIONARY = ["event_type", "entity_id", "metadata", "version"]
#: Sorted timestamps delta-encode to almost nothing; 36-byte ids keep only
#: their bytes (no per-value length prefix).  arrow-rs (allsource-core),
#: DuckDB and polars read both encodings.
_ENCODINGS = {"timestamp": "DELTA_BINARY_PACKED", "event_id": "DELTA_LENGTH_BYTE_ARRAY"}
#: Readers prune row groups by time; min/max of ids and payloads help no one.
_STATISTICS = ["timestamp"]


def writer_options(compression: str = "zstd", compression_level: int | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`pyarrow.parquet.ParquetWriter` that coldtier writes with.

    ``store_schema=False`` keeps the footer to exactly our sorted keys (the
    Parquet types map 1:1 back to :data:`SCHEMA` without the Arrow schema blob).
    """
    return {
        "compression": compression,
        "compression_level": compression_level,
        "use_dictionary": _DICTIONARY,
        "column_encoding": _ENCODINGS,
        "write_statistics": _STATISTICS,
        "store_schema": False,
        "write_batch_size": 65_536,  # fewer, larger batches inside the writer: ~4 % less CPU
    }


def encode(
    table: pa.Table,
    meta: dict[str, str],
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    row_group_events: int = 131_072,
) -> bytes:
    """Parquet bytes of a sorted :data:`SCHEMA` table with ``meta`` in the footer."""
    sink = pa.BufferOutputStream()
    with pq.ParquetWriter(sink, SCHEMA, **writer_options(compression, compression_level)) as writer:
        writer.write_table(table, row_group_size=row_group_events)
        writer.add_key_value_metadata(meta)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def digest_of(data: bytes | memoryview) -> str:
    """First 16 hex digits of the SHA-256 of ``data``: the digest in a key."""
    return hashlib.sha256(data).hexdigest()[:16]


# ---------------------------------------------------------------------------
# Keys


def key_time(value: datetime) -> str:
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v:%m-%dT%H%M%S}Z"  # strftime's %Y does not pad years < 1000


def month(value: datetime) -> str:
    """``yyyy-mm`` of ``value`` in UTC: the directory of the objects starting then."""
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}"


def object_key(tenant_id: str, win: Window, digest: str) -> str:
    """``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet``."""
    return (
        f"{tenant_id}/{month(win.start)}/archive.{tenant_id}."
        f"{key_time(win.start)}-{key_time(win.end)}.{digest}.parquet"
    )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    tenant_id: str
    start: datetime
    end: datetime
    digest: str | None


def parse_key(name: str) -> KeyInfo | None:
    """Parse an object's file name (ours or allsource-core's); ``None`` if foreign."""
    m = _KEY_RE.fullmatch(name)
    if m is None:
        return None
    try:
        start = datetime.strptime(m["start"], _KEY_TIME).replace(tzinfo=UTC)
        end = datetime.strptime(m["end"], _KEY_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None
    return KeyInfo(m["tenant"], start, end, m["digest"])


def chunks(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size)
