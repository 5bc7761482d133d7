"""Write-side coalescing for WORM buckets: many small windows, one object of at least ``min_object_bytes``.

Where objects are under Object Lock, ``repack`` cannot delete small objects
after merging them, so every hourly object would stay billed at the storage
class's minimum size (S3 Glacier Instant Retrieval: 128 KiB) for years.
:class:`Coalescer` merges on the way in instead::

    pending = coldtier.coalesce.Coalescer(archive, "acme", min_object_bytes=128 * 1024)
    for start, end, events in expired_windows():
        receipt = pending.add(start, end, events)      # archives once enough has built up
        if receipt is not None:
            delete_originals(pending.last_flushed)     # only now: durable
    receipt = pending.flush()                          # at the end of the pass (or on shutdown)

**The caller keeps its originals** of every window added since the last
flush until a call returns a :class:`~coldtier.Receipt` for them: until
then they are only in memory here.  :attr:`Coalescer.last_flushed` lists the
windows the latest receipt covers.  A failed flush raises (nothing is lost:
the windows stay pending and a later flush retries them, idempotently).
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

from . import _format, _validate
from ._archive import Archive, EventsInput
from ._errors import InvalidRequest
from ._types import Receipt

__all__ = ["Coalescer"]


class Coalescer:
    """Accumulates one tenant's small windows until they encode to ``min_object_bytes``, then archives them.

    Each window is validated when added (bad input is
    :class:`~coldtier.InvalidRequest` then, not at the flush).  The flush is
    one ``archive()`` call over the union window ``[first start, last end]``
    with every pending event, so an event id may appear in only one pending
    window.
    """

    def __init__(self, archive: Archive, tenant_id: str, *, min_object_bytes: int = 128 * 1024) -> None:
        if min_object_bytes < 1:
            raise InvalidRequest(f"min_object_bytes must be at least 1, got {min_object_bytes}")
        self._archive = archive
        self._tenant = _validate.validate_tenant(tenant_id)
        self._min = min_object_bytes
        self._tables: list[pa.Table] = []
        self._windows: list[tuple[datetime, datetime]] = []
        self._checked_at = 0  # Arrow bytes pending when the encoded size was last measured
        #: The windows the latest receipt covers: their originals may now be deleted.
        self.last_flushed: list[tuple[datetime, datetime]] = []

    @property
    def pending(self) -> list[tuple[datetime, datetime]]:
        """Windows added but not yet archived: keep their originals."""
        return list(self._windows)

    @property
    def pending_events(self) -> int:
        return sum(t.num_rows for t in self._tables)

    def add(self, start: datetime, end: datetime, events: EventsInput) -> Receipt | None:
        """Add one window; archive everything pending once it encodes to ``min_object_bytes``.

        Returns the receipt when this call archived (then :attr:`last_flushed`
        names the windows it covers), else None.
        """
        win = _validate.window(start, end)
        if isinstance(events, pa.RecordBatchReader):
            events = events.read_all()
        if isinstance(events, (pa.Table, pa.RecordBatch)):
            table = _validate.from_arrow(self._tenant, win, events)
        else:
            table = _validate.from_events(self._tenant, win, events)
        if table.num_rows:
            self._tables.append(table)
            self._windows.append((win.start, win.end))
        if self._big_enough():
            return self.flush()
        return None

    def flush(self) -> Receipt | None:
        """Archive everything pending in one call (durable when it returns); None if nothing was."""
        if not self._tables:
            return None
        table = pa.concat_tables(self._tables)
        start = min(s for s, _ in self._windows)
        end = max(e for _, e in self._windows)
        receipt = self._archive.archive(self._tenant, start, end, table)
        self.last_flushed, self._windows, self._tables = self._windows, [], []
        self._checked_at = 0
        return receipt

    def _big_enough(self) -> bool:
        """Whether the pending events encode to ``min_object_bytes`` (measured only when it may be so)."""
        arrow = sum(t.nbytes for t in self._tables)
        # Parquet is smaller than Arrow, so below the threshold in Arrow bytes it cannot be reached;
        # above it, encode again only after another 10 % has come in.
        if arrow < self._min or arrow < self._checked_at * 1.1:
            return False
        self._checked_at = arrow
        table = _format.sort_events(pa.concat_tables(self._tables))
        return len(_format.encode(table, {})) >= self._min
