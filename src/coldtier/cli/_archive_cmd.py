"""``coldtier archive``: store a JSON Lines or Parquet file of events, create-only."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import pyarrow as pa
import pyarrow.compute as pc

import coldtier
from coldtier._engine import StoreArchive
from coldtier._validate import JsonWritten

from ._common import (
    END_HELP,
    EXIT_OK,
    MIB,
    START_HELP,
    InputError,
    count,
    dump_json,
    interactive,
    json_option,
    mib,
    note,
    open_url,
    opt_option,
    rfc3339,
    window,
)
from ._input import POS, Source, check_window, chunks, explain, open_source, utc_times
from ._keys_cmd import resume_key
from ._progress import Bar, Timer

#: Inputs up to this many MiB of Arrow data are held and archived as tables:
#: validated whole by ``archive()`` before anything is written.  Larger ones
#: are checked line by line, then streamed (``COLDTIER_HOLD_MIB`` to change).
HOLD_MIB = 256
_DAY = timedelta(days=1)
_US = timedelta(microseconds=1)


@dataclass(slots=True)
class _Batch:
    tenant: str
    start: datetime
    end: datetime
    table: pa.Table  # with the _pos column, for error messages
    receipt: coldtier.Receipt | None = None


@click.command("archive", short_help="Archive a JSON Lines or Parquet file of events.")
@click.argument("args", nargs=-1, metavar="[URL] FILE")
@click.option(
    "--tenant",
    "-t",
    help="Tenant the events belong to.  Without it, each event's tenant_id decides, and the file is "
    "archived per tenant and UTC day.",
)
@click.option("--start", metavar="TIME", help=f"{START_HELP}  Default: the earliest event.")
@click.option("--end", metavar="TIME", help=f"{END_HELP}  Default: the latest event.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "parquet"]),
    default="auto",
    show_default=True,
    help="Input format; auto goes by extension, then by content.",
)
@opt_option
@json_option
def archive_cmd(
    *,
    args: tuple[str, ...],
    tenant: str | None,
    start: str | None,
    end: str | None,
    fmt: str,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """Archive the events in FILE (JSON Lines or Parquet; - reads stdin).

    JSON Lines use the Event field names (see coldtier.jsonl): id (or
    event_id), event_type, entity_id, tenant_id, payload, timestamp (RFC 3339
    with an offset), metadata, version.  Parquet has the stored columns
    (event_id or id, ...).  With --tenant, every event must be that tenant's
    and the file is one batch; without it, the events are archived per tenant
    and UTC day (each day's window is the whole day, within --start/--end).

    The whole file is checked before anything is written (above
    COLDTIER_HOLD_MIB, 256 by default, of events a batch is streamed: an event
    archive() refuses late in it stops the stream with the earlier objects
    stored, each complete).  Archiving the same file again stores nothing new
    and succeeds.
    """
    if len(args) == 2:
        url, file = args
    elif len(args) == 1 and os.environ.get("COLDTIER_URL"):
        url, file = None, args[0]
    elif len(args) == 1:
        raise click.UsageError("expected URL FILE (or set COLDTIER_URL and give only FILE)")
    else:
        raise click.UsageError("expected [URL] FILE")
    lo, hi = window(start, end)
    archive = open_url(url, opts)
    src = open_source(file, fmt)
    show = interactive()
    timer = Timer(enabled=show)
    try:
        hold = int(float(os.environ.get("COLDTIER_HOLD_MIB", HOLD_MIB)) * MIB)
    except ValueError:
        raise InputError(f"COLDTIER_HOLD_MIB={os.environ['COLDTIER_HOLD_MIB']!r} is not a number") from None

    # Step 1: read and check the whole input (nothing is written on bad input)
    # and hold it if it is small enough to hand to archive() whole.
    events, first, last = 0, None, None
    held: list[pa.Table] | None = []
    held_bytes = 0
    with Bar(f"checking {src.name}", enabled=show, step=(1, 2)) as bar:
        bar(0, src.size())
        for table in chunks(src, tenant, bar):
            span = check_window(table, src, lo, hi)
            events += table.num_rows
            if span is not None:
                first = span[0] if first is None else min(first, span[0])
                last = span[1] if last is None else max(last, span[1])
            if held is not None:
                held.append(table)
                held_bytes += table.nbytes
                if held_bytes > hold:
                    held = None  # step 2 streams it, reading the input again
    if events == 0:
        note(f"{src.name} holds no events; nothing archived")
        return _report(archive, tenant, [], lo, hi, as_json=as_json)
    if held is None and tenant is None:
        raise InputError(
            f"{src.name} is over COLDTIER_HOLD_MIB={hold // MIB} MiB of events: too large to split per "
            "tenant and day in memory; give --tenant T (one tenant's file), or raise COLDTIER_HOLD_MIB"
        )

    # Step 2: store.  A batch's window defaults to its events' (the whole UTC
    # day without --tenant); archive() validates each event, once.
    with Bar(f"storing {src.name}", enabled=show, step=(2, 2)) as bar:
        if held is None:
            assert tenant is not None
            batches = [_Batch(tenant, lo or _fallback(first), hi or _fallback(last), pa.table({}))]
            bar(0, src.size())
            batches[0].receipt = _stream(archive, batches[0], src, lo=lo, hi=hi, bar=bar)
        else:
            table = pa.concat_tables(held)
            del held
            batches = _batches(table, tenant, src, lo=lo, hi=hi, first=first, last=last)
            bar(0, sum(b.table.nbytes for b in batches))
            for batch in batches:
                batch.receipt = _store(archive, batch, src)
                bar.advance(batch.table.nbytes)
    timer.done(f"archived {src.name}", src.size())
    return _report(archive, tenant, batches, lo, hi, as_json=as_json)


def _fallback(value: datetime | None) -> datetime:
    # No usable timestamp column: archive() refuses the input whatever the
    # window, and says why.
    return value or datetime(1970, 1, 1, tzinfo=UTC)


def _batches(
    table: pa.Table,
    tenant: str | None,
    src: Source,
    *,
    lo: datetime | None,
    hi: datetime | None,
    first: datetime | None,
    last: datetime | None,
) -> list[_Batch]:
    """One batch with --tenant; else one per tenant and UTC day, in that order."""
    if tenant is not None:
        return [_Batch(tenant, lo or _fallback(first), hi or _fallback(last), table)]
    if "tenant_id" not in table.column_names:
        raise InputError(f"{src.name} has no tenant_id column: give --tenant T")
    ts = utc_times(table)
    if ts is None:
        raise InputError(f"{src.name} has no timestamp column to split by day: give --tenant T")
    tenants = table.column("tenant_id")
    if tenants.null_count:
        i = int(pc.index(pc.is_null(tenants), True).as_py())
        raise coldtier.InvalidRequest(f"{src.name} {src.label} {table.column(POS)[i].as_py()}: no tenant_id")
    keyed = table.append_column("_day", pc.floor_temporal(ts, unit="day"))
    keyed = keyed.sort_by([("tenant_id", "ascending"), ("_day", "ascending"), (POS, "ascending")])
    pairs = pa.table({"t": keyed.column("tenant_id"), "d": keyed.column("_day")})
    runs = pairs.group_by(["t", "d"], use_threads=False).aggregate([([], "count_all")])
    runs = runs.sort_by([("t", "ascending"), ("d", "ascending")])
    found, offset = [], 0
    for name, day, rows in zip(*(runs.column(c).to_pylist() for c in ("t", "d", "count_all")), strict=True):
        start = max(day, lo) if lo is not None else day
        end = min(day + _DAY - _US, hi) if hi is not None else day + _DAY - _US
        found.append(_Batch(str(name), start, end, keyed.slice(offset, rows).drop_columns(["_day"])))
        offset += rows
    return found


def _archive_input(table: pa.Table, src: Source) -> pa.Table:
    """What archive() is given: the events' columns (a JSON Lines tenant_id is already checked)."""
    drop = [POS] + (["tenant_id"] if src.kind == "jsonl" and "tenant_id" in table.column_names else [])
    return table.drop_columns(drop)


def _validated_once(archive: coldtier.Archive, src: Source, events: Any) -> Any:
    """``events`` as archive() should get them: JSON Lines text was parsed and written back by
    coldtier.jsonl, so coldtier's own engine does not check that JSON a second time."""
    if src.kind == "jsonl" and isinstance(archive, StoreArchive):
        return JsonWritten(events)
    return events


def _store(archive: coldtier.Archive, batch: _Batch, src: Source) -> coldtier.Receipt:
    resume_key(archive, batch.tenant)
    try:
        events = _validated_once(archive, src, _archive_input(batch.table, src))
        return archive.archive(batch.tenant, batch.start, batch.end, events)
    except coldtier.InvalidRequest as exc:
        raise explain(exc, batch.table, src) from None


def _stream(
    archive: coldtier.Archive,
    batch: _Batch,
    src: Source,
    *,
    lo: datetime | None,
    hi: datetime | None,
    bar: Bar,
) -> coldtier.Receipt:
    """Read the input again and archive it as a stream of record batches."""
    schema: list[pa.Schema] = []

    def tables() -> Iterator[pa.Table]:
        for table in chunks(src, batch.tenant, bar):
            check_window(table, src, lo, hi)
            yield _archive_input(table, src)

    stream = tables()
    head = next(stream)
    schema.append(head.schema)

    def batches() -> Iterator[pa.RecordBatch]:
        yield from head.to_batches()
        for table in stream:
            yield from table.cast(schema[0]).to_batches()

    reader = pa.RecordBatchReader.from_batches(schema[0], batches())
    resume_key(archive, batch.tenant)
    try:
        return archive.archive(batch.tenant, batch.start, batch.end, _validated_once(archive, src, reader))
    except coldtier.InvalidRequest as exc:
        raise coldtier.InvalidRequest(
            f"{src.name}: {exc} (streamed input: objects stored before this event stay, each complete; "
            "a corrected retry reuses them)"
        ) from None


def _report(
    archive: coldtier.Archive,
    tenant: str | None,
    batches: list[_Batch],
    lo: datetime | None,
    hi: datetime | None,
    *,
    as_json: bool,
) -> int:
    receipts = [(b, b.receipt) for b in batches if b.receipt is not None]
    rows = [_receipt_json(b, r) for b, r in receipts]
    if as_json:
        total: dict[str, Any] = {
            "archive": archive.description(),
            "tenant_id": tenant,
            "start": rfc3339(min(b.start for b in batches)) if batches else (lo and rfc3339(lo)),
            "end": rfc3339(max(b.end for b in batches)) if batches else (hi and rfc3339(hi)),
            "events": sum(r.events for _, r in receipts),
            "bytes": sum(r.bytes for _, r in receipts),
            "created": any(r.created for _, r in receipts),
            "keys": [k for _, r in receipts for k in r.keys],
        }
        if tenant is None:
            total["batches"] = rows
        dump_json(total)
        return EXIT_OK
    if tenant is None and receipts:
        click.echo(
            f"no --tenant: archived per tenant and UTC day, by each event's tenant_id and timestamp "
            f"({count(len(receipts), 'batch', 'batches')}):"
        )
    for b, r in receipts:
        if not r.keys:
            continue
        state = "stored" if r.created else "already archived, unchanged"
        click.echo(
            f"{count(r.events, 'event')} of {b.tenant} [{rfc3339(b.start)}, {rfc3339(b.end)}] in "
            f"{count(len(r.keys), 'object')}, {mib(r.bytes)}: {state}"
        )
        for key in r.keys:
            click.echo(f"  {key}")
    return EXIT_OK


def _receipt_json(batch: _Batch, receipt: coldtier.Receipt) -> dict[str, Any]:
    return {
        "tenant_id": batch.tenant,
        "start": rfc3339(batch.start),
        "end": rfc3339(batch.end),
        "events": receipt.events,
        "bytes": receipt.bytes,
        "created": receipt.created,
        "keys": list(receipt.keys),
    }
