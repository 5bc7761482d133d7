"""The reader x column matrix of DESIGN.md §3 as Markdown: ``python -m benchmarks.reader_matrix``.

Archives the sample of ``tests/test_readers.py`` once per codec, has every
reader read every column of every object and compares it with
``Archive.read_object`` (values and Python types).  A cell is ``✓ <type the
reader sees>`` or ``✗`` with the codecs and the first error.  Then bytes per
event of coldtier's default against pyarrow's ``write_table(...,
compression="snappy")`` (allsource-core's default) on ``make_table``.

``--encoding COLUMN=ENCODING`` and ``--statistics COL,COL`` override coldtier's
writer options for the run, to show what a change would do, e.g. the format-1
ids: ``--encoding event_id=DELTA_LENGTH_BYTE_ARRAY --statistics timestamp``.
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from tests import _readers
from tests._readers import CODECS, COLUMNS, READERS

import coldtier
from coldtier import _format
from coldtier.testing._data import make_table


def matrix(base: Path, codecs: tuple[str, ...] = CODECS) -> str:
    samples = {codec: _readers.build(base / codec, codec) for codec in codecs}
    cells: dict[tuple[str, str], dict[str, str]] = {}  # (reader, column) -> codec -> problem ("" = ok)
    types: dict[tuple[str, str], str] = {}
    for reader in READERS:
        try:
            _readers.version_of(reader)
        except ImportError as exc:
            for column in COLUMNS:
                cells[(reader, column)] = dict.fromkeys(codecs, f"not installed ({exc})")
            continue
        for codec, sample in samples.items():
            for paths in sample.paths.values():
                for path in paths:
                    got = _readers.read_file(reader, path)
                    want = _readers.expected(sample, path)
                    for column in COLUMNS:
                        cell = cells.setdefault((reader, column), {})
                        if column in got.errors:
                            problem = got.errors[column]
                        else:
                            types.setdefault((reader, column), got.types[column])
                            problem = _difference(got.values[column], want[column], got.types[column])
                        # keep a wrong value (2**64 - 1 through a float) over a wrong type (1.0 for 1)
                        if problem and (not cell.get(codec) or "wrong type" in cell[codec]):
                            cell[codec] = problem
                        cell.setdefault(codec, "")
    lines = ["| reader | " + " | ".join(f"`{c}`" for c in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for reader in READERS:
        try:
            label = f"{reader} {_readers.version_of(reader)}"
        except ImportError:
            label = reader
        row = []
        for column in COLUMNS:
            bad = {c: p for c, p in cells[(reader, column)].items() if p}
            if not bad:
                row.append(f"✓ {types[(reader, column)]}")
            else:
                which = "all codecs" if len(bad) == len(codecs) else ", ".join(bad)
                row.append(f"✗ ({which}) {next(iter(bad.values()))}")
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def _difference(got: list[object], want: list[object], kind: str) -> str:
    if len(got) != len(want):
        return f"{len(got)} rows, want {len(want)}"
    pairs = list(enumerate(zip(got, want, strict=True)))
    # A wrong value first (e.g. 2**64 - 1 through a float), else a wrong type (1.0 for 1).
    for i, (g, w) in pairs:
        if g != w:
            return f"row {i}: {g!r} ({type(g).__name__}, {kind}) != {w!r}"
    for i, (g, w) in pairs:
        if type(g) is not type(w):
            return f"wrong type: row {i}: {g!r} ({type(g).__name__}, {kind}) for {w!r}"
    return ""


def bytes_per_event(base: Path, count: int) -> str:
    table = make_table(count)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    theirs = sink.getvalue().size
    start = datetime(2024, 3, 1, tzinfo=UTC)
    root = base / f"bytes-{count}"
    root.mkdir()
    receipt = coldtier.open_archive(str(root)).archive("acme", start, start + timedelta(days=1), table)
    return (
        f"bytes/event on make_table({count:_}): coldtier default {receipt.bytes / count:.2f} B "
        f"({len(receipt.keys)} objects), pyarrow snappy default {theirs / count:.2f} B, "
        f"ratio {receipt.bytes / theirs:.3f} (target ≤ 0.55)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoding", action="append", default=[], metavar="COLUMN=ENCODING")
    parser.add_argument("--statistics", metavar="COL,COL")
    parser.add_argument("--events", type=int, default=100_000, help="events for bytes/event (0: skip)")
    args = parser.parse_args()
    for item in args.encoding:
        column, _, encoding = item.partition("=")
        _format._ENCODINGS[column] = encoding
    if args.statistics is not None:
        _format._STATISTICS[:] = [c for c in args.statistics.split(",") if c]
    options = _format.writer_options()
    print(
        f"writer options: use_dictionary={options['use_dictionary']}, "
        f"column_encoding={options['column_encoding']}, write_statistics={options['write_statistics']}, "
        f"codecs {', '.join(CODECS)}\n"
    )
    with tempfile.TemporaryDirectory(prefix="coldtier-readers-") as tmp:
        print(matrix(Path(tmp)))
        if args.events:
            print()
            print(bytes_per_event(Path(tmp), args.events))


if __name__ == "__main__":
    main()
