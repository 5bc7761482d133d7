"""The ``Archive`` protocol: what every backend promises (DESIGN.md §1-2).

The conformance suite in :mod:`coldtier.testing` tests exactly the promises
written in these docstrings.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa

from ._types import ArchivedObject, Event, ExpireReport, Receipt, RepackReport, VerifyReport

if TYPE_CHECKING:
    from .keys import Shredded

__all__ = ["Archive", "EventsInput", "Progress"]

EventsInput: TypeAlias = Iterable[Event] | pa.Table | pa.RecordBatchReader
#: ``progress(done_bytes, total_bytes)``: how far a read or verify has come.
Progress: TypeAlias = Callable[[int, int], None]


class Archive(abc.ABC):
    """A cold-tier archive of tenants' events, selected by a URL.

    Guarantees, on every backend:

    * **Durable or error.** :meth:`archive` returns only after every object of
      the batch is durably stored and confirmed; otherwise it raises
      :class:`~coldtier.ArchiveWriteError` and the caller must keep its data.
    * **Never overwrite.** Every write is create-only; an existing object is
      never replaced or deleted by :meth:`archive`.
    * **Idempotent.** Repeating a call with the same tenant, window and events
      leaves exactly one copy and succeeds with ``created=False``.
    * **Nothing partial is ever visible** under a final key.
    * **Validated before anything is written**; bad input is
      :class:`~coldtier.InvalidRequest`.
    * **Safe to share between threads.** Any method may be called from many
      threads at once on one archive; concurrent repeats of a call still
      leave one copy.
    """

    @classmethod
    @abc.abstractmethod
    def from_url(cls, url: str, /, **options: Any) -> Archive:
        """Build the archive a URL names; unknown options are ``InvalidRequest``."""

    @abc.abstractmethod
    def archive(self, tenant_id: str, start: datetime, end: datetime, events: EventsInput) -> Receipt:
        """Store ``events`` of ``tenant_id`` in the inclusive window ``[start, end]``.

        ``events`` is an iterable of :class:`~coldtier.Event`, a
        ``pyarrow.Table`` or a ``pyarrow.RecordBatchReader`` (streamed part by
        part, so memory does not grow with the stream).  Returns once every
        object is durable; an empty batch is a no-op.  Large batches are split
        into several complete objects; a retry after a failure completes the rest.
        """

    @abc.abstractmethod
    def objects(
        self, tenant_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[ArchivedObject]:
        """Objects of ``tenant_id`` whose window overlaps ``[start, end]``, oldest first."""

    @abc.abstractmethod
    def read(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> pa.Table:
        """Events with ``start <= timestamp <= end``, each event id once.

        Sorted by ``(timestamp, event_id)``; the stored columns plus ``tenant_id``.
        Reads only objects whose named window overlaps.  ``progress(done_bytes,
        total_bytes)``, if given, is called once before the first object is
        read and after each one (from worker threads).
        """

    def read_tables(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[pa.Table]:
        """The selection of :meth:`read` as a stream of tables, in time order, each event once.

        Memory is bounded by the largest run of objects whose windows overlap
        (one object for the usual daily or hourly batches), not by the
        selection.  The default reads everything at once.
        """
        yield self.read(tenant_id, start, end, progress=progress)

    @abc.abstractmethod
    def events(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[Event]:
        """The selection of :meth:`read` as :class:`~coldtier.Event`, streamed object by object."""

    def read_object(
        self, obj: ArchivedObject, start: datetime | None = None, end: datetime | None = None
    ) -> pa.Table:
        """One object's events in ``[start, end]`` (as stored, with ``tenant_id``): a worker's unit.

        An archive pickles (as its URL and non-secret options; the unpickling
        process takes credentials from its own environment), and so does an
        :class:`~coldtier.ArchivedObject`, so both can be sent to a worker.
        """
        raise NotImplementedError(f"{type(self).__name__} does not read single objects")

    def verify_object(self, obj: ArchivedObject) -> VerifyReport:
        """One object's check, as :meth:`verify` makes it: a worker's unit."""
        raise NotImplementedError(f"{type(self).__name__} does not verify single objects")

    def shred(self, tenant_id: str) -> Shredded:
        """Destroy ``tenant_id``'s encryption key, durably (DESIGN.md §9); no object is touched.

        From then on nobody, coldtier included, can read that tenant's encrypted
        columns: ``read``/``events`` raise :class:`~coldtier.KeyUnavailable`
        (``shredded=True``), ``verify`` lists the objects in
        ``VerifyReport.shredded``, and ``archive`` for the tenant is refused
        until :meth:`new_key` makes a new key.
        """
        raise NotImplementedError(f"{type(self).__name__} does not encrypt")

    def new_key(self, tenant_id: str) -> str:
        """Create a new key for a tenant whose key was shredded, so archiving for it resumes; its id."""
        raise NotImplementedError(f"{type(self).__name__} does not encrypt")

    @abc.abstractmethod
    def tenants(self) -> list[str]:
        """Sorted ids of the tenants present.

        An entry beside the tenants that the store refuses to follow or open
        (a symbolic link planted under a local root) raises
        :class:`~coldtier.ArchiveReadError` naming it: it may be a tenant's
        directory replaced by a link, and a list without it would be short,
        silently.  ``verify()`` reports it as a problem and checks the rest.
        """

    @abc.abstractmethod
    def verify(
        self,
        tenant_id: str | None = None,
        *,
        progress: Progress | None = None,
        shard: tuple[int, int] | str | None = None,
        sample: float | None = None,
        state: str | os.PathLike[str] | None = None,
        recheck_after: timedelta | float | None = None,
        seed: int | None = None,
    ) -> VerifyReport:
        """Re-read and re-hash every object; check its footer and schema.

        A problem with an object is reported, not raised; a store that cannot
        be listed raises :class:`~coldtier.ArchiveReadError`, a location that
        does not exist :class:`~coldtier.ArchiveNotFound` (never "OK").  What
        is not the archive's own where a tenant, month or object should be — a
        symbolic link, a FIFO or device node (never followed or opened), a
        directory named like an object, a file named like a month — is a
        problem of its path, and everything else is still verified.

        To spread a scrub over machines and days (DESIGN.md §11):
        ``shard=(i, n)`` (or ``"i/n"``, ``1 <= i <= n``) checks only the
        objects whose key hashes to shard ``i`` of ``n`` — shards are
        disjoint, together they are every object, and an object keeps its
        shard as the archive grows; ``state`` names a JSON Lines file of
        objects verified without a problem, so a rerun skips those whose key
        and size are unchanged, unless their check is older than
        ``recheck_after`` (days, or a ``timedelta``); ``sample`` checks a
        random share ``(0, 1]`` of the rest (``seed``: the same seed draws
        the same objects of the same listing).  Skipped objects are counted in
        :attr:`VerifyReport.skipped`; the reports of several shards add up
        with :meth:`VerifyReport.combine`.
        """

    def repack(
        self,
        tenant_id: str,
        month: str | None = None,
        *,
        target_bytes: int = 64 * 2**20,
        min_objects: int = 2,
        grace: timedelta = timedelta(hours=1),
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> RepackReport:
        """Merge a tenant-month's small objects (all months if ``month`` is None) into ~``target_bytes`` ones.

        Objects under half the target are merged (each event once, sorted,
        format 2) and written create-only, then a create-only receipt names
        the merged objects and their sources; the sources are deleted only
        once ``grace`` has passed since that receipt (a later run, or
        ``grace=timedelta(0)``) and the merged objects verify.  Readers see
        the same events at every moment; a crash at any step loses nothing and
        a rerun completes it.  Objects the store protects (Object Lock, a
        storage class's minimum duration) are left as they are, each with the
        reason in ``skipped``: nothing is written that could not be finished.
        ``progress(what)``, if given, is called after each object read,
        written or deleted.
        """
        raise NotImplementedError(f"{type(self).__name__} does not repack")

    def expire(
        self,
        tenant_id: str,
        before: datetime,
        *,
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> ExpireReport:
        """Delete ``tenant_id``'s objects whose window lies wholly before ``before``.

        An object overlapping ``before`` (ending exactly at it, or straddling
        it) is kept; objects the store protects are refused and listed in
        ``refused``; with ``dry_run`` nothing is deleted.  An ``expire``
        receipt is written first, so verify knows the deletions were meant.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expire")

    @abc.abstractmethod
    def probe(self) -> None:
        """Prove the backend refuses a second create of the same object.

        Raises :class:`~coldtier.PreconditionUnsupported` when it does not.
        """

    @abc.abstractmethod
    def description(self) -> str:
        """Where the archive lives, e.g. ``s3://bucket/prefix``; never a credential."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description()}>"
