"""The ``Archive`` protocol: what every backend promises (DESIGN.md §1-2).

The conformance suite in :mod:`coldtier.testing` tests exactly the promises
written in these docstrings.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any, TypeAlias

import pyarrow as pa

from ._types import ArchivedObject, Event, Receipt, VerifyReport

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
        """One object's events in ``[start, end]`` (as stored, with ``tenant_id``): a worker's unit."""
        raise NotImplementedError(f"{type(self).__name__} does not read single objects")

    def verify_object(self, obj: ArchivedObject) -> VerifyReport:
        """One object's check, as :meth:`verify` makes it: a worker's unit."""
        raise NotImplementedError(f"{type(self).__name__} does not verify single objects")

    @abc.abstractmethod
    def tenants(self) -> list[str]:
        """Sorted ids of the tenants present."""

    @abc.abstractmethod
    def verify(self, tenant_id: str | None = None, *, progress: Progress | None = None) -> VerifyReport:
        """Re-read and re-hash every object; check its footer and schema.

        A problem with an object is reported, not raised; a store that cannot
        be listed raises :class:`~coldtier.ArchiveReadError`, a location that
        does not exist :class:`~coldtier.ArchiveNotFound` (never "OK").
        """

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
