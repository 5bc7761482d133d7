"""Listing and reading: tenants, objects in a window, their events each once, in order."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any, TypeVar

import orjson
import pyarrow as pa

from .. import _format, _keys
from .._archive import Progress
from .._crypto import no_key, sealed_by
from .._errors import ArchiveReadError, ColdTierError, IntegrityError
from .._format import SCHEMA, UTC
from .._ids import GivenIds
from .._types import ArchivedObject, Event, Problem
from .._validate.arrow import all_canonical_uuids
from ..store import Entry, ObjectStore, Stat, UnsafeEntry, causes
from .faults import reading
from .settings import Settings

__all__ = ["Progress", "Reader", "Refused", "Tally", "refusals"]

T = TypeVar("T")

_MONTH_RE = re.compile(r"\d{4}-\d\d")
_TENANT_DIR_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
#: Key times are truncated to the second: an object may end up to 1 s later than named.
_SECOND = timedelta(seconds=1) - timedelta(microseconds=1)


class Reader:
    """Lists and reads one archive's objects, ``workers`` at a time."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self._store = store
        self._workers = settings.workers
        self.cipher = settings.encryption

    def map(self, fn: Callable[[T], Any], items: list[T]) -> list[Any]:
        """``[fn(item) for item in items]``, ``workers`` at a time."""
        if len(items) <= 1 or self._workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(self._workers, len(items))) as pool:
            futures = [pool.submit(fn, item) for item in items]
            errors = [f.exception() for f in futures]  # every one finished before raising
            for error in errors:
                if error is not None:
                    raise error
            return [f.result() for f in futures]

    def ls(self, prefix: str) -> list[Entry]:
        """The entries under ``prefix``; one the store refused (:attr:`Entry.unsafe`) raises, naming it."""
        entries = self.survey(prefix)
        for entry in entries:
            if entry.unsafe is not None:
                raise _refused(self._store, prefix, Problem(entry.key, entry.unsafe))
        return entries

    def survey(self, prefix: str, strays: list[Problem] | None = None) -> list[Entry]:
        """The entries under ``prefix``, refused ones included (for verify).

        With ``strays``, a refusal of ``prefix`` itself (:class:`UnsafeEntry`:
        a symlink or a file where the directory should be) is added to it as a
        problem and ``[]`` returned; every other listing failure raises.
        """
        try:
            with reading(self._store, f"listing {prefix or 'the top'}"):
                return self._store.list(prefix)
        except ArchiveReadError as exc:
            refused = refusals(exc)
            if strays is None or not refused:
                raise
            strays.extend(refused)
            return []

    def get(self, key: str) -> bytes:
        with reading(self._store, f"reading {key}"):
            return self._store.get(key)

    def stat(self, key: str) -> Stat:
        with reading(self._store, f"looking up {key}"):
            return self._store.stat(key)

    @property
    def keeps_metadata(self) -> bool:
        return self._store.keeps_metadata

    # -- listing ---------------------------------------------------------------

    def tenants(self, strays: list[Problem] | None = None) -> list[str]:
        """The tenant directories at the top; an entry the store refused raises, or with ``strays`` is added to it."""
        entries = self.ls("") if strays is None else self.survey("")
        for entry in entries:
            if entry.unsafe is not None and strays is not None:
                tenant = _TENANT_DIR_RE.fullmatch(entry.name)
                where = "where a tenant directory should be" if tenant else "under the root"
                strays.append(Problem(entry.key, f"{entry.unsafe}, {where}"))
        names = (e.name for e in entries if e.is_dir)
        return sorted(n for n in names if _TENANT_DIR_RE.fullmatch(n) and n not in (".", ".."))

    def objects(self, tenant: str, lo: datetime | None, hi: datetime | None) -> list[ArchivedObject]:
        """The objects of ``tenant`` that may hold events of ``[lo, hi]``.

        An entry where an object or a month directory of the window should be
        that is not one (a symbolic link, a FIFO, a directory named like an
        object) raises :class:`ArchiveReadError` naming it: never fewer
        events, silently.
        """
        strays: list[Problem] = []
        found = self.scan(tenant, lo, hi, strays, strict=True)
        if strays:
            raise _refused(self._store, tenant, *strays)
        return found

    def scan(
        self,
        tenant: str,
        lo: datetime | None,
        hi: datetime | None,
        strays: list[Problem],
        *,
        strict: bool = False,
    ) -> list[ArchivedObject]:
        """The objects of ``tenant`` in ``[lo, hi]``; what is not the archive's own is added to ``strays``.

        Strays: entries the store refused (:attr:`Entry.unsafe`), a directory
        named like an object, a file named like a month directory, a tenant or
        month directory the store refused to list.  ``strict`` (for reads)
        keeps only those that could hold events of the window: a refused
        listing then raises.
        """
        # An object lives in the month of its start, so months after `hi`
        # cannot overlap; earlier months can (a window may span months).
        last_month = None if hi is None else _keys.month(hi)
        months: list[str] = []
        for e in self.survey(tenant, None if strict else strays):
            month = _MONTH_RE.fullmatch(e.name) is not None
            if month and last_month is not None and e.name > last_month:
                continue
            if e.unsafe is not None:
                if month or not strict:
                    where = "where a month directory should be" if month else "among the month directories"
                    strays.append(Problem(e.key, f"{e.unsafe}, {where}"))
            elif month and e.is_dir:
                months.append(e.key)
            elif month:
                strays.append(Problem(e.key, "a file, where a month directory should be"))
        months.sort()
        listed = self.map(lambda m: self.survey(m, None if strict else strays), months)
        found: list[ArchivedObject] = []
        for entry in (e for listing in listed for e in listing):
            info = _keys.parse_key(entry.name)
            if info is None or info.tenant_id != tenant:
                if entry.unsafe is not None and not strict:
                    strays.append(Problem(entry.key, f"{entry.unsafe}, among the objects"))
                continue
            if (hi is not None and info.start > hi) or (lo is not None and info.end + _SECOND < lo):
                continue
            if entry.unsafe is not None:
                strays.append(Problem(entry.key, f"{entry.unsafe}, where an object should be"))
                continue
            if entry.is_dir:
                strays.append(Problem(entry.key, "a directory, where an object should be"))
                continue
            found.append(
                ArchivedObject(
                    key=entry.key,
                    tenant_id=tenant,
                    start=info.start,
                    end=info.end,
                    size=entry.size,
                    digest=info.digest,
                )
            )
        found.sort(key=lambda o: (o.start, o.end, o.key))
        return found

    # -- reading ---------------------------------------------------------------

    def read_object(self, obj: ArchivedObject, lo: datetime | None, hi: datetime | None) -> pa.Table:
        """The rows of ``obj`` in ``[lo, hi]`` as :data:`SCHEMA`, decoding only row groups that can hold them.

        The object is checked against the digest in its name (see
        :func:`coldtier._format.decode`), so a damaged object is an
        :class:`IntegrityError`, never wrong events.
        """
        data = self.get(obj.key)
        where = f"{obj.key} in {self._store.description()}"
        try:
            return _format.decode(data, lo, hi, digest=obj.digest, keys=lambda meta: self.keys(obj, meta))
        except ColdTierError:  # a key that cannot be used (KeyUnavailable is an OSError too)
            raise
        except _format.Damaged as exc:
            raise IntegrityError(f"{where} is damaged: {exc}; run verify") from exc
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise IntegrityError(f"{where} is unreadable: {exc}") from exc

    def keys(self, obj: ArchivedObject, meta: dict[str, str]) -> Any:
        """Decryption properties for ``obj`` if its footer names a tenant key (coldtier._crypto)."""
        key_id = sealed_by(meta)
        if key_id is None:
            return None
        if self.cipher is None:
            raise no_key(obj.tenant_id, key_id)
        return self.cipher.decryption(obj.tenant_id, key_id)

    def read(
        self, tenant: str, lo: datetime | None, hi: datetime | None, progress: Progress | None
    ) -> pa.Table:
        objs = self.objects(tenant, lo, hi)
        tally = Tally(progress, objs)
        tables = self.map(lambda o: tally.done(o, self.read_object(o, lo, hi)), objs)
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        return with_tenant(_format.unique_sorted(table), tenant)

    def runs(
        self, tenant: str, lo: datetime | None, hi: datetime | None, progress: Progress | None = None
    ) -> Iterator[tuple[list[ArchivedObject], pa.Table]]:
        """The selection of :meth:`read` as :data:`SCHEMA` tables, one per run of overlapping objects.

        Runs come in time order, each sorted, each event id once across all of
        them.  The next run is fetched while the caller works on this one.
        """
        objs = self.objects(tenant, lo, hi)
        tally = Tally(progress, objs)
        runs = list(_overlapping(objs))

        def load(run: list[ArchivedObject]) -> pa.Table:
            tables = self.map(lambda o: tally.done(o, self.read_object(o, lo, hi)), run)
            return _format.unique_sorted(pa.concat_tables(tables))

        # Copies of one event share its timestamp, so they fall in one run;
        # `seen` only catches distinct events that reuse an id.
        def reread(done: list[ArchivedObject]) -> list[pa.Array]:
            return [c for o in done for c in self.read_object(o, lo, hi).column("event_id").chunks]

        seen: GivenIds[ArchivedObject] = GivenIds(reread)
        if not runs:
            return
        with ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(load, runs[0])
            for index, run in enumerate(runs):
                table = pending.result()
                if index + 1 < len(runs):
                    pending = ahead.submit(load, runs[index + 1])
                yield run, seen.first_time(run, table)

    def events(
        self, tenant: str, lo: datetime | None, hi: datetime | None, progress: Progress | None
    ) -> Iterator[Event]:
        loads = orjson.loads
        for run, table in self.runs(tenant, lo, hi, progress):
            columns = [table.column(name).to_pylist() for name in SCHEMA.names]
            as_uuid = _canonical_uuid if all_canonical_uuids(table.column("event_id")) else uuid.UUID
            # Positional: Event's fields in order (id, event_type, entity_id,
            # tenant_id, payload, timestamp, metadata, version).
            for eid, etype, entity, payload, ts, meta, version in zip(*columns, strict=True):
                try:
                    event = Event(
                        as_uuid(eid),
                        etype,
                        entity,
                        tenant,
                        loads(payload),
                        ts.replace(tzinfo=UTC),
                        None if meta is None else loads(meta),
                        version,
                    )
                except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                    keys = ", ".join(o.key for o in run)
                    raise IntegrityError(
                        f"event {eid!r} in {keys} of {self._store.description()} is malformed: {exc}"
                    ) from exc
                yield event


def _canonical_uuid(
    text: str, _new: Any = object.__new__, _set: Any = object.__setattr__, _unknown: Any = uuid.SafeUUID.unknown
) -> uuid.UUID:
    """``uuid.UUID(text)`` for text already known to be canonical UUID text, in 60 % of its time.

    Builds the object the way ``uuid.UUID.__setstate__`` (unpickling) does —
    its two slots, ``int`` and ``is_safe`` — without ``__init__``'s parsing
    of every accepted spelling.  Equal, hashing and printing the same as
    ``uuid.UUID(text)``; only for ids :func:`all_canonical_uuids` vouched for.
    """
    value = _new(uuid.UUID)
    _set(value, "int", int(text.replace("-", ""), 16))
    _set(value, "is_safe", _unknown)
    return value  # type: ignore[no-any-return]


class Refused(ArchiveReadError):
    """A read met what is not the archive's own (never followed or opened); ``strays`` says what."""

    strays: tuple[Problem, ...] = ()


def _refused(store: ObjectStore, prefix: str, *strays: Problem) -> Refused:
    more = f" (and {len(strays) - 1} more; run verify)" if len(strays) > 1 else ""
    error = Refused(
        f"listing {prefix or 'the top'} in {store.description()} failed: refused {strays[0]}{more}"
    )
    error.strays = strays
    return error


def refusals(exc: BaseException) -> list[Problem]:
    """What ``exc`` (a read's error) refused: the entries not followed or opened, or ``[]`` if none."""
    if isinstance(exc, Refused):
        return list(exc.strays)
    return [
        Problem(e.key, f"{e.found}, where {e.expected} should be")
        for e in causes(exc)
        if isinstance(e, UnsafeEntry)
    ][:1]


def with_tenant(table: pa.Table, tenant: str) -> pa.Table:
    """``table`` with the ``tenant_id`` column :meth:`Archive.read` adds."""
    return table.append_column(
        pa.field("tenant_id", pa.string(), nullable=False),
        pa.repeat(pa.scalar(tenant, pa.string()), table.num_rows),
    )


class Tally:
    """Reports bytes of finished objects to a :data:`Progress` callback, thread-safely."""

    def __init__(self, progress: Progress | None, objs: list[ArchivedObject]) -> None:
        self._progress = progress
        self._total = sum(o.size for o in objs)
        self._done = 0
        self._lock = threading.Lock()
        if progress is not None:
            progress(0, self._total)

    def done(self, obj: ArchivedObject, result: T) -> T:
        if self._progress is not None:
            with self._lock:
                self._done += obj.size
                self._progress(self._done, self._total)
        return result


def _overlapping(objs: list[ArchivedObject]) -> Iterator[list[ArchivedObject]]:
    """Runs of objects (sorted by start) whose named windows overlap, in time order.

    Every event of a run is earlier than every event of the next run.
    """
    run: list[ArchivedObject] = []
    reach = datetime.min.replace(tzinfo=UTC)
    for obj in objs:
        if run and obj.start > reach:
            yield run
            run = []
        reach = max(reach, obj.end + _SECOND) if run else obj.end + _SECOND
        run.append(obj)
    if run:
        yield run
