"""Event ids as 64-bit hashes: a fast "surely all distinct" for batches and reads.

Shared by the write checks (:mod:`coldtier._validate`), the stream's
once-per-call id check, and the read path's dedupe (:func:`coldtier._format.unique_sorted`,
:class:`GivenIds` for ``events()``).
Equal ids always hash equal; equal hashes only mean "maybe equal", and every
caller then decides exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["GivenIds", "HashSet", "id_hashes", "surely_unique"]

T = TypeVar("T")


def surely_unique(ids: pa.ChunkedArray) -> bool:
    """True when the 36-byte ids are pairwise distinct, by sorting a 64-bit hash of each.

    Arrow's exact distinct count hashes the strings themselves (~0.5 s per
    million ids here); a weighted sum of five overlapping 8-byte words of each
    id, sorted, takes ~45 ms.  False means "maybe not": equal hashes, or ids
    that are not all 36 bytes (or no numpy); the caller then counts exactly.
    """
    try:
        import numpy  # noqa: F401, PLC0415 - the exact count stands in when it cannot
    except ImportError:
        return False
    hashes = id_hashes(ids)
    if hashes is None:
        return False
    ordered = np.sort(hashes)
    return not bool(np.any(ordered[1:] == ordered[:-1]))


def id_hashes(ids: pa.ChunkedArray | pa.Array) -> np.ndarray[Any, np.dtype[np.uint64]] | None:
    """A 64-bit hash of each 36-byte id (equal ids, equal hashes); None unless every id is 36 bytes."""
    chunks = ids.chunks if isinstance(ids, pa.ChunkedArray) else [ids]
    hashes = [np.zeros(0, np.uint64)]
    for chunk in chunks:
        n = len(chunk)
        if n == 0:
            continue
        if chunk.type != pa.string() or chunk.null_count:
            return None
        offsets = np.frombuffer(chunk.buffers()[1], np.int32, n + 1, chunk.offset * 4)
        first = int(offsets[0])
        if int(offsets[-1]) - first != 36 * n or not bool(np.all(np.diff(offsets) == 36)):
            return None
        data = chunk.buffers()[2]
        mixed = np.zeros(n, np.uint64)
        for word, at in enumerate((0, 8, 16, 24, 28)):  # covers bytes 0..35
            lane = np.ndarray((n,), "<u8", data, first + at, (36,))
            mixed += lane * np.uint64(_MIX[word])  # wraps mod 2**64, as meant
        hashes.append(mixed)
    return np.concatenate(hashes)


_MIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD)


class HashSet:
    """A growing set of 64-bit id hashes, kept sorted: 8 bytes an id, not the id's text."""

    def __init__(self) -> None:
        self._sorted: np.ndarray[Any, np.dtype[np.uint64]] = np.zeros(0, np.uint64)

    def hits(self, hashes: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """Where ``hashes`` equal one already in the set: maybe the same id (the caller compares exactly)."""
        if not len(self._sorted) or not len(hashes):
            return np.zeros(len(hashes), np.bool_)
        at = np.minimum(np.searchsorted(self._sorted, hashes), len(self._sorted) - 1)
        found: np.ndarray[Any, np.dtype[np.bool_]] = self._sorted[at] == hashes
        return found

    def add(self, hashes: np.ndarray[Any, np.dtype[np.uint64]]) -> None:
        """Put ``hashes`` in the set."""
        # Grown in place (no second copy of all the hashes), then timsort merges
        # the two sorted runs in linear time with half a run of scratch.
        before = len(self._sorted)
        self._sorted.resize(before + len(hashes), refcheck=False)
        self._sorted[before:] = np.sort(hashes)
        self._sorted.sort(kind="stable")


class GivenIds(Generic[T]):
    """The event ids a read has given so far (``Reader.runs``), 8 bytes each in a :class:`HashSet`.

    Holding the ids themselves made the memory of ``events()`` grow with the
    archive (~130 B an event).  A hash equal to an earlier one means "maybe
    the same id": the ids of the runs before are then read again (``reread``)
    and compared exactly, so a rare event that reuses an id costs a second
    read, never a wrong answer.  Ids that do not hash (not 36 bytes: foreign
    files) are kept as text.
    """

    def __init__(self, reread: Callable[[list[T]], list[pa.Array]]) -> None:
        self._reread = reread
        self._hashes = HashSet()
        self._text: set[str | None] = set()  # the ids that are not 36 bytes
        self._done: list[T] = []  # the objects of the runs given

    def first_time(self, run: list[T], table: pa.Table) -> pa.Table:
        """``table`` (one run, each id once) without the ids of earlier runs; remembers the rest."""
        ids = table.column("event_id")
        regular = pc.fill_null(pc.equal(pc.binary_length(ids), 36), False).to_numpy(zero_copy_only=False)
        where = np.flatnonzero(regular)  # the rows whose ids hash
        hashes = id_hashes(ids if len(where) == len(ids) else ids.filter(pa.array(regular)))
        assert hashes is not None  # every id left is 36 bytes of text
        repeat = np.zeros(len(ids), np.bool_)
        maybe = np.zeros(len(ids), np.bool_)
        maybe[where] = self._hashes.hits(hashes)
        if maybe.any():
            earlier = pa.chunked_array(self._reread(self._done), pa.string()).combine_chunks()
            repeat |= maybe & pc.is_in(ids, value_set=earlier).to_numpy(zero_copy_only=False)
        if len(where) < len(ids):  # a text id is never 36 bytes, so only these rows can repeat one
            odd = np.flatnonzero(~regular)
            texts = ids.take(pa.array(odd)).to_pylist()
            repeat[odd] = [text in self._text for text in texts]
            self._text.update(texts)
        if repeat.any():
            table = table.filter(pa.array(~repeat))
            hashes = hashes[~repeat[where]]
        self._hashes.add(hashes)
        self._done.extend(run)
        return table
