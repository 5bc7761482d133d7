"""The object codec: events ⇄ Arrow ⇄ Parquet bytes, digests and key names.

Everything here is pure (no I/O), deterministic, and shared by every backend:
the same tenant, window and events always give the same bytes, hence the same
digest and key.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

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
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# ---------------------------------------------------------------------------
# Input: Event objects


def _json(value: Any, what: str, index: int, event_id: object) -> bytes:
    try:
        return orjson.dumps(value)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise InvalidRequest(f"event #{index} ({event_id}): {what} is not JSON-serialisable: {exc}") from None


def from_events(tenant_id: str, win: Window, events: Iterable[object]) -> pa.Table:
    """Validate ``Event`` objects and convert them column-wise to :data:`SCHEMA`.

    One pass: every check of DESIGN.md §2.6 runs before any column is built,
    and the first offending event is named.
    """
    ids: list[str] = []
    types: list[str] = []
    entities: list[str] = []
    payloads: list[bytes] = []
    stamps: list[int] = []
    metas: list[bytes | None] = []
    versions: list[int] = []
    lo, hi = win.start, win.end
    dumps = orjson.dumps
    for i, ev in enumerate(events):
        if type(ev) is not Event and not isinstance(ev, Event):
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
        et, en, ver = ev.event_type, ev.entity_id, ev.version
        if type(et) is not str or type(en) is not str:
            raise InvalidRequest(f"event #{i} ({eid}): event_type and entity_id must be str")
        if type(ver) is not int or ver < 0 or ver >= 1 << 64:
            raise InvalidRequest(f"event #{i} ({eid}): version {ver!r} is not an unsigned 64-bit int")
        try:
            payload = dumps(ev.payload)
            meta = None if ev.metadata is None else dumps(ev.metadata)
        except (TypeError, orjson.JSONEncodeError):
            _json(ev.payload, "payload", i, eid)
            _json(ev.metadata, "metadata", i, eid)
            raise
        ids.append(str(eid))
        types.append(et)
        entities.append(en)
        payloads.append(payload)
        stamps.append((ts - _EPOCH) // _US)
        metas.append(meta)
        versions.append(ver)
    table = pa.Table.from_arrays(
        [
            pa.array(ids, pa.string()),
            pa.array(types, pa.string()),
            pa.array(entities, pa.string()),
            pa.array(payloads, pa.binary()).cast(pa.string()),
            pa.array(stamps, pa.int64()).cast(pa.timestamp("us")),
            pa.array(metas, pa.binary()).cast(pa.string()),
            pa.array(versions, pa.uint64()),
        ],
        schema=SCHEMA,
    )
    _check_unique_ids(table)
    return table


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
    an optional ``tenant_id`` column must match.  Payloads are stored as given.
    """
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

    ids = table.column("event_id")
    ok = pc.match_substring_regex(ids, _UUID_RE)
    if not pc.all(ok).as_py():
        ids = pc.utf8_lower(ids)
        ok = pc.match_substring_regex(ids, _UUID_RE)
        if not pc.all(ok).as_py():
            i = _first_bad(pc.invert(ok))
            raise InvalidRequest(f"{_describe_row(table, i)}: event_id is not a UUID")
        table = table.set_column(0, SCHEMA.field(0), ids)
    _check_unique_ids(table)
    return table


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
    ids = table.column("event_id")
    if table.num_rows > 1 and pc.count_distinct(ids).as_py() != table.num_rows:
        first: dict[str, int] = {}
        for i, eid in enumerate(ids.to_pylist()):  # rare path: name the first repeat
            if eid in first:
                raise InvalidRequest(f"event #{i} ({eid}) repeats the id of event #{first[eid]} in the batch")
            first[eid] = i


# ---------------------------------------------------------------------------
# Encoding


def sort_events(table: pa.Table) -> pa.Table:
    """Rows sorted by ``(timestamp, event_id)``; free when already strictly ordered."""
    if table.num_rows < 2:
        return table
    ts = table.column("timestamp").combine_chunks()
    if pc.all(pc.less(ts.slice(0, len(ts) - 1), ts.slice(1))).as_py():
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
    # store_schema=False keeps the footer to exactly our sorted keys (the
    # Parquet types map 1:1 back to SCHEMA without the Arrow schema blob).
    with pq.ParquetWriter(
        sink,
        SCHEMA,
        compression=compression,
        compression_level=compression_level,
        store_schema=False,
        write_statistics=True,
    ) as writer:
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
    return value.astimezone(UTC).strftime(_KEY_TIME)


def object_key(tenant_id: str, win: Window, digest: str) -> str:
    """``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet``."""
    return (
        f"{tenant_id}/{win.start:%Y-%m}/archive.{tenant_id}."
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
