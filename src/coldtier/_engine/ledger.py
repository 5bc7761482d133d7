"""The ledger (DESIGN.md §10): a receipt per archive, repack and expire, and verify's pass over them.

A receipt is a small JSON object, written create-only after the objects it
names, under ``_coldtier~ledger/<tenant>/<yyyy-mm>/`` (no reader of events
lists it; events are always read from the objects, so a missing receipt never
makes data unreadable).  Its name carries a digest of what it records, so a
retried call writes the same receipt again (refused, and that is fine).

Kinds: ``archive`` (``objects``: what one call stored), ``repack``
(``objects``: the merged objects, ``replaces``: their sources, deleted after
the grace period) and ``expire`` (``replaces``: what a retention pass deletes,
written before it deletes).  :func:`check` turns them into verify's findings:
recorded objects that are missing or differ, objects no receipt names, and
one event id stored in two objects with different contents.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .. import _format, _keys
from .._errors import ColdTierError
from .._types import ArchivedObject, Problem, Window
from ..store import ObjectStore
from .faults import reason, writing
from .put import Stored
from .read import Reader

__all__ = ["Entry", "Recorded", "Seen", "check", "load", "record", "record_archive"]

LEDGER_VERSION = 1
_MONTH_DIR = _keys.LEDGER_PREFIX


@dataclass(frozen=True, slots=True)
class Recorded:
    """One object as a receipt names it: key, full logical digest, event count."""

    key: str
    digest: str
    events: int

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "digest": self.digest, "events": self.events}


@dataclass(frozen=True, slots=True)
class Entry:
    """One receipt, read back."""

    key: str
    kind: str
    objects: tuple[Recorded, ...]
    replaces: tuple[Recorded, ...]
    written: datetime | None
    events: int | None = None


def record_archive(store: ObjectStore, tenant: str, win: Window, results: Sequence[Stored]) -> str:
    """The receipt of one ``archive()`` call, after its objects (raises ``ArchiveWriteError``)."""
    objects = [Recorded(r.key, r.digest, r.events) for r in results]
    return record(store, "archive", tenant, win, objects)


def record(
    store: ObjectStore,
    kind: str,
    tenant: str,
    win: Window,
    objects: Iterable[Recorded],
    *,
    replaces: Iterable[Recorded] = (),
    written: datetime | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """Put one receipt create-only; its key.  A receipt already there (a retry) is that receipt.

    ``written`` (wall clock, repack and expire only) is left out of the name's
    digest, so a rerun of the same plan finds the first run's receipt and its time.
    """
    body: dict[str, Any] = {
        "coldtier.ledger": LEDGER_VERSION,
        "kind": kind,
        "tenant_id": tenant,
        "start": _format.rfc3339(win.start),
        "end": _format.rfc3339(win.end),
        "objects": [o.as_json() for o in objects],
        **(extra or {}),
    }
    replaced = [o.as_json() for o in replaces]
    if replaced:
        body["replaces"] = replaced
    named = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    key = _keys.ledger_key(tenant, kind, win, hashlib.sha256(named).hexdigest()[:16])
    if written is not None:
        body["written"] = _format.rfc3339(written)
    data = orjson.dumps(body, option=orjson.OPT_SORT_KEYS) + b"\n"
    with writing(store, f"recording {key}"):
        store.put(key, data, sha256=hashlib.sha256(data).hexdigest(), metadata={})
    return key


def load(
    reader: Reader, tenant: str, *, kind: str | None = None, month: str | None = None
) -> tuple[list[Entry], list[Problem]]:
    """The receipts of ``tenant`` (of one ``kind``, one ``month``: read by name only); listing failures raise.

    Unreadable receipts are problems.
    """
    top = f"{_MONTH_DIR}/{tenant}"
    months = sorted(e.key for e in reader.ls(top) if e.is_dir and (month is None or e.name == month))
    keys = sorted(e.key for listing in reader.map(reader.ls, months) for e in listing if not e.is_dir)
    keys = [
        k
        for k in keys
        if k.endswith(".json") and (kind is None or k.rsplit("/", 1)[-1].startswith(f"{kind}."))
    ]
    problems: list[Problem] = []

    def one(key: str) -> Entry | None:
        try:
            return _parse(key, reader.get(key))
        except ColdTierError as exc:
            problems.append(Problem(key, f"receipt cannot be read: {reason(exc)}"))
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(Problem(key, f"receipt is malformed: {exc}"))
        return None

    entries = [e for e in reader.map(one, keys) if e is not None]
    return entries, problems


def _parse(key: str, data: bytes) -> Entry:
    body = orjson.loads(data)
    if body.get("coldtier.ledger") != LEDGER_VERSION:
        raise ValueError(f"unknown ledger version {body.get('coldtier.ledger')!r}")

    def recorded(items: Any) -> tuple[Recorded, ...]:
        return tuple(Recorded(str(i["key"]), str(i["digest"]), int(i["events"])) for i in items or ())

    written = body.get("written")
    return Entry(
        key=key,
        kind=str(body["kind"]),
        objects=recorded(body.get("objects")),
        replaces=recorded(body.get("replaces")),
        written=datetime.fromisoformat(written) if written else None,
        events=body.get("events"),
    )


class Seen:
    """What verify saw of each object: its event ids, footer digest and format (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.ids: dict[str, pa.Array] = {}
        self.digests: dict[str, str | None] = {}
        self.formats: dict[str, str | None] = {}

    def add(self, obj: ArchivedObject, table: pa.Table, meta: Mapping[str, str]) -> None:
        ids = table.column("event_id").combine_chunks()
        with self._lock:
            self.ids[obj.key] = ids
            self.digests[obj.key] = meta.get("coldtier.digest")
            self.formats[obj.key] = meta.get("coldtier.format")


def check(
    reader: Reader, tenant: str, objs: Sequence[ArchivedObject], seen: Seen
) -> tuple[list[Problem], list[str]]:
    """Verify's ledger pass over one tenant: its problems, and the objects unrecorded but not damaged.

    An ``archive()`` running beside verify writes its objects, then its receipt,
    so either can fall between verify's listing of objects and its loading of
    receipts: a receipt naming an object the listing missed is looked up once
    more (found: written after the listing, not missing), and objects without
    a receipt make the receipts load once more (one finished in the meantime).
    """
    entries, problems = load(reader, tenant)
    listed = {o.key: o for o in objs}
    recorded, gone = _named(entries)
    if any(key not in recorded and key not in gone for key in listed):
        entries, problems = load(reader, tenant)  # a call may have written its receipt since
        recorded, gone = _named(entries)
    for key, (rec, receipt) in sorted(recorded.items()):
        if key not in listed:
            if key not in gone and not _exists(reader, key):
                problems.append(Problem(key, f"missing: receipt {receipt} records it ({rec.events} events)"))
            continue
        digest = seen.digests.get(key)
        if digest is not None and digest != rec.digest:
            problems.append(
                Problem(
                    key,
                    f"differs from receipt {receipt}: logical digest {digest[:16]}, recorded {rec.digest[:16]}",
                )
            )
    unrecorded: list[str] = []
    for key, obj in listed.items():
        if key in recorded or key in gone:
            continue
        if obj.digest is None or seen.formats.get(key) != _format.FORMAT_VERSION or not entries:
            unrecorded.append(key)  # allsource-core, format 1, or archived before the ledger
        else:
            problems.append(
                Problem(
                    key,
                    "unrecorded: no receipt of the ledger names it (not written by archive or repack, "
                    "or by a repack that was interrupted: rerun it)",
                )
            )
    problems.extend(_conflicts(reader, objs, seen, entries))
    return problems, unrecorded


def _named(entries: Sequence[Entry]) -> tuple[dict[str, tuple[Recorded, str]], set[str]]:
    """Objects the receipts record (with the receipt naming each first) and those they replace."""
    recorded: dict[str, tuple[Recorded, str]] = {}
    gone: set[str] = set()
    for entry in entries:
        if entry.kind in ("archive", "repack"):
            for rec in entry.objects:
                recorded.setdefault(rec.key, (rec, entry.key))
        gone.update(rec.key for rec in entry.replaces)
    return recorded, gone


def _exists(reader: Reader, key: str) -> bool:
    """Whether ``key`` is stored (written after verify listed, by a call running beside it)."""
    try:
        reader.stat(key)
    except ColdTierError:
        return False
    return True


def _conflicts(
    reader: Reader, objs: Sequence[ArchivedObject], seen: Seen, entries: Sequence[Entry]
) -> list[Problem]:
    """Event ids stored in two objects with different contents.

    Only ids held by more than one object are looked at, and objects a repack
    receipt links (merged objects and their sources hold the same events by
    construction, checked by their digests) are not read again.
    """
    keys = [o.key for o in objs if o.key in seen.ids]
    if len(keys) < 2:
        return []
    arrays = [seen.ids[k] for k in keys]
    owners = np.repeat(np.arange(len(keys), dtype=np.int64), [len(a) for a in arrays])
    table = pa.table({"id": pa.concat_arrays([a.cast(pa.string()) for a in arrays]), "o": owners})
    counts = table.group_by("id", use_threads=False).aggregate([("o", "count_distinct")])
    shared = counts.filter(pc.greater(counts.column("o_count_distinct"), 1)).column("id")
    if len(shared) == 0:
        return []
    family = _families(keys, entries)
    held = table.filter(pc.is_in(table.column("id"), value_set=shared))
    holders: dict[str, list[int]] = {}
    for eid, owner in zip(held.column("id").to_pylist(), held.column("o").to_pylist(), strict=True):
        holders.setdefault(eid, []).append(owner)
    suspect = {eid: sorted(set(o)) for eid, o in holders.items() if len({family[keys[i]] for i in o}) > 1}
    if not suspect:
        return []
    wanted = pa.array(sorted(suspect), pa.string())
    by_key = {o.key: o for o in objs}
    involved = sorted({i for owners_ in suspect.values() for i in owners_})

    def rows(index: int) -> dict[str, tuple[Any, ...]]:
        try:
            table = reader.read_object(by_key[keys[index]], None, None)
        except ColdTierError:
            return {}  # damaged or unreadable: its own check reports it
        table = table.filter(pc.is_in(table.column("event_id"), value_set=wanted))
        columns = [table.column(n).to_pylist() for n in _format.SCHEMA.names]
        return {row[0]: row for row in zip(*columns, strict=True)}

    contents = dict(zip(involved, reader.map(rows, involved), strict=True))
    clashes: dict[tuple[int, int], list[str]] = {}
    for eid, owners_ in sorted(suspect.items()):
        first = owners_[0]
        for other in owners_[1:]:
            a, b = contents[first].get(eid), contents[other].get(eid)
            if a is not None and b is not None and a != b:
                clashes.setdefault((first, other), []).append(eid)
    return [
        Problem(
            keys[other],
            f"event id {ids[0]}{f' (and {len(ids) - 1} more)' if len(ids) > 1 else ''} is also stored "
            f"in {keys[first]} with different contents (readers return only one of them)",
        )
        for (first, other), ids in sorted(clashes.items())
    ]


def _families(keys: Sequence[str], entries: Sequence[Entry]) -> dict[str, str]:
    """Union of the objects each repack receipt links (merged objects and their sources)."""
    parent = {k: k for k in keys}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for entry in entries:
        if entry.kind != "repack":
            continue
        linked = [r.key for r in (*entry.objects, *entry.replaces) if r.key in parent]
        for other in linked[1:]:
            parent[root(other)] = root(linked[0])
    return {k: root(k) for k in keys}
