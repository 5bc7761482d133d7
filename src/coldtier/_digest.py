"""The format-2 logical digest: an object's identity computed from its events.

Pure (no I/O) and deterministic.  :func:`logical_digest` is the SHA-256 of a
canonical, columnar encoding of a table of the seven stored columns, defined
byte for byte in ``docs/FORMAT.md`` ("The logical digest") and versioned by
:data:`DIGEST_VERSION`.  It depends only on the values and the row order,
never on chunking, slice offsets, buffer padding, the bytes under a null slot,
or the Arrow string variant (``string``, ``large_string``, ``string_view``,
dictionary-encoded).

Layout, in short (all integers little-endian, ``str(s)`` = u32 byte length +
UTF-8 bytes)::

    header   = str(DIGEST_VERSION) u64(rows) u32(7)
               then per column: str(name) str(type) u8(nullable)
    piece    = string column:   u32 length per row, then all value bytes
               nullable string: u8 validity per row (1 value, 0 null), then
                                u32 length per row (0 for null), then the
                                bytes of the non-null values
               timestamp[us]:   i64 per row (microseconds since the epoch)
               uint64:          u64 per row
    digest   = SHA-256(header || SHA-256(piece_0) || ... || SHA-256(piece_6))

No per-row Python: every piece is built from Arrow buffers with numpy and
streamed into :mod:`hashlib` without concatenating the value bytes.  Large
tables hash their columns on a few threads of one shared, long-lived pool
(``hashlib`` releases the GIL).

This module must not import ``_format`` (which imports it); the column
list below is checked against ``_format.SCHEMA`` by the tests.
"""

from __future__ import annotations

import hashlib
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "COLUMNS",
    "DIGEST_VERSION",
    "column_pieces",
    "digest_on_one_thread",
    "hashing_pool",
    "header",
    "logical_digest",
]

#: Names the canonical encoding; goes first into every digest.  A change to
#: the layout is a new version (and a new object format), never an edit.
DIGEST_VERSION = "coldtier-logical-v1"

#: ``(name, type label, nullable)`` of the digested columns, in digest order
#: (the stored order of ``_format.SCHEMA``).
COLUMNS: tuple[tuple[str, str, bool], ...] = (
    ("event_id", "string", False),
    ("event_type", "string", False),
    ("entity_id", "string", False),
    ("payload", "string", False),
    ("timestamp", "timestamp[us]", False),
    ("metadata", "string", True),
    ("version", "uint64", False),
)

_U32_MAX = (1 << 32) - 1
#: From this many rows on (some MiB of buffers) the columns are hashed on threads.
_PARALLEL_ROWS = 32_768

_Update = Callable[[Any], None]


def _str(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack("<I", len(raw)) + raw


def _columns_header() -> bytes:
    parts = [struct.pack("<I", len(COLUMNS))]
    for name, label, nullable in COLUMNS:
        parts += [_str(name), _str(label), struct.pack("<B", nullable)]
    return b"".join(parts)


_VERSION_HEADER = _str(DIGEST_VERSION)
_COLUMNS_HEADER = _columns_header()  # the same for every table: built once


def header(rows: int) -> bytes:
    """The header of the encoding for a table of ``rows`` rows."""
    return _VERSION_HEADER + struct.pack("<Q", rows) + _COLUMNS_HEADER


# ---------------------------------------------------------------------------
# Per-column pieces.  Each ``_*_piece`` feeds the column's piece, in order,
# to ``update`` (a hash's update, or a list's append in the tests).


def _le(values: np.ndarray[Any, Any], dtype: str) -> memoryview:
    """``values`` as contiguous fixed-width little-endian integers of ``dtype``."""
    return np.ascontiguousarray(values, dtype=dtype).data.cast("B")


def _string_chunk(chunk: pa.Array) -> pa.Array:
    """``chunk`` as ``string`` or ``large_string`` (offsets + data buffers)."""
    if pa.types.is_string(chunk.type) or pa.types.is_large_string(chunk.type):
        return chunk
    if pa.types.is_dictionary(chunk.type) or pa.types.is_string_view(chunk.type):
        value_type = chunk.type.value_type if pa.types.is_dictionary(chunk.type) else chunk.type
        if pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or (
            pa.types.is_string_view(value_type)
        ):
            return chunk.cast(pa.large_string())
    raise ValueError(f"expected a string column, got {chunk.type}")


def _offsets(chunk: pa.Array) -> np.ndarray[Any, Any]:
    """The ``len + 1`` offsets of a sliced ``string``/``large_string`` chunk."""
    width = 8 if pa.types.is_large_string(chunk.type) else 4
    dtype = np.int64 if width == 8 else np.int32
    buf = chunk.buffers()[1]
    return np.frombuffer(buf, dtype=dtype, count=len(chunk) + 1, offset=chunk.offset * width)


def _values(chunk: pa.Array, offsets: np.ndarray[Any, Any]) -> memoryview:
    first, last = int(offsets[0]), int(offsets[-1])
    data = chunk.buffers()[2]
    if last == first or data is None:
        return memoryview(b"")
    return memoryview(data)[first:last]


def _string_piece(column: pa.ChunkedArray, name: str, nullable: bool, update: _Update) -> None:
    validity: list[np.ndarray[Any, Any]] = []
    lengths: list[np.ndarray[Any, Any]] = []
    values: list[memoryview] = []
    for raw in column.chunks:
        if not len(raw):
            continue
        chunk = _string_chunk(raw)
        if chunk.null_count and not nullable:
            raise ValueError(f"column {name!r} has {chunk.null_count} null(s); it is not nullable")
        offsets = _offsets(chunk)
        length = np.diff(offsets)
        if chunk.null_count:
            valid = pc.is_valid(chunk).to_numpy(zero_copy_only=False)
            if length[~valid].any():  # bytes under null slots: drop them
                chunk = pc.fill_null(chunk, "")
                offsets = _offsets(chunk)
                length = np.diff(offsets)
            validity.append(valid.view(np.uint8))
        elif nullable:
            validity.append(np.ones(len(chunk), dtype=np.uint8))
        if length.dtype == np.int64 and int(length.max()) > _U32_MAX:  # only large_string can
            raise ValueError(f"column {name!r} has a value of more than {_U32_MAX} bytes")
        lengths.append(length)
        values.append(_values(chunk, offsets))
    for valid in validity:
        update(valid.data)
    for length in lengths:
        update(_le(length, "<u4"))
    for value in values:
        update(value)


def _fixed_chunk(chunk: pa.Array, label: str, name: str) -> pa.Array:
    kind = chunk.type
    if label == "timestamp[us]":
        if pa.types.is_timestamp(kind) and kind.unit == "us":  # the zone is a label: values are UTC
            return chunk
        raise ValueError(f"column {name!r} must be timestamp[us], got {kind}")
    if pa.types.is_uint64(kind):
        return chunk
    if pa.types.is_integer(kind):
        try:
            return chunk.cast(pa.uint64())  # safe: negatives raise
        except pa.ArrowInvalid as exc:
            raise ValueError(f"column {name!r} does not fit uint64: {exc}") from None
    raise ValueError(f"column {name!r} must be uint64, got {kind}")


def _fixed_piece(column: pa.ChunkedArray, name: str, label: str, update: _Update) -> None:
    dtype, le = (np.int64, "<i8") if label == "timestamp[us]" else (np.uint64, "<u8")
    for raw in column.chunks:
        if not len(raw):
            continue
        chunk = _fixed_chunk(raw, label, name)
        if chunk.null_count:
            raise ValueError(f"column {name!r} has {chunk.null_count} null(s); it is not nullable")
        values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * 8)
        update(_le(values, le))


def _piece(column: pa.ChunkedArray, name: str, label: str, nullable: bool, update: _Update) -> None:
    if label == "string":
        _string_piece(column, name, nullable, update)
    else:
        _fixed_piece(column, name, label, update)


def _columns(table: pa.Table | pa.RecordBatch) -> list[pa.ChunkedArray]:
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if not isinstance(table, pa.Table):
        raise ValueError(f"expected a pyarrow Table or RecordBatch, got {type(table).__name__}")
    names = table.column_names
    wanted = [name for name, _, _ in COLUMNS]
    if sorted(names) != sorted(wanted):
        raise ValueError(f"expected exactly the columns {wanted}, got {names}")
    return [table.column(name) for name in wanted]


def column_pieces(table: pa.Table | pa.RecordBatch) -> list[bytes]:
    """Each column's piece, in full (for tests and the spec's worked example)."""
    pieces = []
    for column, (name, label, nullable) in zip(_columns(table), COLUMNS, strict=True):
        parts: list[bytes] = []

        def collect(data: Any, parts: list[bytes] = parts) -> None:
            parts.append(bytes(data))

        _piece(column, name, label, nullable, collect)
        pieces.append(b"".join(parts))
    return pieces


def _column_digest(column: pa.ChunkedArray, name: str, label: str, nullable: bool) -> bytes:
    h = hashlib.sha256()
    _piece(column, name, label, nullable, h.update)
    return h.digest()


def logical_digest(table: pa.Table | pa.RecordBatch) -> str:
    """The full (64 hex digits) format-2 logical digest of ``table``.

    ``table`` has exactly the seven stored columns (any order; digested in
    the stored order) and its rows in stored order — format 2 stores them
    sorted by ``(timestamp, event_id)``; this function neither sorts nor
    checks the order.  String columns may be ``string``, ``large_string``,
    ``string_view`` or dictionary-encoded; ``timestamp`` must be
    ``timestamp[us]`` (any zone label); ``version`` ``uint64`` or an integer
    type whose values fit it.  Raises :class:`ValueError` on anything else,
    or on a null outside ``metadata``.
    """
    return _logical_digest(table, parallel=True)


def digest_on_one_thread(table: pa.Table | pa.RecordBatch) -> str:
    """:func:`logical_digest` on the calling thread only (the writer runs it beside encoding)."""
    return _logical_digest(table, parallel=False)


class _SharedPool:
    """One pool of hashing threads for the whole process, started on first use and kept.

    No thread start-up per digest or per object.  Its tasks only hash: none
    waits on another task, so any number of concurrent digests and writes
    share it without deadlock (never submit a task that waits on this pool).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def get(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="coldtier-hash")
            return self._pool

    def forget(self) -> None:
        """In a forked child the pool's threads do not exist: start a new one when needed."""
        self._lock = threading.Lock()
        self._pool = None


_SHARED = _SharedPool()
os.register_at_fork(after_in_child=_SHARED.forget)


def hashing_pool() -> ThreadPoolExecutor:
    """The process's shared hashing threads (see :class:`_SharedPool`)."""
    return _SHARED.get()


def _logical_digest(table: pa.Table | pa.RecordBatch, *, parallel: bool) -> str:
    columns = _columns(table)
    jobs = [(column, *spec) for column, spec in zip(columns, COLUMNS, strict=True)]
    rows = len(columns[0])
    if parallel and rows >= _PARALLEL_ROWS and (os.cpu_count() or 1) > 1:
        # Largest first, so the last column to start is a small one.
        order = sorted(range(len(jobs)), key=lambda i: -jobs[i][0].get_total_buffer_size())
        pool = hashing_pool()
        futures = {i: pool.submit(_column_digest, *jobs[i]) for i in order}
        digests = [futures[i].result() for i in range(len(jobs))]
    else:
        digests = [_column_digest(*job) for job in jobs]
    h = hashlib.sha256(header(rows))
    for digest in digests:
        h.update(digest)
    return h.hexdigest()
