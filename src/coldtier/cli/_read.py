"""``coldtier read``: a tenant's events in a window, as JSON Lines, Parquet or a table for people."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO

import click
import pyarrow as pa
import pyarrow.parquet as pq

import coldtier
from coldtier import jsonl

from ._common import (
    EXIT_OK,
    InputError,
    check_exists,
    count,
    interactive,
    note,
    open_url,
    opt_option,
    rfc3339,
    url_argument,
    window,
    window_options,
)
from ._progress import Bar, Timer

_BY_EXTENSION = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


@contextlib.contextmanager
def _output(out: str | None) -> Iterator[IO[bytes]]:
    """stdout, or a file that appears under its name only once complete."""
    if out is None or out == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(out)
    temp = target.with_name(f".{target.name}.coldtier-{os.getpid()}.tmp")
    try:
        f = open(temp, "wb")  # noqa: SIM115 - closed below, before the rename
    except OSError as exc:
        raise InputError(f"{out}: cannot write: {exc.strerror or exc}") from None
    try:
        with f:
            yield f
        os.replace(temp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def output_format(out: str | None, fmt: str | None) -> str:
    """``--format``, or the one ``-o``'s extension names; an unknown extension is refused."""
    if fmt is not None:
        return fmt
    if out is None or out == "-":
        return "jsonl"
    ext = Path(out).suffix.lower()
    if ext not in _BY_EXTENSION:
        raise click.UsageError(
            f"cannot tell the format of {out!r} from its extension: name it *.jsonl or *.parquet, "
            "or give --format jsonl|parquet|table"
        )
    return _BY_EXTENSION[ext]


def _write_jsonl(sink: IO[bytes], tables: Iterator[pa.Table], source: str) -> int:
    n = 0
    for table in tables:
        sink.writelines(jsonl.dump_table(table, source=source))
        n += table.num_rows
    return n


def _write_parquet(sink: IO[bytes], tables: Iterator[pa.Table]) -> int:
    """The stored columns plus ``tenant_id``: what ``coldtier archive`` takes back."""
    schema = coldtier.SCHEMA.append(pa.field("tenant_id", pa.string(), nullable=False))
    n = 0
    with pq.ParquetWriter(sink, schema, compression="zstd") as writer:
        for table in tables:
            writer.write_table(pa.Table.from_arrays([table.column(f.name) for f in schema], schema=schema))
            n += table.num_rows
    return n


def _write_rows(sink: IO[bytes], tables: Iterator[pa.Table]) -> int:
    """A table for people: one line per event, the payload clipped to the terminal."""
    width = max(80, shutil.get_terminal_size((120, 24)).columns)
    header = f"{'TIMESTAMP (UTC)':<27} {'EVENT TYPE':<20} {'ENTITY':<20} {'V':>3} PAYLOAD"
    sink.write((header[:width] + "\n").encode())
    n = 0
    room = max(10, width - 74)
    for table in tables:
        names = ("timestamp", "event_type", "entity_id", "version", "payload")
        columns = [table.column(name).to_pylist() for name in names]
        for ts, etype, entity, version, payload in zip(*columns, strict=True):
            text = " ".join(payload.split())
            if len(text) > room:
                text = text[: room - 1] + "…"
            row = f"{ts:%Y-%m-%dT%H:%M:%S.%fZ} {_clip(etype, 20):<20} {_clip(entity, 20):<20} {version:>3} {text}"
            sink.write((row + "\n").encode())
        n += table.num_rows
    sink.write(f"({count(n, 'event')})\n".encode())
    return n


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def say_empty(
    archive: coldtier.Archive, tenant: str, lo: datetime | None, hi: datetime | None, what: str
) -> None:
    """Why nothing came back: no objects at all for the tenant, or none in the window."""
    if (lo is None and hi is None) or not archive.objects(tenant):
        note(f"0 {what} of {tenant} (no objects for that tenant in {archive.description()})")
    else:
        lo_text = rfc3339(lo) if lo is not None else "the beginning"
        hi_text = rfc3339(hi) if hi is not None else "the end"
        note(f"0 {what} of {tenant} between {lo_text} and {hi_text} (its objects lie outside that window)")


@click.command("read", short_help="Read a tenant's events in a window.")
@url_argument
@click.option("--tenant", "-t", required=True, help="Tenant to read.")
@window_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet", "table"]),
    help="Output format (default: by -o's extension, .jsonl/.ndjson or .parquet/.pq; jsonl on stdout).",
)
@click.option("-o", "--output", "out", metavar="OUT", help="Write to this file (default: stdout).")
@opt_option
def read_cmd(
    *,
    url: str | None,
    tenant: str,
    start: str | None,
    end: str | None,
    day: str | None,
    fmt: str | None,
    out: str | None,
    opts: tuple[str, ...],
) -> int:
    """Read a tenant's events in a window, each event once, in time order.

    JSON Lines output (the default; it is already machine-readable, so read
    takes no --json) uses the Event field names and can be archived again
    unchanged; Parquet output has the stored columns plus tenant_id.
    """
    lo, hi = window(start, end, day)
    to_stdout = out is None or out == "-"
    fmt = output_format(out, fmt)
    if fmt == "parquet" and to_stdout and sys.stdout.isatty():
        raise click.UsageError("refusing to write Parquet to a terminal: give -o FILE or redirect stdout")
    archive = open_url(url, opts)
    show = not to_stdout and interactive()
    timer = Timer(enabled=show)
    read_bytes = [0]

    def progress(done: int, total: int) -> None:
        read_bytes[0] = done
        bar(done, total)

    with Bar(f"reading {tenant}", enabled=show) as bar:
        stream = archive.read_tables(tenant, lo, hi, progress=progress)
        head = next(stream, None)  # the arguments are checked, the first objects read
        if head is None:
            check_exists(archive)
        with _output(out) as sink:
            tables = itertools.chain([] if head is None else [head], stream)
            if fmt == "parquet":
                n = _write_parquet(sink, tables)
            elif fmt == "table":
                n = _write_rows(sink, tables)
            else:
                n = _write_jsonl(sink, tables, f"{tenant} of {archive.description()}")
    timer.done(f"read {tenant}", read_bytes[0])
    if n == 0:
        say_empty(archive, tenant, lo, hi, "events")
    elif not to_stdout:
        sys.stderr.write(f"{count(n, 'event')} of {tenant} written to {out} ({fmt})\n")
    return EXIT_OK
