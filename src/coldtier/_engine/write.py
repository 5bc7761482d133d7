"""The write pipeline: validated, sorted events → parts → complete objects, stored create-only.

Planning (how many rows a part), the two-stage encode/put pipeline and the
stream path live here; one object's encoding, put and confirmation in
:mod:`coldtier._engine.put`.

``archive()`` returns only when every object of the batch is durable and
confirmed (DESIGN.md §2): a refused create is confirmed against what is
stored, never taken on trust, and nothing is written before the batch passed
every check.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc

from .. import _digest, _format, _observe, _validate
from .._errors import ArchiveWriteError, InvalidRequest
from .._types import Receipt, Window
from .._validate.stream import SeenIds
from ..store import ObjectStore
from . import ledger
from .faults import reading
from .put import Encoded, Stored, TooLarge, encode, put
from .settings import Settings

__all__ = ["Writer"]

T = TypeVar("T")
#: Validation left to run while a batch encodes: raises, or returns None or a corrected table.
Check = Callable[[], "pa.Table | None"]
#: Below this many rows a one-part batch is checked, encoded and stored on the
#: caller's thread: starting thread pools would cost more than they save.
_INLINE_ROWS = 32_768


class _Abandoned(Exception):
    """A part not encoded because its batch failed (validation or another part)."""


class Writer:
    """Stores batches of one archive: splitting, encoding, create-only puts, confirmation."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self._store = store
        self._settings = settings

    def _recorded(self, tenant: str, win: Window, results: list[Stored]) -> Receipt:
        """The call's receipt, once the ledger records its objects (one small create-only put, §10)."""
        if self._settings.ledger:
            ledger.record_archive(self._store, tenant, win, results)
        return _receipt(results)

    def archive(self, tenant: str, win: Window, events: Any) -> Receipt:
        json = True  # check the JSON text, unless coldtier wrote it (see _validate.JsonWritten)
        if isinstance(events, _validate.JsonWritten):
            events, json = events.events, False
        if isinstance(events, pa.RecordBatchReader):
            return self._archive_stream(tenant, win, events, json=json)
        checks: list[Check] = []
        if isinstance(events, (pa.Table, pa.RecordBatch)):
            # The costly checks (JSON text, UUID text, unique ids) run while the
            # parts encode; _store_table writes nothing before they pass.
            table = _validate.conform_arrow(tenant, win, events)
            checks = _validate.arrow_checks(table, json=json)
        elif isinstance(events, (str, bytes, Mapping)) or not isinstance(events, Iterable):
            raise InvalidRequest(
                "events must be an iterable of coldtier.Event, a pyarrow.Table or a "
                f"pyarrow.RecordBatchReader, got {type(events).__name__}"
            )
        else:
            table = _validate.from_events(tenant, win, events)
        if table.num_rows == 0:
            return Receipt(keys=(), events=0, bytes=0, created=False)
        table = _format.sort_events(table)
        self._refuse_oversized_events(tenant, win, table)
        return self._store_table(tenant, win, table, checks)

    # -- planning ------------------------------------------------------------

    def _refuse_oversized_events(self, tenant: str, win: Window, table: pa.Table) -> None:
        """An event that cannot fit in one object is bad input: refuse it before any write.

        Only events whose text alone is over half the limit are encoded on
        their own to find out (compression may still make them fit).
        """
        limit = self._settings.max_object_bytes
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
            meta = _format.footer(tenant, win, 1, None, None, digest="")
            data = _format.encode(row, meta, **self._settings.encoding())
            if len(data) > limit:
                raise InvalidRequest(
                    f"event {row.column('event_id')[0].as_py()} encodes to {len(data)} bytes, more than "
                    f"max_object_bytes={limit}; nothing was written"
                )

    def _rows_per_object(self, table: pa.Table) -> int:
        # Parquet (dictionary + zstd) is smaller than Arrow's in-memory form, so
        # sizing parts by Arrow bytes keeps each object under the limit.
        per_row = max(1.0, table.nbytes / max(1, table.num_rows))
        by_bytes = int(self._settings.max_object_bytes * 0.8 / per_row)
        return max(1, min(self._settings.object_events, by_bytes))

    # -- tables ----------------------------------------------------------------

    def _store_table(self, tenant: str, win: Window, table: pa.Table, checks: Sequence[Check] = ()) -> Receipt:
        """Store a sorted table as parts of ``object_events`` rows (see :meth:`_pipeline`).

        ``checks`` are validation still to run (see :func:`_validate.arrow_checks`):
        they run side by side while the first parts encode, and no part is
        written before all pass.  A check may return a corrected table to
        store instead (the encoded parts are then dropped and the store starts
        over).
        """
        per = self._rows_per_object(table)
        # workers=1 still runs the checks beside the one encoder, and the
        # writes beside the encoding (one thread of each): only a small
        # one-part batch runs on the caller's thread alone.
        serial = table.num_rows <= min(per, _INLINE_ROWS)
        if checks and serial:
            table, encoded = self._encode_checked(tenant, win, table, checks)
            checks = ()
            if encoded is not None:
                return self._recorded(tenant, win, [self._put(encoded)])
        while True:
            parts = list(_chunks(table, per))
            try:
                if serial:
                    results = [self._put(self._encode_numbered(tenant, win, parts, i)) for i in range(len(parts))]
                else:
                    results, replacement = self._pipeline(tenant, win, parts, checks)
                    checks = ()
                    if replacement is not None:
                        table = _format.sort_events(replacement)
                        per = self._rows_per_object(table)
                        continue
            except TooLarge:
                if per == 1:
                    raise ArchiveWriteError(
                        "a single event encodes to more than "
                        f"max_object_bytes={self._settings.max_object_bytes}"
                    ) from None
                per = max(1, per // 2)
                checks = ()  # parts are only awaited once the checks have passed
                continue
            return self._recorded(tenant, win, results)

    def _encode_checked(
        self, tenant: str, win: Window, table: pa.Table, checks: Sequence[Check]
    ) -> tuple[pa.Table, Encoded | None]:
        """A small one-part batch: its checks and its digest on the shared hashing threads
        while this thread encodes it (no pool is started; a hand-off costs some µs).

        Returns the table to store and its object, or — when a check corrected
        the table, or the object came out too large — the table alone, for
        the caller to encode again.  Bad input raises before anything else.
        """
        checked = _digest.hashing_pool().submit(_run_checks, checks, None)
        encoded: Encoded | None
        try:
            encoded = encode(tenant, win, table, None, None, settings=self._settings, beside=True)
        except TooLarge:
            encoded = None
        except BaseException:
            checked.result()  # bad input is reported before any other failure
            raise
        corrected = checked.result()  # bad input raises here
        if corrected is not None:  # ids lower-cased: their order may change
            return _format.sort_events(corrected), None
        return table, encoded

    def _encode_numbered(self, tenant: str, win: Window, parts: list[pa.Table], index: int) -> Encoded:
        numbered = len(parts) > 1
        part, parts_count = (index, len(parts)) if numbered else (None, None)
        return self._encode_part(tenant, win, parts[index], part, parts_count)

    def _pipeline(
        self, tenant: str, win: Window, parts: list[pa.Table], checks: Sequence[Check]
    ) -> tuple[list[Stored], pa.Table | None]:
        """Encode and write ``parts`` in two stages of ``workers`` threads each.

        Encoders turn parts into bytes and digests; writers store them in part
        order as they come.  Separate stages keep the two overlapped: while a
        store is busy with part k, the cores encode the next parts (workers
        that each encoded then wrote their own part would all encode, then all
        wait on the store, in step).  Encoders run at most ``2 * workers``
        parts ahead of the writers, which bounds memory when the store is slow.
        """
        count = len(parts)
        workers = min(self._settings.workers, count)
        # Part i may encode once i < (parts written) + 2 * workers.  Gating on
        # the index, not on a counting semaphore, matters: with a semaphore a
        # later part could take the last permit while the part the writers
        # wait for is still blocked, and the pipeline would hang.
        gate = threading.Condition()
        written_count = 0
        stop = threading.Event()

        def encode(index: int) -> Encoded:
            with gate:
                gate.wait_for(lambda: stop.is_set() or index < written_count + 2 * workers)
            if stop.is_set():
                raise _Abandoned
            return self._encode_numbered(tenant, win, parts, index)

        def write(encoded: Encoded) -> Stored:
            nonlocal written_count
            try:
                return self._put(encoded)
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
            written: list[Future[Stored]] = []
            try:
                replacement = _run_checks(checks, checkers)
                if replacement is None:
                    for future in encoded:
                        written.append(writers.submit(write, future.result()))
            finally:
                if len(written) < count:  # stopped early: release the encoders, keep no part
                    stop.set()
                    for future in encoded:
                        future.cancel()
                    with gate:
                        gate.notify_all()
                    wait(encoded)
                    wait(written)
            if replacement is not None:
                return [], replacement
            return _results(written), None

    # -- streams ---------------------------------------------------------------

    def _archive_stream(
        self, tenant: str, win: Window, reader: pa.RecordBatchReader, *, json: bool = True
    ) -> Receipt:
        """Archive a stream part by part; memory is bounded by ``workers`` parts.

        A stream that fits one object gives the same object as the same rows
        passed as a table.  Longer streams are split every ``object_events``
        rows; their parts carry ``coldtier.part`` but no ``coldtier.parts``
        (the count is not known until the end).  Each part is validated before
        it is written, but a bad row late in a stream is found only after the
        earlier parts are stored (each complete; a corrected retry reuses them).
        """
        workers = max(1, self._settings.workers)
        results: list[Stored] = []
        pending: list[Future[Stored]] = []
        chunks = _rechunk(reader, self._settings.object_events)
        # Only the first part needs to know whether another follows (a lone
        # part is unnumbered); looking further ahead would hold a part more.
        head = list(itertools.islice(chunks, 2))
        single = len(head) < 2

        def parts() -> Iterator[pa.Table]:
            while head:
                yield head.pop(0)  # popped, so the list holds it no longer
            yield from chunks

        seen = SeenIds()

        def earlier() -> Iterator[pa.Array]:
            """The ids of the parts before, read back (only when a hash matches)."""
            results.extend(_results(pending))
            pending.clear()
            for stored in results:
                with reading(self._store, f"reading {stored.key}"):
                    data = self._store.get(stored.key)
                yield _format.open_parquet(data).read(columns=["event_id"]).column(0).combine_chunks()

        if single:  # one object: no pool to start
            for part in parts():
                table = _format.sort_events(_validate.from_arrow(tenant, win, part, json=json))
                self._refuse_oversized_events(tenant, win, table)
                results.append(self._store_stream_part(tenant, win, table, None))
        else:
            with ThreadPoolExecutor(workers) as pool:
                try:
                    for index, part in enumerate(parts()):
                        table = _format.sort_events(_validate.from_arrow(tenant, win, part, json=json))
                        del part
                        seen.add(table.column("event_id"), earlier)
                        self._refuse_oversized_events(tenant, win, table)
                        pending.append(pool.submit(self._store_stream_part, tenant, win, table, index))
                        del table
                        # A free slot before the next part is read: at most `workers`
                        # parts are held at any time, counting the one being checked.
                        if len(pending) >= workers:
                            results.append(pending.pop(0).result())
                finally:
                    done = _results(pending)
                results.extend(done)
        if not results:
            return Receipt(keys=(), events=0, bytes=0, created=False)
        return self._recorded(tenant, win, results)

    def _store_stream_part(self, tenant: str, win: Window, table: pa.Table, part: int | None) -> Stored:
        try:
            encoded = self._encode_part(tenant, win, table, part, None)
        except TooLarge:
            raise ArchiveWriteError(
                f"a part of {table.num_rows} events of the stream encodes to more than "
                f"max_object_bytes={self._settings.max_object_bytes}; lower object_events (earlier parts "
                "are stored, each complete)"
            ) from None
        return self._put(encoded)

    # -- one object ------------------------------------------------------------

    def _encode_part(
        self, tenant: str, call: Window, table: pa.Table, part: int | None, parts: int | None
    ) -> Encoded:
        return encode(tenant, call, table, part, parts, settings=self._settings)

    def _put(self, obj: Encoded) -> Stored:
        return put(self._store, obj, self._settings.encryption)


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


def _results(futures: Iterable[Future[T]]) -> list[T]:
    """Wait for every future, then raise the first failure (no write left running)."""
    futures = list(futures)
    errors = [f.exception() for f in futures]
    for error in errors:
        if isinstance(error, TooLarge):
            raise error
    for error in errors:
        if error is not None:
            raise error
    return [f.result() for f in futures]


def _receipt(results: list[Stored]) -> Receipt:
    _observe.new_objects(sum(r.created for r in results))
    return Receipt(
        keys=tuple(r.key for r in results),
        events=sum(r.events for r in results),
        bytes=sum(r.size for r in results),
        created=any(r.created for r in results),
    )


def _chunks(table: pa.Table, size: int) -> Iterator[pa.Table]:
    for offset in range(0, table.num_rows, size):
        yield table.slice(offset, size)


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
