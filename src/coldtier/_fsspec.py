"""The one write/read engine every backend shares, built on an fsspec filesystem.

A backend is only what differs: how it builds its filesystem from a URL
(:meth:`FsspecArchive.from_url`), how it spells "create only"
(:meth:`FsspecArchive._create`), and how it learns an existing object's size
and digest without downloading it (:meth:`FsspecArchive._stored`).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import _codec
from ._archive import Archive, EventsInput
from ._codec import SCHEMA, UTC, Window
from ._errors import (
    ArchiveWriteError,
    ColdTierError,
    IntegrityError,
    InvalidRequest,
    PreconditionUnsupported,
)
from ._options import OptionSpec, ParsedURL, parse_url
from ._types import ArchivedObject, Event, Problem, Receipt, VerifyReport

__all__ = ["FsspecArchive", "PROBE_PREFIX", "Progress"]

T = TypeVar("T")
#: Validation left to run while a batch encodes: raises, or returns None or a corrected table.
Check = Callable[[], "pa.Table | None"]
#: ``progress(done_bytes, total_bytes)``: how far a read or verify has come.
Progress = Callable[[int, int], None]

#: Where :meth:`Archive.probe` writes its canary; ``~`` is never in a tenant id.
PROBE_PREFIX = "_coldtier~probe"
_MONTH_RE = re.compile(r"\d{4}-\d\d")
_TENANT_DIR_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SECOND = timedelta(seconds=1) - timedelta(microseconds=1)

DEFAULTS: Mapping[str, Any] = {
    "max_object_bytes": 256 * 2**20,
    "object_events": 262_144,
    "row_group_events": 131_072,
    "compression": "zstd",
    "compression_level": None,
    "workers": min(4, os.cpu_count() or 1),
}


class FsspecArchive(Archive):
    """An :class:`Archive` on any fsspec filesystem with a create-only write.

    Subclasses set :attr:`scheme` and :attr:`OPTIONS`, implement
    :meth:`_from_parsed` and :meth:`_create`, and may override
    :meth:`_stored` (default: none known, so confirmation downloads).
    """

    scheme: ClassVar[str]
    #: Backend-specific options (on top of :data:`coldtier._options.COMMON_OPTIONS`).
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {}

    def __init__(self, fs: Any, root: str, *, description: str, **options: Any) -> None:
        self._fs = fs
        self._root = root.rstrip("/")
        self._description = description
        settings = {**DEFAULTS, **{k: v for k, v in options.items() if k in DEFAULTS}}
        self._max_object_bytes: int = settings["max_object_bytes"]
        self._object_events: int = settings["object_events"]
        self._row_group_events: int = settings["row_group_events"]
        compression = settings["compression"]
        self._compression: str = "none" if compression is None else compression
        self._compression_level: int | None = settings["compression_level"]
        self._workers: int = settings["workers"]

    # -- construction ------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> FsspecArchive:
        return cls._from_parsed(parse_url(url, cls.OPTIONS, options))

    @classmethod
    def _from_parsed(cls, parsed: ParsedURL) -> FsspecArchive:
        """Note for implementers: build the filesystem and call ``cls(fs, root, ...)``."""
        raise NotImplementedError

    # -- primitives a backend supplies ---------------------------------------

    def _create(self, path: str, data: bytes, sha256: str) -> bool:
        """Store ``data`` at ``path`` only if nothing is there; durable on return.

        Returns True when this call created the object and False when the
        store refused because an object already exists (which may be our own
        earlier write whose response was lost).  Must never leave a partial
        object at ``path``.  Note for implementers: raise anything on failure;
        the engine turns it into :class:`ArchiveWriteError`.
        """
        raise NotImplementedError

    def _stored(self, path: str) -> tuple[int, str | None]:
        """Size and full SHA-256 hex of the object at ``path``, if the store keeps it.

        Note for implementers: the default learns only the size; confirmation
        then downloads the object and compares bytes.
        """
        return int(self._fs.size(path)), None

    def _fetch(self, path: str) -> bytes:
        """The whole object at ``path``."""
        data: bytes = self._fs.cat_file(path)
        return data

    def _list(self, path: str) -> list[dict[str, Any]]:
        """Entries directly under ``path`` (fsspec ``ls(detail=True)``); [] if none."""
        try:
            entries: list[dict[str, Any]] = self._fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        return entries

    def _remove(self, path: str) -> None:
        self._fs.rm_file(path)

    # -- helpers -----------------------------------------------------------

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _key(self, path: str) -> str:
        return path.rstrip("/")[len(self._root) + 1 :]

    def description(self) -> str:
        return self._description

    def _map(self, fn: Callable[[T], Any], items: list[T]) -> list[Any]:
        if len(items) <= 1 or self._workers <= 1:
            return [fn(item) for item in items]
        with ThreadPoolExecutor(min(self._workers, len(items))) as pool:
            futures = [pool.submit(fn, item) for item in items]
            return _results(futures)

    # -- writing -------------------------------------------------------------

    def archive(self, tenant_id: str, start: datetime, end: datetime, events: EventsInput) -> Receipt:
        tenant = _codec.validate_tenant(tenant_id)
        win = _codec.window(start, end)
        if isinstance(events, pa.RecordBatchReader):
            return self._archive_stream(tenant, win, events)
        checks: list[Check] = []
        if isinstance(events, (pa.Table, pa.RecordBatch)):
            # The costly checks (JSON text, UUID text, unique ids) run while the
            # parts encode; _store_table writes nothing before they pass.
            table = _codec.conform_arrow(tenant, win, events)
            checks = _codec.arrow_checks(table)
        elif isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
            raise InvalidRequest(
                "events must be an iterable of coldtier.Event, a pyarrow.Table or a "
                f"pyarrow.RecordBatchReader, got {type(events).__name__}"
            )
        else:
            table = _codec.from_events(tenant, win, events)
        if table.num_rows == 0:
            return Receipt(keys=(), events=0, bytes=0, created=False)
        table = _codec.sort_events(table)
        self._refuse_oversized_events(tenant, win, table)
        return self._store_table(tenant, win, table, checks)

    def _refuse_oversized_events(self, tenant: str, win: Window, table: pa.Table) -> None:
        """An event that cannot fit in one object is bad input: refuse it before any write.

        Only events whose text alone is over half the limit are encoded on
        their own to find out (compression may still make them fit).
        """
        limit = self._max_object_bytes
        names = ("event_type", "entity_id", "payload", "metadata")
        if sum(table.column(name).nbytes for name in names) <= limit // 2:
            return  # even all of the batch's text together is under half the limit
        sizes = None
        for name in names:
            length = pc.fill_null(pc.binary_length(table.column(name)), 0)
            sizes = length if sizes is None else pc.add(sizes, length)
        if sizes is None or not pc.any(pc.greater(sizes, limit // 2)).as_py():
            return
        for index in pc.indices_nonzero(pc.greater(sizes, limit // 2)).to_pylist():
            row = table.slice(index, 1)
            data = _codec.encode(
                row,
                _codec.footer(tenant, win, 1, None, None),
                compression=self._compression,
                compression_level=self._compression_level,
                row_group_events=self._row_group_events,
            )
            if len(data) > limit:
                raise InvalidRequest(
                    f"event {row.column('event_id')[0].as_py()} encodes to {len(data)} bytes, more than "
                    f"max_object_bytes={limit}; nothing was written"
                )

    def _rows_per_object(self, table: pa.Table) -> int:
        # Parquet (dictionary + zstd) is smaller than Arrow's in-memory form, so
        # sizing parts by Arrow bytes keeps each object under the limit.
        per_row = max(1.0, table.nbytes / max(1, table.num_rows))
        by_bytes = int(self._max_object_bytes * 0.8 / per_row)
        return max(1, min(self._object_events, by_bytes))

    def _store_table(
        self, tenant: str, win: Window, table: pa.Table, checks: Sequence[Check] = ()
    ) -> Receipt:
        """Store a sorted table as parts of ``object_events`` rows (see :meth:`_pipeline`).

        ``checks`` are validation still to run (see :func:`_codec.arrow_checks`):
        they run side by side while the first parts encode, and no part is
        written before all pass.  A check may return a corrected table to
        store instead (the encoded parts are then dropped and the store starts
        over).
        """
        if checks and self._workers <= 1:
            table = _codec.sort_events(_run_checks(checks, None) or table)
            checks = ()
        per = self._rows_per_object(table)
        while True:
            parts = list(_codec.chunks(table, per))
            try:
                if self._workers <= 1:
                    results = [
                        self._stored_part(
                            tenant, win, part.num_rows, *self._encode_numbered(tenant, win, parts, i)
                        )
                        for i, part in enumerate(parts)
                    ]
                else:
                    results, replacement = self._pipeline(tenant, win, parts, checks)
                    checks = ()
                    if replacement is not None:
                        table = _codec.sort_events(replacement)
                        per = self._rows_per_object(table)
                        continue
            except _TooLarge:
                if per == 1:
                    raise ArchiveWriteError(
                        f"a single event encodes to more than max_object_bytes={self._max_object_bytes}"
                    ) from None
                per = max(1, per // 2)
                checks = ()  # parts are only awaited once the checks have passed
                continue
            return _receipt(results)

    def _encode_numbered(
        self, tenant: str, win: Window, parts: list[pa.Table], index: int
    ) -> tuple[bytes, str]:
        numbered = len(parts) > 1
        part, parts_count = (index, len(parts)) if numbered else (None, None)
        return self._encode_part(tenant, win, parts[index], part, parts_count)

    def _pipeline(
        self, tenant: str, win: Window, parts: list[pa.Table], checks: Sequence[Check]
    ) -> tuple[list[_Stored], pa.Table | None]:
        """Encode and write ``parts`` in two stages of ``workers`` threads each.

        Encoders turn parts into bytes and digests; writers store them in part
        order as they come.  Separate stages keep the two overlapped: while a
        store is busy with part k, the cores encode the next parts (workers
        that each encoded then wrote their own part would all encode, then all
        wait on the store, in step).  Encoders run at most ``2 * workers``
        parts ahead of the writers, which bounds memory when the store is slow.
        """
        count = len(parts)
        workers = min(self._workers, count)
        # Part i may encode once i < (parts written) + 2 * workers.  Gating on
        # the index, not on a counting semaphore, matters: with a semaphore a
        # later part could take the last permit while the part the writers
        # wait for is still blocked, and the pipeline would hang.
        gate = threading.Condition()
        written_count = 0
        stop = threading.Event()

        def encode(index: int) -> tuple[bytes, str]:
            with gate:
                gate.wait_for(lambda: stop.is_set() or index < written_count + 2 * workers)
            if stop.is_set():
                raise _Abandoned
            return self._encode_numbered(tenant, win, parts, index)

        def write(index: int, data: bytes, sha256: str) -> _Stored:
            nonlocal written_count
            try:
                return self._stored_part(tenant, win, parts[index].num_rows, data, sha256)
            finally:
                with gate:
                    written_count += 1
                    gate.notify_all()

        with (
            ThreadPoolExecutor(workers) as encoders,
            ThreadPoolExecutor(workers) as writers,
            ThreadPoolExecutor(max(1, len(checks))) as checkers,
        ):
            encoded = [encoders.submit(encode, index) for index in range(count)]
            written: list[Future[_Stored]] = []
            try:
                replacement = _run_checks(checks, checkers)
                if replacement is None:
                    for index, future in enumerate(encoded):
                        written.append(writers.submit(write, index, *future.result()))
            finally:
                if len(written) < count:  # stopped early: release the encoders, keep no part
                    stop.set()
                    for future in encoded:
                        future.cancel()
                    with gate:
                        gate.notify_all()
                    _settle(encoded)
                    _settle(written)
            if replacement is not None:
                return [], replacement
            return _results(written), None

    def _archive_stream(self, tenant: str, win: Window, reader: pa.RecordBatchReader) -> Receipt:
        """Archive a stream part by part; memory is bounded by ``workers`` parts.

        A stream that fits one object gives the same object as the same rows
        passed as a table.  Longer streams are split every ``object_events``
        rows; their parts carry ``coldtier.part`` but no ``coldtier.parts``
        (the count is not known until the end).  Each part is validated before
        it is written, but a bad row late in a stream is found only after the
        earlier parts are stored (each complete; a corrected retry reuses them).
        """
        results: list[_Stored] = []
        pending: list[Future[_Stored]] = []
        chunks = _rechunk(reader, self._object_events)
        # Only the first part needs to know whether another follows (a lone
        # part is unnumbered); looking further ahead would hold a part more.
        head = list(itertools.islice(chunks, 2))
        single = len(head) < 2

        def parts() -> Iterator[pa.Table]:
            while head:
                yield head.pop(0)  # popped, so the list holds it no longer
            yield from chunks

        with ThreadPoolExecutor(max(1, self._workers)) as pool:
            try:
                for index, part in enumerate(parts()):
                    table = _codec.sort_events(_codec.from_arrow(tenant, win, part))
                    del part
                    self._refuse_oversized_events(tenant, win, table)
                    numbered = None if single else index
                    pending.append(pool.submit(self._store_stream_part, tenant, win, table, numbered))
                    del table
                    # A free slot before the next part is read: at most `workers`
                    # parts are held at any time, counting the one being checked.
                    if len(pending) >= max(1, self._workers):
                        results.append(pending.pop(0).result())
            finally:
                done = _results(pending)
            results.extend(done)
        if not results:
            return Receipt(keys=(), events=0, bytes=0, created=False)
        return _receipt(results)

    def _store_stream_part(self, tenant: str, win: Window, table: pa.Table, part: int | None) -> _Stored:
        try:
            return self._store_part(tenant, win, table, part, None)
        except _TooLarge:
            raise ArchiveWriteError(
                f"a part of {table.num_rows} events of the stream encodes to more than "
                f"max_object_bytes={self._max_object_bytes}; lower object_events (earlier parts are "
                "stored, each complete)"
            ) from None

    def _store_part(
        self, tenant: str, win: Window, table: pa.Table, part: int | None, parts: int | None
    ) -> _Stored:
        data, sha256 = self._encode_part(tenant, win, table, part, parts)
        return self._stored_part(tenant, win, table.num_rows, data, sha256)

    def _encode_part(
        self, tenant: str, win: Window, table: pa.Table, part: int | None, parts: int | None
    ) -> tuple[bytes, str]:
        """One object's bytes and their SHA-256 (hashed once: key, checksum and confirmation)."""
        meta = _codec.footer(tenant, win, table.num_rows, part, parts)
        data = _codec.encode(
            table,
            meta,
            compression=self._compression,
            compression_level=self._compression_level,
            row_group_events=self._row_group_events,
        )
        if len(data) > self._max_object_bytes:
            raise _TooLarge
        return data, hashlib.sha256(data).hexdigest()

    def _stored_part(self, tenant: str, win: Window, events: int, data: bytes, sha256: str) -> _Stored:
        key = _codec.object_key(tenant, win, sha256[:16])
        created = self._put(key, data, sha256)
        return _Stored(key, events, len(data), created)

    def _put(self, key: str, data: bytes, sha256: str) -> bool:
        path = self._path(key)
        try:
            created = self._create(path, data, sha256)
        except ColdTierError:
            raise
        except Exception as exc:
            raise ArchiveWriteError(
                f"could not store {key} in {self._description}: {_reason(exc)}; it may not be "
                "stored, keep the originals (a retry completes or confirms it)"
            ) from exc
        if not created:
            self._confirm(key, data, sha256)
        return created

    def _confirm(self, key: str, data: bytes, sha256: str) -> None:
        """The store refused our create: make sure what is there is what we wrote."""
        path = self._path(key)
        try:
            size, stored = self._stored(path)
            if size == len(data) and stored is None:
                stored = hashlib.sha256(self._fetch(path)).hexdigest()
        except ColdTierError:
            raise
        except Exception as exc:
            raise ArchiveWriteError(
                f"{key} already exists in {self._description} but could not be confirmed: {_reason(exc)}"
            ) from exc
        if size != len(data) or stored != sha256:
            raise IntegrityError(
                f"{key} already exists in {self._description} with different content "
                f"({size} bytes, sha256 {stored}) than this batch ({len(data)} bytes, "
                f"sha256 {sha256})"
            )

    # -- listing -------------------------------------------------------------

    def tenants(self) -> list[str]:
        names = (self._key(e["name"]) for e in self._list(self._root) if e.get("type") == "directory")
        return sorted(n for n in names if _TENANT_DIR_RE.fullmatch(n) and n not in (".", ".."))

    def objects(
        self, tenant_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[ArchivedObject]:
        tenant = _codec.validate_tenant(tenant_id)
        lo, hi = _codec.optional_window(start, end)
        # An object lives in the month of its start, so months after `end`
        # cannot overlap; earlier months can (a window may span months).
        last_month = None if hi is None else f"{hi.year:04d}-{hi.month:02d}"
        months = sorted(
            e["name"]
            for e in self._list(self._path(tenant))
            if e.get("type") == "directory"
            and _MONTH_RE.fullmatch(name := e["name"].rstrip("/").rsplit("/", 1)[-1])
            and (last_month is None or name <= last_month)
        )
        found: list[ArchivedObject] = []
        for listing in self._map(self._list, months):
            for entry in listing:
                name = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                info = _codec.parse_key(name)
                if info is None or info.tenant_id != tenant or entry.get("type") != "file":
                    continue
                # Key times are truncated to the second: the true end may be later.
                if (hi is not None and info.start > hi) or (lo is not None and info.end + _SECOND < lo):
                    continue
                found.append(
                    ArchivedObject(
                        key=self._key(entry["name"]),
                        tenant_id=tenant,
                        start=info.start,
                        end=info.end,
                        size=int(entry.get("size") or 0),
                        digest=info.digest,
                    )
                )
        found.sort(key=lambda o: (o.start, o.end, o.key))
        return found

    # -- reading -------------------------------------------------------------

    def _read_object(self, obj: ArchivedObject, lo: datetime | None, hi: datetime | None) -> pa.Table:
        """The rows of ``obj`` in ``[lo, hi]``, decoding only row groups that can hold them.

        The bytes are checked against the digest in the name first, so a
        damaged object is an :class:`IntegrityError`, never wrong events.
        """
        data = self._fetch(self._path(obj.key))
        if obj.digest is not None and (actual := _codec.digest_of(data)) != obj.digest:
            raise IntegrityError(
                f"{obj.key} in {self._description} is damaged: its content digest is {actual}; run verify"
            )
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
            groups = _row_groups(pf, lo, hi)
            table = pf.read_row_groups(groups, use_threads=False) if groups else SCHEMA.empty_table()
            table = _conform(table)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise IntegrityError(f"{obj.key} in {self._description} is unreadable: {exc}") from exc
        # Row groups whose statistics lie inside [lo, hi] need no row filter
        # (the statistics, not the name, so a foreign file is filtered exactly).
        if (lo is not None or hi is not None) and not _inside(pf, groups, lo, hi):
            ts = table.column("timestamp")
            mask = None
            if lo is not None:
                mask = pc.greater_equal(ts, pa.scalar(lo.replace(tzinfo=None), pa.timestamp("us")))
            if hi is not None:
                upper = pc.less_equal(ts, pa.scalar(hi.replace(tzinfo=None), pa.timestamp("us")))
                mask = upper if mask is None else pc.and_(mask, upper)
            table = table.filter(mask)
        return table

    def read(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> pa.Table:
        """Events in ``[start, end]``; reads only objects whose named window overlaps.

        ``progress(done_bytes, total_bytes)``, if given, is called once before
        the first object is read and after each one (from worker threads).
        """
        tenant = _codec.validate_tenant(tenant_id)
        lo, hi = _codec.optional_window(start, end)
        objs = self.objects(tenant, lo, hi)
        tally = _Tally(progress, objs)
        tables = self._map(lambda o: tally.done(o, self._read_object(o, lo, hi)), objs)
        table = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
        table = _unique_sorted(table)
        return table.append_column(
            pa.field("tenant_id", pa.string(), nullable=False),
            pa.array([tenant] * table.num_rows, pa.string()) if table.num_rows else pa.array([], pa.string()),
        )

    def events(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[Event]:
        """The selection of :meth:`read`, in the same order, streamed.

        Objects whose windows overlap are read together (in parallel) and
        merged, so memory is bounded by the largest run of overlapping objects
        (one object for the usual daily or hourly batches), not by the selection.
        """
        tenant = _codec.validate_tenant(tenant_id)
        lo, hi = _codec.optional_window(start, end)
        for run, table in self._runs(tenant, lo, hi, progress):
            columns = [table.column(name).to_pylist() for name in SCHEMA.names]
            for eid, etype, entity, payload, ts, meta, version in zip(*columns, strict=True):
                try:
                    event = Event(
                        id=uuid.UUID(eid),
                        event_type=etype,
                        entity_id=entity,
                        tenant_id=tenant,
                        payload=orjson.loads(payload),
                        timestamp=ts.replace(tzinfo=UTC),
                        metadata=None if meta is None else orjson.loads(meta),
                        version=version,
                    )
                except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                    keys = ", ".join(o.key for o in run)
                    raise IntegrityError(
                        f"event {eid!r} in {keys} of {self._description} is malformed: {exc}"
                    ) from exc
                yield event

    def _runs(
        self, tenant: str, lo: datetime | None, hi: datetime | None, progress: Progress | None = None
    ) -> Iterator[tuple[list[ArchivedObject], pa.Table]]:
        """The selection of :meth:`read` as :data:`SCHEMA` tables, one per run of overlapping objects.

        Runs come in time order, each sorted, each event id once across all of
        them.  The next run is fetched while the caller works on this one.
        """
        objs = self.objects(tenant, lo, hi)
        tally = _Tally(progress, objs)
        runs = list(_overlapping(objs))

        def load(run: list[ArchivedObject]) -> pa.Table:
            tables = self._map(lambda o: tally.done(o, self._read_object(o, lo, hi)), run)
            return _unique_sorted(pa.concat_tables(tables))

        # Copies of one event share its timestamp, so they fall in one run;
        # `seen` only catches distinct events that reuse an id.
        seen: set[str] = set()
        with ThreadPoolExecutor(1) as ahead:
            pending = ahead.submit(load, runs[0]) if runs else None
            for index, run in enumerate(runs):
                assert pending is not None
                table = pending.result()
                pending = ahead.submit(load, runs[index + 1]) if index + 1 < len(runs) else None
                ids = table.column("event_id").to_pylist()
                if not seen.isdisjoint(ids):
                    table = table.filter(pa.array([eid not in seen for eid in ids], pa.bool_()))
                seen.update(ids)
                yield run, table

    # -- verification ----------------------------------------------------------

    def verify(self, tenant_id: str | None = None, *, progress: Progress | None = None) -> VerifyReport:
        """Re-read every object (``workers`` at a time); ``progress`` as for :meth:`read`."""
        tenants = self.tenants() if tenant_id is None else [_codec.validate_tenant(tenant_id)]
        objs = [o for listed in self._map(self.objects, tenants) for o in listed]
        tally = _Tally(progress, objs)
        checked = self._map(lambda o: tally.done(o, self._verify_one(o)), objs)
        return VerifyReport(
            objects=len(objs),
            events=sum(n for n, _ in checked),
            problems=tuple(p for _, ps in checked for p in ps),
        )

    def _verify_one(self, obj: ArchivedObject) -> tuple[int, list[Problem]]:
        problems: list[Problem] = []

        def problem(message: str) -> tuple[int, list[Problem]]:
            problems.append(Problem(obj.key, message))
            return 0, problems

        try:
            data = self._fetch(self._path(obj.key))
        except Exception as exc:  # noqa: BLE001 - any failure to read is a finding
            return problem(f"cannot be read: {_reason(exc)}")
        if obj.digest is not None and (actual := _codec.digest_of(data)) != obj.digest:
            problem(f"content digest {actual} does not match the digest {obj.digest} in its name")
        try:
            pf = pq.ParquetFile(pa.BufferReader(data))
            table = pf.read(use_threads=False)
        except Exception as exc:  # noqa: BLE001
            return problem(f"is not readable Parquet: {exc}")
        got = [(f.name, f.type) for f in table.schema]
        want = [(f.name, f.type) for f in SCHEMA]
        if got != want:
            return problem(f"has schema {got}, expected {want}")
        if obj.digest is None:  # foreign (allsource-core) file: readability and schema only
            return table.num_rows, problems
        meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
        expect = {
            "coldtier.format": _codec.FORMAT_VERSION,
            "coldtier.tenant_id": obj.tenant_id,
            "coldtier.events": str(table.num_rows),
        }
        for name, value in expect.items():
            if meta.get(name) != value:
                problem(f"footer {name} is {meta.get(name)!r}, expected {value!r}")
        try:
            start = datetime.fromisoformat(meta["coldtier.start"])
            end = datetime.fromisoformat(meta["coldtier.end"])
        except (KeyError, ValueError):
            return problem("footer has no valid coldtier.start / coldtier.end")
        named = (_codec.key_time(obj.start), _codec.key_time(obj.end))
        if (_codec.key_time(start), _codec.key_time(end)) != named:
            problem("footer window does not match the window in its name")
        if table.num_rows:
            lo, hi = pc.min_max(table.column("timestamp")).values()
            if lo.as_py().replace(tzinfo=UTC) < start or hi.as_py().replace(tzinfo=UTC) > end:
                problem("holds events outside its window")
        return table.num_rows, problems

    # -- probing -------------------------------------------------------------

    def probe(self) -> None:
        key = f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}"
        path = self._path(key)
        first, second = b"coldtier probe: first write\n", b"coldtier probe: second write\n"
        try:
            if not self._create(path, first, hashlib.sha256(first).hexdigest()):
                raise PreconditionUnsupported(f"{self._description}: a fresh probe object already existed")
            if self._create(path, second, hashlib.sha256(second).hexdigest()):
                raise PreconditionUnsupported(
                    f"{self._description} accepted a second create of the same object: it does "
                    "not honour create-only writes, so archives could be overwritten"
                )
            if self._fetch(path) != first:
                raise PreconditionUnsupported(
                    f"{self._description} overwrote an object while refusing the create"
                )
        except ColdTierError:
            raise
        except Exception as exc:
            raise ArchiveWriteError(f"probe of {self._description} failed: {_reason(exc)}") from exc
        finally:
            with contextlib.suppress(Exception):  # best effort; the canary is harmless
                self._remove(path)


@dataclass(frozen=True, slots=True)
class _Stored:
    key: str
    events: int
    size: int
    created: bool


def _run_checks(checks: Sequence[Check], pool: ThreadPoolExecutor | None) -> pa.Table | None:
    """Run ``checks`` (side by side on ``pool`` if given); raise or correct as if run in order."""
    if pool is None or len(checks) < 2:
        corrected = None
        for check in checks:
            corrected = check() or corrected
        return corrected
    futures = [pool.submit(check) for check in checks]
    wait(futures)
    corrected = None
    for future in futures:
        corrected = future.result() or corrected  # the first failure in list order raises
    return corrected


class _Abandoned(Exception):
    """A part not encoded because its batch failed (validation or another part)."""


def _settle(futures: Iterable[Future[Any]]) -> None:
    """Wait for ``futures``, ignoring how they end (the caller has its own outcome)."""
    wait(list(futures))


class _TooLarge(Exception):
    """An encoded part exceeded ``max_object_bytes``; re-plan with smaller parts."""


def _results(futures: Iterable[Future[T]]) -> list[T]:
    """Wait for every future, then raise the first failure (no write left running)."""
    futures = list(futures)
    errors = [f.exception() for f in futures]
    for error in errors:
        if isinstance(error, _TooLarge):
            raise error
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _receipt(results: list[_Stored]) -> Receipt:
    return Receipt(
        keys=tuple(r.key for r in results),
        events=sum(r.events for r in results),
        bytes=sum(r.size for r in results),
        created=any(r.created for r in results),
    )


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "…"


def _rechunk(reader: pa.RecordBatchReader, size: int) -> Iterator[pa.Table]:
    """Re-slice a stream into tables of exactly ``size`` rows (the last may be short)."""
    buffered: list[pa.RecordBatch] = []
    rows = 0
    for incoming in reader:
        batch = incoming
        while batch.num_rows:
            take = min(size - rows, batch.num_rows)
            buffered.append(batch.slice(0, take))
            rows += take
            batch = batch.slice(take)
            if rows == size:
                yield pa.Table.from_batches(buffered)
                buffered, rows = [], 0
    if rows:
        yield pa.Table.from_batches(buffered)


def _row_groups(pf: pq.ParquetFile, lo: datetime | None, hi: datetime | None) -> list[int]:
    """Row groups whose timestamp statistics can overlap ``[lo, hi]``."""
    md = pf.metadata
    if lo is None and hi is None:
        return list(range(md.num_row_groups))
    index = pf.schema_arrow.get_field_index("timestamp")
    keep = []
    for i in range(md.num_row_groups):
        stats = md.row_group(i).column(index).statistics if index >= 0 else None
        if stats is not None and stats.has_min_max:
            mn, mx = stats.min, stats.max
            if (
                isinstance(mn, datetime)
                and isinstance(mx, datetime)
                and (
                    (hi is not None and mn.replace(tzinfo=UTC) > hi)
                    or (lo is not None and mx.replace(tzinfo=UTC) < lo)
                )
            ):
                continue
        keep.append(i)
    return keep


def _inside(pf: pq.ParquetFile, groups: list[int], lo: datetime | None, hi: datetime | None) -> bool:
    """Whether the timestamp statistics of every row group in ``groups`` lie within ``[lo, hi]``."""
    md = pf.metadata
    index = pf.schema_arrow.get_field_index("timestamp")
    if index < 0:
        return False
    for i in groups:
        stats = md.row_group(i).column(index).statistics
        if stats is None or not stats.has_min_max:
            return False
        mn, mx = stats.min, stats.max
        if not (isinstance(mn, datetime) and isinstance(mx, datetime)):
            return False
        if (lo is not None and mn.replace(tzinfo=UTC) < lo) or (
            hi is not None and mx.replace(tzinfo=UTC) > hi
        ):
            return False
    return True


def _conform(table: pa.Table) -> pa.Table:
    """Select and cast the stored columns to :data:`SCHEMA` (foreign files too)."""
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    table = table.select(SCHEMA.names)
    return table.cast(SCHEMA) if table.schema != SCHEMA else table


def _unique_sorted(table: pa.Table) -> pa.Table:
    """Sort by ``(timestamp, event_id)`` keeping each event id once (the first)."""
    if table.num_rows == 0:
        return table.replace_schema_metadata(None)
    table = _codec.sort_events(table.replace_schema_metadata(None))
    ids = table.column("event_id")
    if pc.count_distinct(ids).as_py() == table.num_rows:
        return table
    index = pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
    first = index.group_by("id", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return table.take(pc.take(first, pc.array_sort_indices(first)))


class _Tally:
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
        # Key times are truncated to the second: an object may end up to 1 s later.
        reach = max(reach, obj.end + _SECOND) if run else obj.end + _SECOND
        run.append(obj)
    if run:
        yield run
