"""Each event id at most once per call, across the parts of a stream of any length (DESIGN.md §2.6).

A table is checked whole (:func:`coldtier._validate.arrow.check_ids`); a
stream's parts are checked one by one as they come, and :class:`SeenIds`
remembers the ids of the parts before as a sorted array of 64-bit hashes —
8 bytes an event, so a 20,000,000-event stream costs 160 MB, not its ids.
A hash equal to an earlier one means "maybe the same id": the ids of the
earlier parts are then fetched and compared exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from .._errors import InvalidRequest
from .._ids import HashSet, id_hashes

__all__ = ["SeenIds"]


class SeenIds:
    """The ids of a stream's earlier parts."""

    def __init__(self) -> None:
        self._hashes = HashSet()
        self._exact: set[str] | None = None  # ids that do not hash (never after from_arrow)

    def add(self, ids: pa.ChunkedArray, earlier: Callable[[], Iterable[pa.Array]]) -> None:
        """Refuse ``ids`` if one was in an earlier part, else remember them.

        ``earlier()`` gives the id columns of the earlier parts (read back from
        the store), asked only when a hash matches.
        """
        hashes = id_hashes(ids)
        if hashes is None:  # pragma: no cover - ids are canonical UUID text here
            self._add_exact(ids)
            return
        hits = self._hashes.hits(hashes)
        if bool(hits.any()):
            suspects = pa.chunked_array(ids).filter(pa.array(hits))
            for column in earlier():
                repeated = suspects.filter(pc.is_in(suspects, value_set=column))
                if len(repeated):
                    _refuse(repeated[0].as_py())
        self._hashes.add(hashes)

    def _add_exact(self, ids: pa.ChunkedArray) -> None:  # pragma: no cover - see add()
        values = ids.to_pylist()
        self._exact = self._exact or set()
        for eid in values:
            if eid in self._exact:
                _refuse(eid)
        self._exact.update(values)


def _refuse(eid: str) -> None:
    raise InvalidRequest(
        f"event {eid} repeats the id of an event in an earlier part of this stream: each event id "
        "at most once per call; the earlier parts are stored, each complete, and a corrected retry "
        "reuses them"
    )
