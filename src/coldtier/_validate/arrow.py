"""Input as Arrow tables and streams: columns, types, tenant, window, JSON text, ids."""

from __future__ import annotations

import array
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .._errors import InvalidRequest
from .._format import SCHEMA, bounded_slices, rfc3339
from .._ids import surely_unique
from .window import Window

_REQUIRED = tuple(f.name for f in SCHEMA if not f.nullable)
_OPTIONAL_DEFAULTS = {"metadata": None, "version": 1}
_UUID_RE = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_UUIDS_RE = r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*$"
_UUIDS_PY = re.compile(rb"(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})*")
#: Below this many values a check goes value by value (orjson, Python's ``re``):
#: each call of an Arrow regex kernel compiles its pattern anew (~0.2 ms),
#: which is more than checking a small batch costs.
_SMALL = 4_096


def _first_bad(mask: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first ``True`` in a boolean mask (nulls count as ``True``)."""
    filled = pc.fill_null(mask, True)
    return int(pc.index(filled, True).as_py())


def _describe_row(table: pa.Table, index: int) -> str:
    eid = table.column("event_id")[index].as_py() if "event_id" in table.column_names else None
    return f"event #{index} ({eid})"


@dataclass(frozen=True, slots=True)
class JsonWritten:
    """Arrow input whose ``payload``/``metadata`` text coldtier itself wrote from parsed JSON.

    :func:`coldtier.jsonl.load_tables` parses each line and writes the values
    back with ``orjson.dumps``, which only writes JSON: checking that text
    again would validate each event twice.  The CLI wraps such tables (or a
    stream of them) in this, and the engine skips the JSON check, nothing
    else.  Private: not a way for callers to skip checks on their own text.
    """

    events: pa.Table | pa.RecordBatchReader


def from_arrow(tenant_id: str, win: Window, data: pa.Table | pa.RecordBatch, *, json: bool = True) -> pa.Table:
    """Validate an Arrow table and normalise it to :data:`SCHEMA`.

    Accepts ``timestamp[us]`` without a zone (read as UTC) or any tz-aware
    timestamp unit; ``metadata`` and ``version`` may be absent (null and 1);
    an optional ``tenant_id`` column must match.  Payloads and metadata are
    stored as given, once they parse as JSON.
    """
    table = conform_arrow(tenant_id, win, data)
    corrected = None
    for check in arrow_checks(table, json=json):
        corrected = check() or corrected
    return table if corrected is None else corrected


def arrow_checks(table: pa.Table, *, json: bool = True) -> list[Callable[[], pa.Table | None]]:
    """The checks of :func:`from_arrow` that :func:`conform_arrow` leaves, as independent calls.

    Each raises :class:`InvalidRequest` or returns ``None``, or (the id check)
    a corrected table.  They share nothing, so the write engine runs them side
    by side while the parts encode; a failure is reported as if they had run
    in list order (JSON of payloads, JSON of metadata, ids).  ``json=False``
    leaves out the JSON checks (text coldtier wrote itself: :class:`JsonWritten`).
    """
    texts = [partial(_check_json, table, "payload"), partial(_check_json, table, "metadata")] if json else []
    return [*texts, partial(check_ids, table)]


def conform_arrow(tenant_id: str, win: Window, data: pa.Table | pa.RecordBatch) -> pa.Table:
    """:func:`from_arrow` but for :func:`check_ids`: columns, types, nulls, tenant, window."""
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    names = data.column_names
    allowed = set(SCHEMA.names) | {"tenant_id"}
    extra = [n for n in names if n not in allowed]
    if extra:
        raise InvalidRequest(f"unexpected column(s) {extra}; allowed: {sorted(allowed)}")
    missing = [n for n in _REQUIRED if n not in names and n not in _OPTIONAL_DEFAULTS]
    if missing:
        raise InvalidRequest(f"missing column(s) {missing}")
    n = data.num_rows

    if "tenant_id" in names:
        col = data.column("tenant_id")
        bad = pc.not_equal(col, pa.scalar(tenant_id, col.type))
        if n and (col.null_count or pc.any(bad).as_py()):
            i = _first_bad(bad)
            raise InvalidRequest(
                f"{_describe_row(data, i)} belongs to tenant {col[i].as_py()!r}, not {tenant_id!r}"
            )

    columns = []
    for field in SCHEMA:
        if field.name in names:
            col = data.column(field.name)
        elif field.name in _OPTIONAL_DEFAULTS:
            default = _OPTIONAL_DEFAULTS[field.name]
            col = pa.chunked_array(
                [pa.nulls(n, field.type) if default is None else pa.array([default] * n, field.type)],
                field.type,
            )
        else:  # pragma: no cover - caught above
            raise InvalidRequest(f"missing column {field.name!r}")
        if field.name == "timestamp":
            col = _timestamps(col)
        elif col.type != field.type:
            try:
                col = col.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InvalidRequest(
                    f"column {field.name!r} has type {col.type}, which does not convert "
                    f"to {field.type}: {exc}"
                ) from None
        if not field.nullable and col.null_count:
            i = _first_bad(pc.is_null(col))
            raise InvalidRequest(f"{_describe_row(data, i)}: {field.name} is null")
        columns.append(col)
    table = pa.Table.from_arrays(columns, schema=SCHEMA)
    if n == 0:
        return table

    ts = table.column("timestamp")
    lo, hi = pc.min_max(ts).values()
    if lo.value < win.start_us or hi.value > win.end_us:
        bad = pc.or_(
            pc.less(ts, pa.scalar(win.start_us, pa.timestamp("us"))),
            pc.greater(ts, pa.scalar(win.end_us, pa.timestamp("us"))),
        )
        i = _first_bad(bad)
        raise InvalidRequest(
            f"{_describe_row(table, i)}: timestamp {ts[i].as_py().isoformat()}Z is outside "
            f"the window [{rfc3339(win.start)}, {rfc3339(win.end)}]"
        )
    return table


def check_ids(table: pa.Table) -> pa.Table | None:
    """Event ids are UUID text, each once.

    Returns ``None`` when ``table`` stands as it is, or a corrected table (ids
    given in upper case are stored lower-cased).
    """
    ids = table.column("event_id")
    if all_canonical_uuids(ids):
        check_unique_ids(table)
        return None
    ok = pc.match_substring_regex(ids, _UUID_RE)
    if pc.all(ok).as_py():
        check_unique_ids(table)
        return None
    ids = pc.utf8_lower(ids)
    ok = pc.match_substring_regex(ids, _UUID_RE)
    if not pc.all(ok).as_py():
        i = _first_bad(pc.invert(ok))
        raise InvalidRequest(f"{_describe_row(table, i)}: event_id is not a UUID")
    table = table.set_column(0, SCHEMA.field(0), ids)
    check_unique_ids(table)
    return table


def _check_json(table: pa.Table, name: str) -> None:
    """The text of column ``name`` (payload or metadata) must parse as JSON (no NaN).

    Stored as given, but a value that does not parse would make ``events()``,
    ``read --format jsonl`` and allsource-core fail on the archive later.
    Checked in slices (:func:`_slices`) so that memory stays flat and no
    joined slice outgrows an Arrow string; see :func:`_json_slice_ok` for the
    fast route and ``orjson`` (~0.4 µs per value) for the exact one.  When
    the first slice's values repeat (metadata often does), each slice is
    checked once per distinct value: ``unique`` keeps first appearances in
    order, so the first bad distinct value is the first bad row.
    """
    column = table.column(name)
    loads = orjson.loads
    repeats: bool | None = None
    for offset, piece in _slices(column):
        values: pa.Array | pa.ChunkedArray = piece
        if repeats is not False:  # the first slice tells; its distinct values are used, not made twice
            distinct = pc.unique(piece)
            if repeats is None:
                repeats = len(distinct) * 8 <= len(piece)
            if repeats:
                values = distinct
        if len(values) > _SMALL and _json_slice_ok(values):
            continue
        texts = values.to_pylist()
        try:
            for text in texts:
                if text is not None:
                    loads(text)
        except orjson.JSONDecodeError as exc:
            bad = next(t for t in texts if t is not None and not _parses(t))
            i = offset + (texts.index(bad) if values is piece else pc.index(piece, bad).as_py())
            raise InvalidRequest(f"{_describe_row(table, i)}: {name} is not JSON: {exc}") from None


#: A slice of a JSON check holds at most this many values, and this many bytes
#: of text unless one value alone is longer (Arrow strings hold < 2 GiB).
_SLICE_VALUES = 65_536
_SLICE_BYTES = 64 << 20


def _slices(column: pa.ChunkedArray) -> Iterator[tuple[int, pa.ChunkedArray]]:
    """``column`` in consecutive slices (each with its first row's index) of bounded count and size."""
    if column.nbytes <= _SLICE_BYTES:
        ranges: Iterator[tuple[int, int]] = (
            (at, min(at + _SLICE_VALUES, len(column))) for at in range(0, len(column), _SLICE_VALUES)
        )
    else:
        sizes = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False)
        ranges = bounded_slices(np.cumsum(sizes, dtype=np.int64), _SLICE_BYTES, _SLICE_VALUES)
    for start, stop in ranges:
        yield start, column.slice(start, stop - start)


def _json_slice_ok(piece: pa.ChunkedArray) -> bool:
    """True when every value of ``piece`` surely parses with orjson; False means "look closer".

    With msgspec installed (optional), the values joined into one JSON array
    are validated without building the values as Python objects (a quarter of orjson's
    time).  That the array parses does not prove each value does: ``1,2``,
    ``[3`` and ``4]`` join into ``[1,2,[3,4]]``, three elements from three
    values, none of them JSON alone.  So each element's span must be as long
    as its value: with ``n`` elements the ``n - 1`` separators then leave no
    byte over, each element starts where its value starts, and is that value
    (a value with whitespace around it is left to orjson).
    msgspec nests less deep than orjson, so it is the stricter there; numbers
    beyond the float range it does not check, and orjson refuses them.  Such
    a number needs an exponent of three digits or a hundred digits in a row:
    text that could hold one is left to orjson.
    """
    try:
        import msgspec  # noqa: PLC0415 - optional: orjson value by value is the fallback
    except ImportError:
        return False
    values = pc.drop_null(piece)
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if len(values) == 0:
        return True
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values), ",")
    text = pc.binary_join_element_wise("[", joined, "]", "")
    try:
        decoded = msgspec.json.decode(memoryview(text.buffers()[2]), type=list[msgspec.Raw])
    except (msgspec.DecodeError, RecursionError):  # msgspec nests less deep than orjson
        return False
    if len(decoded) != len(values):
        return False
    spans = np.fromiter(map(len, decoded), np.int64, len(decoded))
    if not np.array_equal(spans, pc.binary_length(values).to_numpy(zero_copy_only=False)):
        return False
    # One pattern per exponent letter: a literal first byte lets RE2 skip ahead with memchr.
    if any(pc.any(pc.match_substring_regex(text, f"{e}[+-]?[0-9]{{3}}")).as_py() for e in "eE"):
        return False
    long = pc.greater_equal(pc.binary_length(values), 100)
    return not (
        pc.any(long).as_py() and pc.any(pc.match_substring_regex(values.filter(long), "[0-9]{100}")).as_py()
    )


def _parses(text: str) -> bool:
    try:
        orjson.loads(text)
    except orjson.JSONDecodeError:
        return False
    return True


def all_canonical_uuids(ids: pa.ChunkedArray) -> bool:
    """True when every id is lower-case canonical UUID text; False means "look closer".

    Matching the regex row by row costs ~90 ns per id; when every id is 36
    bytes long, a chunk's ids sit back to back in its data buffer, and one
    match of the repeated pattern over that whole buffer costs half as much.
    """
    if ids.type != pa.string() or ids.null_count:
        return False
    if len(ids) <= _SMALL:
        return all(_small_canonical_uuids(chunk) for chunk in ids.chunks)
    lengths = pc.min_max(pc.binary_length(ids))
    if lengths["min"].as_py() != 36 or lengths["max"].as_py() != 36:
        return False
    for chunk in ids.chunks:
        if len(chunk) == 0:
            continue
        offsets = memoryview(chunk.buffers()[1]).cast("i")
        bounds = array.array("q", [offsets[chunk.offset], offsets[chunk.offset + len(chunk)]])
        whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, pa.py_buffer(bounds), chunk.buffers()[2]])
        if not pc.match_substring_regex(whole, _UUIDS_RE)[0].as_py():
            return False
    return True


def _small_canonical_uuids(chunk: pa.Array) -> bool:
    """:func:`all_canonical_uuids` of one small chunk, with Python's ``re`` (no pattern to compile)."""
    if len(chunk) == 0:
        return True
    bounds = np.frombuffer(chunk.buffers()[1], np.int32, len(chunk) + 1, chunk.offset * 4)
    if not bool(np.all(np.diff(bounds) == 36)):
        return False
    text = memoryview(chunk.buffers()[2] or b"")[int(bounds[0]) : int(bounds[-1])]
    return _UUIDS_PY.fullmatch(text) is not None


def _timestamps(col: pa.ChunkedArray) -> pa.ChunkedArray:
    t = col.type
    if not pa.types.is_timestamp(t):
        raise InvalidRequest(f"column 'timestamp' has type {t}, need timestamp[us] or a tz-aware timestamp")
    if t.tz is None and t.unit != "us":
        raise InvalidRequest(
            f"column 'timestamp' is naive {t}; give timestamp[us] (read as UTC) or a tz-aware type"
        )
    try:
        # A tz-aware timestamp's values are already UTC; dropping the zone keeps them.
        return col.cast(pa.timestamp(t.unit)).cast(pa.timestamp("us"))
    except pa.ArrowInvalid as exc:
        raise InvalidRequest(f"column 'timestamp' does not convert to microseconds: {exc}") from None


def check_unique_ids(table: pa.Table) -> None:
    """Refuse a batch that holds an event id twice, naming the first repeat."""
    ids = table.column("event_id")
    if table.num_rows < 2:
        return
    if table.num_rows <= _SMALL:
        if len(set(ids.to_pylist())) == table.num_rows:
            return
    elif surely_unique(ids):
        return
    if pc.count_distinct(ids).as_py() != table.num_rows:
        first: dict[str, int] = {}
        for i, eid in enumerate(ids.to_pylist()):  # rare path: name the first repeat
            if eid in first:
                raise InvalidRequest(f"event #{i} ({eid}) repeats the id of event #{first[eid]} in the batch")
            first[eid] = i


_surely_unique = surely_unique  # the name the tests know it by
