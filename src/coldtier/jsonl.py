"""JSON Lines of events: the text form ``coldtier archive`` reads and ``coldtier read`` writes.

One JSON object per line, with the :class:`~coldtier.Event` field names::

    {"id": "0b9c6e1e-2f4b-4c8e-9a57-3b0f4c1d2e3f", "event_type": "order.placed",
     "entity_id": "order-17", "tenant_id": "acme", "payload": {"total": 12.5},
     "timestamp": "2024-03-02T08:06:00.123456Z", "metadata": null, "version": 1}

(shown on two lines here; one line in a file).

=============  ==========================================================
field          value
=============  ==========================================================
``id``         the event's UUID (``event_id`` is accepted as a synonym)
``event_type`` string
``entity_id``  string
``tenant_id``  string; optional when the reader is given the tenant
``payload``    any JSON value
``timestamp``  RFC 3339 *with* an offset (``Z`` or ``+02:00``); naive
               times are refused (Arrow input: ``timestamp[us]`` is UTC)
``metadata``   any JSON value, or ``null`` (optional, default ``null``)
``version``    integer ``0 <= v < 2**64`` (optional, default 1)
=============  ==========================================================

Blank lines are skipped.  What :func:`dump_event` and :func:`dump_table`
write (``id``, UTC ``Z`` timestamps) reads back unchanged.

Readers check the *shape* of each line (JSON, known fields, field types,
timestamps, tenant) and name the line on error, as
:class:`~coldtier.InvalidRequest`.  :func:`load_tables` leaves the rest (ids
being UUIDs and unique, the tenant id's syntax, the window) to
:meth:`Archive.archive <coldtier.Archive.archive>`, which checks every input
form the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any, NamedTuple

import orjson
import pyarrow as pa

from coldtier import Event, IntegrityError, InvalidRequest

__all__ = [
    "FIELDS",
    "TABLE_SCHEMA",
    "dump_event",
    "dump_table",
    "load_events",
    "load_numbered",
    "load_tables",
]

#: The field names of a line, as written.  ``event_id`` is read as ``id``.
FIELDS = ("id", "event_type", "entity_id", "tenant_id", "payload", "timestamp", "metadata", "version")
_ACCEPTED = frozenset(FIELDS) | {"event_id"}
_REQUIRED = ("event_type", "entity_id", "payload", "timestamp")
_UINT64 = 1 << 64

Source = Iterable[bytes | str] | IO[bytes]

#: The columns of :func:`load_tables`: what ``Archive.archive`` takes as a table.
TABLE_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("metadata", pa.string(), nullable=True),
        pa.field("version", pa.uint64(), nullable=False),
    ]
)


class _Line(NamedTuple):
    id: str
    event_type: str
    entity_id: str
    tenant_id: str
    payload: Any
    timestamp: datetime
    metadata: Any
    version: int


def _lines(source: Source, name: str) -> Iterator[tuple[int, str, Any]]:
    """``(number, where, parsed JSON)`` of each non-blank line."""
    for number, line in enumerate(source, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            yield number, where, orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"{where}: not valid JSON: {exc}") from None


def _shape(obj: Any, tenant_id: str | None, where: str) -> _Line:
    """The fields of one line, their shape checked (not the id's syntax)."""
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - _ACCEPTED)
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {unknown}; fields are {list(FIELDS)}")
    if "id" in obj and "event_id" in obj:
        raise InvalidRequest(f"{where}: give the id as id or event_id, not both")
    eid = obj.get("id", obj.get("event_id"))
    missing = (["id"] if eid is None else []) + [f for f in _REQUIRED if f not in obj]
    if missing:
        raise InvalidRequest(f"{where}: missing field(s) {missing}; a line needs {['id', *_REQUIRED]}")
    for field in ("event_type", "entity_id"):
        if not isinstance(obj[field], str):
            raise InvalidRequest(f"{where}: {field} {obj[field]!r} is not a string")
    if not isinstance(eid, str):
        raise InvalidRequest(f"{where}: id {eid!r} is not a UUID string")
    text = obj["timestamp"]
    try:
        ts = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        ts = None
    if ts is None:
        raise InvalidRequest(f"{where}: timestamp {text!r} is not RFC 3339")
    if ts.tzinfo is None:
        raise InvalidRequest(f"{where}: timestamp {text!r} has no UTC offset (add Z or +hh:mm)")
    tenant = obj.get("tenant_id", tenant_id)
    if tenant is None:
        raise InvalidRequest(f"{where}: no tenant_id, and no tenant was given for lines without one")
    if not isinstance(tenant, str):
        raise InvalidRequest(f"{where}: tenant_id {tenant!r} is not a string")
    if tenant_id is not None and tenant != tenant_id:
        raise InvalidRequest(f"{where}: tenant_id {tenant!r} is not {tenant_id!r}")
    version = obj.get("version", 1)
    if type(version) is not int or not 0 <= version < _UINT64:
        raise InvalidRequest(f"{where}: version {version!r} is not an unsigned 64-bit integer")
    return _Line(
        eid, obj["event_type"], obj["entity_id"], tenant, obj["payload"], ts, obj.get("metadata"), version
    )


def _tenant(tenant_id: str | None) -> str | None:
    return tenant_id or None  # "" (the old spelling of "any tenant") is None


def load_numbered(
    source: Source, tenant_id: str | None = None, *, name: str = "input"
) -> Iterator[tuple[int, Event]]:
    """``(line number, Event)`` for each non-blank line of ``source``.

    A line without ``tenant_id`` belongs to ``tenant_id``; when ``tenant_id``
    is given, a line naming another tenant is refused; when it is ``None``
    (or empty), every line must carry its own.  Errors are
    :class:`~coldtier.InvalidRequest` naming ``name`` and the line.
    """
    tenant = _tenant(tenant_id)
    for number, where, obj in _lines(source, name):
        line = _shape(obj, tenant, where)
        try:
            eid = uuid.UUID(line.id)
        except ValueError:
            raise InvalidRequest(f"{where}: id {line.id!r} is not a UUID") from None
        yield number, Event(eid, *line[1:])


def load_events(source: Source, tenant_id: str | None = None, *, name: str = "input") -> Iterator[Event]:
    """The :class:`~coldtier.Event` of each non-blank line (see :func:`load_numbered`)."""
    for _, event in load_numbered(source, tenant_id, name=name):
        yield event


def load_tables(
    source: Source,
    tenant_id: str | None = None,
    *,
    name: str = "input",
    rows: int = 8_192,
    line_numbers: bool = False,
) -> Iterator[pa.Table]:
    """The lines of ``source`` as Arrow tables of up to ``rows`` rows, ready for ``Archive.archive``.

    Columns are :data:`TABLE_SCHEMA` (``payload`` and ``metadata`` as compact
    JSON text, ``timestamp`` as ``timestamp[us, tz=UTC]``), in line order,
    plus an ``int64`` column ``line`` (each row's line number) when
    ``line_numbers`` is true, for callers that report later checks by line.
    Only the shape of each line is checked here (see the module docstring);
    ``Archive.archive`` checks the rest, once, for every input form.
    """
    if rows < 1:
        raise InvalidRequest(f"rows must be at least 1, got {rows}")
    tenant = _tenant(tenant_id)
    batch: list[_Line] = []
    numbers: list[int] = []
    for number, where, obj in _lines(source, name):
        batch.append(_shape(obj, tenant, where))
        numbers.append(number)
        if len(batch) == rows:
            yield _table(batch, numbers if line_numbers else None)
            batch, numbers = [], []
    if batch:
        yield _table(batch, numbers if line_numbers else None)


def _table(batch: list[_Line], numbers: list[int] | None) -> pa.Table:
    ids, types, entities, tenants, payloads, stamps, metas, versions = zip(*batch, strict=True)
    dumps = orjson.dumps
    columns = [
        pa.array(ids, pa.string()),
        pa.array(types, pa.string()),
        pa.array(entities, pa.string()),
        pa.array(tenants, pa.string()),
        pa.array([dumps(p) for p in payloads], pa.binary()).cast(pa.string()),
        pa.array(stamps, pa.timestamp("us", tz="UTC")),
        pa.array([None if m is None else dumps(m) for m in metas], pa.binary()).cast(pa.string()),
        pa.array(versions, pa.uint64()),
    ]
    table = pa.Table.from_arrays(columns, schema=TABLE_SCHEMA)
    if numbers is not None:
        table = table.append_column("line", pa.array(numbers, pa.int64()))
    return table


def dump_event(event: Event) -> bytes:
    """One JSON line (with its newline) for ``event``."""
    return orjson.dumps(
        {
            "id": str(event.id),
            "event_type": event.event_type,
            "entity_id": event.entity_id,
            "tenant_id": event.tenant_id,
            "payload": event.payload,
            "timestamp": event.timestamp.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "metadata": event.metadata,
            "version": event.version,
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def dump_table(
    table: pa.Table, tenant_id: str | None = None, *, source: str = "the archive"
) -> Iterator[bytes]:
    """The lines :func:`dump_event` writes, straight from a table as ``Archive.read`` returns it.

    ``tenant_id`` is used when the table has no ``tenant_id`` column (the
    stored columns alone).  Skips building :class:`~coldtier.Event` objects
    (about 1.5x faster); a stored event that is not valid (id not a UUID,
    payload not JSON) is an :class:`~coldtier.IntegrityError` naming ``source``.
    """
    names = ("event_id", "event_type", "entity_id", "payload", "timestamp", "metadata", "version")
    columns = [table.column(name).to_pylist() for name in names]
    if "tenant_id" in table.column_names:
        tenants: Iterable[Any] = table.column("tenant_id").to_pylist()
    elif tenant_id is not None:
        tenants = [tenant_id] * table.num_rows
    else:
        raise InvalidRequest("the table has no tenant_id column: pass tenant_id")
    dumps, loads, newline = orjson.dumps, orjson.loads, orjson.OPT_APPEND_NEWLINE
    for eid, etype, entity, payload, ts, meta, version, tenant in zip(*columns, tenants, strict=True):
        try:
            line = {
                "id": str(uuid.UUID(eid)),
                "event_type": etype,
                "entity_id": entity,
                "tenant_id": tenant,
                "payload": loads(payload),
                # Stored timestamps are naive UTC: the same text dump_event writes.
                "timestamp": (
                    ts if ts.tzinfo is None else ts.astimezone(UTC).replace(tzinfo=None)
                ).isoformat()
                + "Z",
                "metadata": None if meta is None else loads(meta),
                "version": version,
            }
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise IntegrityError(f"event {eid!r} in {source} is malformed: {exc}") from exc
        yield dumps(line, option=newline)
