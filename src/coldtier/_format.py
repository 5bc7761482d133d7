"""Parquet both ways: the stored schema, the footer, encoding and decoding one object.

Pure (no I/O) and shared by every backend.  Reading accepts format-1 objects
and allsource-core's own files (any Parquet with the seven columns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ._digest import logical_digest
from ._ids import surely_unique
from ._types import Window

__all__ = [
    "FORMAT_VERSION",
    "SCHEMA",
    "UTC",
    "Damaged",
    "conform",
    "logical_digest",
    "open_parquet",
    "part_window",
    "decode",
    "digest_of",
    "encode",
    "footer",
    "read_footer",
    "unique_sorted",
    "rfc3339",
    "sort_events",
    "writer_options",
]

FORMAT_VERSION = "2"

#: The stored columns, in allsource-core's order and types (DESIGN.md §3).
SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("entity_id", pa.string(), nullable=False),
        pa.field("payload", pa.string(), nullable=False),
        pa.field("timestamp", pa.timestamp("us"), nullable=False),
        pa.field("metadata", pa.string(), nullable=True),
        pa.field("version", pa.uint64(), nullable=False),
    ]
)


def rfc3339(value: datetime) -> str:
    """UTC RFC 3339 with microseconds and a ``Z``: what the footer stores."""
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v:%m-%dT%H:%M:%S.%f}Z"  # strftime's %Y does not pad years < 1000


def sort_events(table: pa.Table) -> pa.Table:
    """Rows sorted by ``(timestamp, event_id)``; nearly free when already in that order.

    Equal timestamps are common (second or millisecond clocks): rows in time
    order are checked pairwise on their ids only where the time ties.
    """
    n = table.num_rows
    if n < 2:
        return table
    ts = table.column("timestamp").combine_chunks()
    before, after = ts.slice(0, n - 1), ts.slice(1)
    if pc.all(pc.less_equal(before, after)).as_py():
        ties = pc.equal(before, after)
        if not pc.any(ties).as_py():
            return table
        ids = table.column("event_id").combine_chunks()
        first, second = ids.slice(0, n - 1).filter(ties), ids.slice(1).filter(ties)
        if pc.all(pc.less(first, second)).as_py():
            return table
    order = pc.sort_indices(table, sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")])
    return take(table, order)


#: Past this many bytes in one string column, :func:`take` goes piece by piece.
_TAKE_BYTES = 1 << 30


def take(table: pa.Table, indices: pa.Array) -> pa.Table:
    """``table.take(indices)``, also when a string column holds more than an Arrow string can (2 GiB).

    Arrow's ``take`` joins a column's chunks into one array first, which fails
    past 2 GiB of text.  Such a table is widened to 64-bit offsets (one copy),
    taken from in pieces of at most :data:`_TAKE_BYTES` of text each, and each
    piece narrowed back: the result is the same rows, in more chunks.
    """
    texts = [i for i, f in enumerate(table.schema) if f.type in (pa.string(), pa.binary())]
    if all(table.column(i).nbytes <= _TAKE_BYTES for i in texts):
        return table.take(indices)
    widened = [
        f.with_type(pa.large_string() if f.type == pa.string() else pa.large_binary()) if i in texts else f
        for i, f in enumerate(table.schema)
    ]
    wide = table.cast(pa.schema(widened, metadata=table.schema.metadata)).combine_chunks()
    sizes = np.zeros(table.num_rows, np.int64)
    for i in texts:
        sizes += pc.fill_null(pc.binary_length(wide.column(i)), 0).to_numpy(zero_copy_only=False)
    ends = np.cumsum(sizes[np.asarray(indices)])
    pieces = []
    for start, stop in bounded_slices(ends, _TAKE_BYTES):
        pieces.append(wide.take(indices.slice(start, stop - start)).cast(table.schema))
    return pa.concat_tables(pieces) if pieces else table.slice(0, 0)


def bounded_slices(
    ends: np.ndarray[Any, Any], max_bytes: int, max_rows: int | None = None
) -> Iterator[tuple[int, int]]:
    """Consecutive ``(start, stop)`` row ranges of at most ``max_bytes`` (and ``max_rows``) each.

    ``ends`` is the running total of the rows' sizes.  A row larger than
    ``max_bytes`` alone is a range of its own.
    """
    n = len(ends)
    start = 0
    while start < n:
        before = int(ends[start - 1]) if start else 0
        stop = max(start + 1, int(np.searchsorted(ends, before + max_bytes, side="right")))
        if max_rows is not None:
            stop = min(stop, start + max_rows)
        yield start, stop
        start = stop


def part_window(table: pa.Table) -> Window:
    """The window of a sorted table's own rows: its first and last timestamps."""
    ts = table.column("timestamp")
    first, last = ts[0].as_py(), ts[len(ts) - 1].as_py()
    return Window(first.replace(tzinfo=UTC), last.replace(tzinfo=UTC))


def footer(
    tenant_id: str,
    win: Window,
    events: int,
    part: int | None,
    parts: int | None,
    *,
    digest: str,
    call: Window | None = None,
) -> dict[str, str]:
    """The footer of an object of ``events`` rows in ``win`` (docs/FORMAT.md), keys sorted.

    ``digest`` is the object's logical digest; ``call`` the call's window
    when the object is one part of a split batch.
    """
    meta = {
        "coldtier.digest": digest,
        "coldtier.end": rfc3339(win.end),
        "coldtier.events": str(events),
        "coldtier.format": FORMAT_VERSION,
        "coldtier.start": rfc3339(win.start),
        "coldtier.tenant_id": tenant_id,
    }
    if call is not None:
        meta["coldtier.call_start"] = rfc3339(call.start)
        meta["coldtier.call_end"] = rfc3339(call.end)
    if part is not None:
        meta["coldtier.part"] = str(part)
    if parts is not None:
        meta["coldtier.parts"] = str(parts)
    return dict(sorted(meta.items()))


#: Columns whose values repeat enough for a dictionary page to pay; the others
#: (ids, payloads, timestamps) are near-unique, where a dictionary is built
#: only to be abandoned.
_DICTIONARY = ["event_type", "entity_id", "metadata", "version"]
#: Sorted timestamps delta-encode to almost nothing.  Ids stay PLAIN: fastparquet
#: (and pandas/dask on it) cannot read DELTA_LENGTH_BYTE_ARRAY, and zstd takes
#: back most of what the length prefixes cost.
_ENCODINGS = {"timestamp": "DELTA_BINARY_PACKED"}
#: Readers prune row groups by time; min/max of ids and payloads help no one.
#: ``version`` has them for fastparquet: an integer column without statistics
#: may hold nulls to it, so pandas on fastparquet reads it as float64 (2**53 + 1
#: comes back as 9007199254740992.0) and fastparquet itself as nullable UInt64.
_STATISTICS = ["timestamp", "version"]


def writer_options(compression: str = "zstd", compression_level: int | None = None) -> dict[str, Any]:
    """Keyword arguments for :class:`pyarrow.parquet.ParquetWriter` that coldtier writes with.

    ``store_schema=False`` keeps the footer to exactly our sorted keys (the
    Parquet types map 1:1 back to :data:`SCHEMA` without the Arrow schema blob).
    """
    return {
        "compression": compression,
        "compression_level": compression_level,
        "use_dictionary": _DICTIONARY,
        "column_encoding": _ENCODINGS,
        "write_statistics": _STATISTICS,
        "store_schema": False,
        "write_batch_size": 65_536,  # fewer, larger batches inside the writer: ~4 % less CPU
        # A CRC per page: a read that decodes only some row groups still
        # detects damaged bytes (the logical digest needs every row).
        "write_page_checksum": True,
    }


def encode(
    table: pa.Table,
    meta: dict[str, str] | Callable[[], dict[str, str]],
    *,
    compression: str = "zstd",
    compression_level: int | None = None,
    row_group_events: int = 131_072,
    encryption: Any = None,
) -> bytes:
    """Parquet bytes of a sorted :data:`SCHEMA` table with ``meta`` in the footer.

    ``encryption``: ``pyarrow.parquet.FileEncryptionProperties`` (see :mod:`coldtier._crypto`).
    ``meta`` may be a function, called once the rows are encoded (the footer
    is written last): the logical digest can then be computed meanwhile.
    """
    sink = pa.BufferOutputStream()
    options = writer_options(compression, compression_level)
    if encryption is not None:
        options["encryption_properties"] = encryption
    with pq.ParquetWriter(sink, SCHEMA, **options) as writer:
        writer.write_table(table, row_group_size=row_group_events)
        writer.add_key_value_metadata(meta() if callable(meta) else meta)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def digest_of(data: bytes | memoryview) -> str:
    """First 16 hex digits of the SHA-256 of ``data``: the digest in a format-1 key."""
    return hashlib.sha256(data).hexdigest()[:16]


class Damaged(ValueError):
    """An object's bytes or events do not match the digest in its name or footer."""


# ---------------------------------------------------------------------------
# Decoding


def read_footer(pf: pq.ParquetFile) -> dict[str, str]:
    """The footer's key-value metadata as text."""
    return {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}


def open_parquet(data: bytes, decryption: Any = None) -> pq.ParquetFile:
    """A Parquet reader over one object's bytes that checks page CRCs where they were written.

    ``decryption``: ``pyarrow.parquet.FileDecryptionProperties`` for an encrypted object.
    """
    return pq.ParquetFile(pa.BufferReader(data), page_checksum_verification=True, decryption_properties=decryption)


def decode(
    data: bytes,
    lo: datetime | None = None,
    hi: datetime | None = None,
    *,
    digest: str | None = None,
    keys: Callable[[dict[str, str]], Any] | None = None,
) -> pa.Table:
    """The rows of one object's bytes in ``[lo, hi]`` as a :data:`SCHEMA` table.

    With ``digest`` (the 16 digits of the object's name), the object is
    checked first: a format-2 object's footer digest must begin with it and,
    when every row group is decoded, its events must have that logical digest
    (a partial read relies on the page CRCs); a format-1 object's bytes must
    hash to it.  A mismatch is :class:`Damaged`.

    Decodes only the row groups whose timestamp statistics can overlap the
    window; row groups whose statistics lie inside it need no row filter (the
    statistics, not the name, so a foreign file is filtered exactly).  Raises
    ``pa.ArrowException``/``ValueError``/``OSError`` on bytes that are not
    such an object (the caller names the object).

    ``keys(footer)`` gives the decryption properties of an object whose
    footer names a tenant key (or raises); it is not called for plaintext objects.
    """
    pf = open_parquet(data)
    if keys is not None and (props := keys(read_footer(pf))) is not None:
        pf = open_parquet(data, props)
    full = None
    if digest is not None:
        meta = read_footer(pf)
        if meta.get("coldtier.format") == FORMAT_VERSION:
            full = meta.get("coldtier.digest", "")
            if full[:16] != digest:
                raise Damaged(
                    f"its footer digest {full[:16] or '(none)'} does not match the digest {digest} in its name"
                )
        elif (actual := digest_of(data)) != digest:
            raise Damaged(f"its content digest is {actual}")
    groups = _row_groups(pf, lo, hi)
    try:
        table = pf.read_row_groups(groups, use_threads=False) if groups else SCHEMA.empty_table()
    except (pa.ArrowException, OSError) as exc:
        if digest is None:
            raise
        raise Damaged(f"its events do not decode ({exc})") from exc  # a page CRC, a cut column chunk
    table = conform(table)
    whole = len(groups) == pf.metadata.num_row_groups
    if full is not None and whole and (actual := logical_digest(table)) != full:
        raise Damaged(f"its events' digest is {actual[:16]}, not the {digest} in its name")
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


def conform(table: pa.Table) -> pa.Table:
    """Select and cast the stored columns to :data:`SCHEMA` (foreign files too)."""
    missing = [n for n in SCHEMA.names if n not in table.column_names]
    if missing:
        raise ValueError(f"missing column(s) {missing}")
    table = table.select(SCHEMA.names)
    return table.cast(SCHEMA) if table.schema != SCHEMA else table


def unique_sorted(table: pa.Table) -> pa.Table:
    """Sort by ``(timestamp, event_id)`` keeping each event id once (the first)."""
    if table.num_rows == 0:
        return table.replace_schema_metadata(None)
    table = sort_events(table.replace_schema_metadata(None))
    ids = table.column("event_id")
    if surely_unique(ids) or pc.count_distinct(ids).as_py() == table.num_rows:
        return table  # each id once (the hashes settle it without hashing 36-byte strings)
    index = pa.table({"id": ids, "i": pa.array(range(table.num_rows), pa.int64())})
    first = index.group_by("id", use_threads=False).aggregate([("i", "min")]).column("i_min")
    return take(table, pc.take(first, pc.array_sort_indices(first)))


def _timestamp_stats(pf: pq.ParquetFile, group: int) -> tuple[datetime, datetime] | None:
    index = pf.schema_arrow.get_field_index("timestamp")
    stats = pf.metadata.row_group(group).column(index).statistics if index >= 0 else None
    if stats is None or not stats.has_min_max:
        return None
    mn, mx = stats.min, stats.max
    if not (isinstance(mn, datetime) and isinstance(mx, datetime)):
        return None
    return mn.replace(tzinfo=UTC), mx.replace(tzinfo=UTC)


def _row_groups(pf: pq.ParquetFile, lo: datetime | None, hi: datetime | None) -> list[int]:
    """Row groups whose timestamp statistics can overlap ``[lo, hi]``."""
    keep = []
    for i in range(pf.metadata.num_row_groups):
        if lo is not None or hi is not None:
            bounds = _timestamp_stats(pf, i)
            if bounds is not None and (
                (hi is not None and bounds[0] > hi) or (lo is not None and bounds[1] < lo)
            ):
                continue
        keep.append(i)
    return keep


def _inside(pf: pq.ParquetFile, groups: list[int], lo: datetime | None, hi: datetime | None) -> bool:
    """Whether the timestamp statistics of every row group in ``groups`` lie within ``[lo, hi]``."""
    for i in groups:
        bounds = _timestamp_stats(pf, i)
        if bounds is None:
            return False
        if (lo is not None and bounds[0] < lo) or (hi is not None and bounds[1] > hi):
            return False
    return True
