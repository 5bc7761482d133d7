"""JSON Lines ⇄ :class:`Event`, in the form the CLI reads and writes.

One object per line with the ``Event`` field names; ``timestamp`` is RFC 3339
with an offset; ``tenant_id`` is optional on input.  What ``read --format
jsonl`` writes can be archived again unchanged.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import orjson

from ._errors import IntegrityError, InvalidRequest
from ._types import Event

__all__ = ["dump_event", "dump_table", "load_events", "load_numbered"]

_FIELDS = ("id", "event_type", "entity_id", "tenant_id", "payload", "timestamp", "metadata", "version")


def dump_event(event: Event) -> bytes:
    """One JSON line (with the newline) for ``event``."""
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


def dump_table(table: Any, tenant_id: str, *, source: str = "the archive") -> Iterator[bytes]:
    """The lines :func:`dump_event` writes, straight from a table of stored columns.

    Skips building :class:`Event` objects (about 1.5x faster); a stored event
    that is not valid (id not a UUID, payload not JSON) is an
    :class:`IntegrityError` naming ``source``.
    """
    names = ("event_id", "event_type", "entity_id", "payload", "timestamp", "metadata", "version")
    columns = [table.column(name).to_pylist() for name in names]
    dumps, loads, newline = orjson.dumps, orjson.loads, orjson.OPT_APPEND_NEWLINE
    for eid, etype, entity, payload, ts, meta, version in zip(*columns, strict=True):
        try:
            line = {
                "id": str(uuid.UUID(eid)),
                "event_type": etype,
                "entity_id": entity,
                "tenant_id": tenant_id,
                "payload": loads(payload),
                # Stored timestamps are naive UTC: the same text dump_event writes.
                "timestamp": ts.isoformat() + "Z",
                "metadata": None if meta is None else loads(meta),
                "version": version,
            }
        except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
            raise IntegrityError(f"event {eid!r} in {source} is malformed: {exc}") from exc
        yield dumps(line, option=newline)


def _event(obj: Any, tenant_id: str, where: str) -> Event:
    if not isinstance(obj, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(f"{where}: unknown field(s) {unknown}; fields are {list(_FIELDS)}")
    missing = [f for f in ("id", "event_type", "entity_id", "payload", "timestamp") if f not in obj]
    if missing:
        raise InvalidRequest(f"{where}: missing field(s) {missing}")
    try:
        eid = uuid.UUID(obj["id"])
    except (TypeError, ValueError, AttributeError):
        raise InvalidRequest(f"{where}: id {obj['id']!r} is not a UUID") from None
    try:
        ts = datetime.fromisoformat(obj["timestamp"])
    except (TypeError, ValueError):
        raise InvalidRequest(f"{where}: timestamp {obj['timestamp']!r} is not RFC 3339") from None
    if ts.tzinfo is None:
        raise InvalidRequest(f"{where}: timestamp {obj['timestamp']!r} has no UTC offset")
    tenant = obj.get("tenant_id", tenant_id)
    if tenant_id and tenant != tenant_id:
        raise InvalidRequest(f"{where}: tenant_id {tenant!r} is not {tenant_id!r}")
    version = obj.get("version", 1)
    if type(version) is not int:
        raise InvalidRequest(f"{where}: version {version!r} is not an integer")
    return Event(
        id=eid,
        event_type=obj["event_type"],
        entity_id=obj["entity_id"],
        tenant_id=tenant,
        payload=obj["payload"],
        timestamp=ts,
        metadata=obj.get("metadata"),
        version=version,
    )


def load_numbered(
    lines: Iterable[bytes | str] | IO[bytes], tenant_id: str, *, name: str = "input"
) -> Iterator[tuple[int, Event]]:
    """``(line number, event)`` for each non-blank line of JSON Lines.

    A line without ``tenant_id`` belongs to ``tenant_id``; a line naming
    another tenant is refused unless ``tenant_id`` is empty (any tenant).
    Errors are :class:`InvalidRequest` naming ``name`` and the line.
    """
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name} line {number}"
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"{where}: not valid JSON: {exc}") from None
        yield number, _event(obj, tenant_id, where)


def load_events(
    lines: Iterable[bytes | str] | IO[bytes], tenant_id: str, *, name: str = "input"
) -> Iterator[Event]:
    """Parse JSON Lines into events of ``tenant_id`` (blank lines are skipped)."""
    for _, event in load_numbered(lines, tenant_id, name=name):
        yield event
