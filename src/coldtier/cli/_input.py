"""The file ``coldtier archive`` reads: JSON Lines or Parquet, as tables ``Archive.archive`` takes.

Each chunk carries a ``_pos`` column (the line, or the 1-based row of a
Parquet file) so that what ``archive()`` refuses can be reported by line.
The events themselves are validated once, by ``archive()``; here only what
the JSON Lines reader checks (the shape of a line) and the window the
command line gives.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import IO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import coldtier
from coldtier import jsonl

from ._common import InputError, one_line, rfc3339
from ._progress import Bar

#: Rows read and converted at a time (a JSON Lines chunk is held as Python objects first).
CHUNK_ROWS = 8_192
POS = "_pos"
_EVENT_RE = re.compile(r"event #(\d+) \(([^)]*)\)")


@dataclass(frozen=True, slots=True)
class Source:
    name: str
    kind: str  # "jsonl" or "parquet"
    path: str | None = None
    data: bytes | None = None

    @property
    def label(self) -> str:
        """What a position in this input is called."""
        return "row" if self.kind == "parquet" else "line"

    def size(self) -> int:
        return len(self.data) if self.data is not None else os.path.getsize(self.path or "")

    @contextlib.contextmanager
    def binary(self) -> Iterator[IO[bytes]]:
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            with open(self.path or "", "rb") as f:
                yield f


def open_source(file: str, fmt: str) -> Source:
    """The input file (``-`` = stdin) and its kind, by ``--format``, extension or content."""
    try:
        if file == "-":
            data: bytes | None = sys.stdin.buffer.read()
            path, head = None, (data or b"")[:4]
        else:
            if not os.path.isfile(file):
                raise InputError(f"{file}: no such file")
            data, path = None, file
            with open(file, "rb") as f:
                head = f.read(4)
    except OSError as exc:
        raise InputError(f"{file}: cannot read: {exc.strerror or exc}") from None
    name = "stdin" if file == "-" else file
    if fmt == "auto":
        lower = name.lower()
        if lower.endswith((".parquet", ".pq")):
            fmt = "parquet"
        elif lower.endswith((".jsonl", ".ndjson", ".json")):
            fmt = "jsonl"
        else:
            fmt = "parquet" if head == b"PAR1" else "jsonl"
    return Source(name, fmt, path, data)


def chunks(src: Source, tenant: str | None, bar: Bar) -> Iterator[pa.Table]:
    """The input as tables of up to :data:`CHUNK_ROWS` rows, each with a ``_pos`` column."""
    if src.kind == "parquet":
        yield from _parquet_chunks(src, bar)
        return

    def lines(f: IO[bytes]) -> Iterator[bytes]:
        for line in f:
            bar.advance(len(line))
            yield line

    with src.binary() as f:
        for table in jsonl.load_tables(lines(f), tenant, name=src.name, rows=CHUNK_ROWS, line_numbers=True):
            yield table.rename_columns([*table.column_names[:-1], POS])


def _parquet_chunks(src: Source, bar: Bar) -> Iterator[pa.Table]:
    def unreadable(exc: BaseException) -> InputError:
        return InputError(f"{src.name} is not a readable Parquet file: {one_line(str(exc))}")

    try:
        pf = pq.ParquetFile(src.path if src.path is not None else pa.BufferReader(src.data or b""))
    except (pa.ArrowException, OSError) as exc:
        raise unreadable(exc) from None
    size, rows = src.size(), max(1, pf.metadata.num_rows)
    with pf:
        offset = 0
        batches = pf.iter_batches(batch_size=CHUNK_ROWS, use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise unreadable(exc) from None
            table = pa.Table.from_batches([batch])
            names = table.column_names
            if "id" in names and "event_id" not in names:  # the Event spelling, as in JSON Lines
                table = table.rename_columns(["event_id" if n == "id" else n for n in names])
            positions = pa.array(range(offset + 1, offset + 1 + table.num_rows), pa.int64())
            offset += table.num_rows
            bar.advance(size * table.num_rows // rows)
            yield table.append_column(POS, positions)


def utc_times(table: pa.Table) -> pa.ChunkedArray | None:
    """The ``timestamp`` column as ``timestamp[us, UTC]`` (naive = UTC); None if there is none.

    Only for finding the window and the day; whether the type is acceptable
    is for ``archive()`` to say.
    """
    if "timestamp" not in table.column_names:
        return None
    col = table.column("timestamp")
    if not pa.types.is_timestamp(col.type):
        return None
    try:
        return col.cast(pa.timestamp(col.type.unit, tz="UTC")).cast(pa.timestamp("us", tz="UTC"), safe=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def check_window(
    table: pa.Table, src: Source, lo: datetime | None, hi: datetime | None
) -> tuple[datetime, datetime] | None:
    """Refuse an event outside ``--start``/``--end`` by line; the chunk's first and last time."""
    ts = utc_times(table)
    if ts is None or table.num_rows == 0 or ts.null_count == len(ts):
        return None
    first, last = (v.as_py() for v in pc.min_max(ts).values())
    for bound, bad, word, flag in ((lo, first, "before", "--start"), (hi, last, "after", "--end")):
        if bound is None or (bad >= bound if word == "before" else bad <= bound):
            continue
        scalar = pa.scalar(bound, pa.timestamp("us", tz="UTC"))
        mask = pc.less(ts, scalar) if word == "before" else pc.greater(ts, scalar)
        i = int(pc.index(pc.fill_null(mask, False), True).as_py())
        where = f"{src.name} {src.label} {table.column(POS)[i].as_py()}"
        raise coldtier.InvalidRequest(
            f"{where}: timestamp {rfc3339(ts[i].as_py())} is {word} {flag} {rfc3339(bound)}"
        )
    return first, last


def explain(exc: coldtier.InvalidRequest, table: pa.Table, src: Source) -> coldtier.InvalidRequest:
    """``archive()``'s refusal, with the line of the event it names when that can be told."""
    text = str(exc)
    match = _EVENT_RE.search(text)
    if match is not None and POS in table.column_names and "event_id" in table.column_names:
        index = int(match[1])
        if index < table.num_rows and str(table.column("event_id")[index].as_py()) == match[2]:
            return coldtier.InvalidRequest(
                f"{src.name} {src.label} {table.column(POS)[index].as_py()}: {text}"
            )
    return coldtier.InvalidRequest(f"{src.name}: {text}")
