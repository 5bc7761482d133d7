"""The ``coldtier`` command: archive, list, read back, verify and probe from a shell.

::

    coldtier backends
    coldtier archive [URL] FILE --tenant T [--start S] [--end E]
    coldtier ls      [URL] [--tenant T] [--start S] [--end E] [--json]
    coldtier read    [URL] --tenant T [--start S] [--end E | --day D] [--format jsonl|parquet|table] [-o OUT]
    coldtier verify  [URL] [--tenant T] [--json]
    coldtier probe   [URL]

``URL`` may be left out when ``COLDTIER_URL`` is set.  Backend options go in
the URL's query string or as repeated ``--opt name=value``.  Exit codes: 0 ok,
1 problems found or the operation failed, 2 usage or input error.  Every error
is one line on stderr (``COLDTIER_DEBUG=1`` adds the traceback).  Progress bars
go to stderr, only when stdout and stderr are both a terminal.

Needs the ``cli`` extra: ``pip install 'coldtier[cli]'``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit
from urllib.request import url2pathname

try:
    import click
    from tqdm import tqdm
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    sys.stderr.write(f"coldtier: error: the command line needs {exc.name}: pip install 'coldtier[cli]'\n")
    raise SystemExit(2) from None

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__, _validate
from ._archive import Archive
from ._errors import ColdTierError, InvalidRequest, MissingDependency, UnknownBackend
from ._format import SCHEMA
from ._jsonl import dump_table, load_numbered
from ._registry import available_backends, load_backend, open_archive
from ._types import ArchivedObject, Receipt, Window

__all__ = ["cli", "main", "run"]

EXIT_OK, EXIT_PROBLEMS, EXIT_USAGE = 0, 1, 2

#: Rows validated and converted at a time while reading an input file.
_CHUNK_ROWS = 65_536
#: An input that fits one object (by the archive's ``object_events``, and at
#: most this many Arrow bytes) is archived as one table: exactly the object
#: ``Archive.archive`` stores for the same events.  Larger inputs stream.
_HOLD_BYTES = 256 * 2**20
_HOLD_EVENTS = 262_144
_OPEN = Window(datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
_MONTH_RE = re.compile(r"\d{4}-\d\d")
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\d")


class InputError(Exception):
    """A file or argument the user gave cannot be used (exit 2)."""


# ---------------------------------------------------------------------------
# Shared options and helpers


def _url_argument(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.argument("url", required=False, metavar="[URL]")(fn)


def _opt_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--opt",
        "opts",
        multiple=True,
        metavar="NAME=VALUE",
        help=(
            "Backend option (repeatable), as in the URL's query string.  Keep credentials in the "
            "environment (AWS_*, GOOGLE_APPLICATION_CREDENTIALS): command lines are visible to others."
        ),
    )(fn)


def _json_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")(fn)


def _window_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option(
        "--day",
        metavar="DATE",
        help="One UTC day (YYYY-MM-DD) or month (YYYY-MM); same as --start D --end D.",
    )(fn)
    fn = click.option(
        "--end", metavar="TIME", help="Inclusive end: RFC 3339, or a date/month meaning its last instant."
    )(fn)
    return click.option(
        "--start", metavar="TIME", help="Inclusive start: RFC 3339 (no offset = UTC), a date or a month."
    )(fn)


def _time(value: str, *, end: bool, what: str) -> datetime:
    """Parse a command-line time; a bare date or month means its first (or last) instant."""
    text = value.strip()
    try:
        if _MONTH_RE.fullmatch(text):
            first = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
            if not end:
                return first
            following = (first + timedelta(days=32)).replace(day=1)
            return following - timedelta(microseconds=1)
        if _DATE_RE.fullmatch(text):
            day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
            return day + timedelta(days=1) - timedelta(microseconds=1) if end else day
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise click.BadParameter(
            f"{value!r} is not a time (RFC 3339, YYYY-MM-DD or YYYY-MM)", param_hint=what
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _window(
    start: str | None, end: str | None, day: str | None = None
) -> tuple[datetime | None, datetime | None]:
    if day is not None:
        if start is not None or end is not None:
            raise click.UsageError("--day cannot be combined with --start or --end")
        start = end = day
    lo = None if start is None else _time(start, end=False, what="--day" if day else "--start")
    hi = None if end is None else _time(end, end=True, what="--day" if day else "--end")
    if lo is not None and hi is not None and lo > hi:
        raise click.UsageError(f"--start {_rfc3339(lo)} is after --end {_rfc3339(hi)}")
    return lo, hi


def _rfc3339(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def _options(opts: tuple[str, ...]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in opts:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--opt")
        if name in options and options[name] != value:
            raise click.BadParameter(f"{name!r} is given twice with different values", param_hint="--opt")
        options[name] = value
    return options


def _open(url: str | None, opts: tuple[str, ...], *, must_exist: bool) -> Archive:
    """The archive a URL (or ``COLDTIER_URL``) names; reading commands need it to exist."""
    url = url or os.environ.get("COLDTIER_URL") or None
    if url is None:
        raise click.UsageError("no archive URL: give one or set COLDTIER_URL")
    archive = open_archive(url, **_options(opts))
    if must_exist:
        # A typo in a local path would otherwise read as an empty archive, and
        # `verify` would pass on nothing.
        desc = archive.description()
        if desc.startswith("file://"):
            path = Path(url2pathname(urlsplit(desc).path))
            if not path.is_dir():
                raise InputError(f"{desc}: no such archive directory")
    return archive


def _interactive() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


class _Bar:
    """A tqdm bar on stderr driven by ``(done, total)`` calls; silent when disabled."""

    def __init__(self, desc: str, *, enabled: bool, unit: str = "B") -> None:
        self._bar: Any = None
        if enabled:
            self._bar = tqdm(
                desc=desc,
                total=0,
                unit=unit,
                unit_scale=True,
                unit_divisor=1024 if unit == "B" else 1000,
                file=sys.stderr,
                leave=False,
                # A terminal that reports no size (some ptys) would hide the bar.
                **({} if _columns() else {"ncols": 80, "nrows": 24}),
            )

    @property
    def callback(self) -> Callable[[int, int], None] | None:
        return None if self._bar is None else self

    def __call__(self, done: int, total: int) -> None:
        bar = self._bar
        if bar is None:
            return
        if bar.total != total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


def _with_progress(archive: Archive, method: str, *args: Any, progress: _Bar) -> Any:
    """Call ``archive.method(*args)``, with a progress callback where the engine takes one."""
    fn = getattr(archive, method)
    if progress.callback is not None:
        return fn(*args, progress=progress.callback)
    return fn(*args)


def _dump_json(value: Any) -> None:
    sys.stdout.buffer.write(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _object_json(obj: ArchivedObject) -> dict[str, Any]:
    return {
        "tenant_id": obj.tenant_id,
        "key": obj.key,
        "start": _rfc3339(obj.start),
        "end": _rfc3339(obj.end),
        "size": obj.size,
        "digest": obj.digest,
    }


# ---------------------------------------------------------------------------
# The command group


_EXAMPLES = """\b
Examples:
  coldtier archive s3://bucket/cold events.jsonl --tenant acme
  coldtier ls s3://bucket/cold --tenant acme --day 2024-03-02
  coldtier read s3://bucket/cold --tenant acme --day 2024-03-02 --format table
  coldtier read s3://bucket/cold --tenant acme --start 2024-03 --end 2024-03 -o march.parquet
  coldtier verify s3://bucket/cold
"""


@click.group(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}, epilog=_EXAMPLES
)
@click.version_option(__version__, prog_name="coldtier")
def cli() -> None:
    """Archive events create-only, read them back, and prove the archive intact.

    URL selects the backend: a local path or file:///path, s3://bucket/prefix,
    r2://bucket/prefix, gs://bucket/prefix, memory://name.  It may be left out
    when COLDTIER_URL is set.  Exit codes: 0 ok, 1 problems found, 2 usage or
    input error.
    """


@cli.command(short_help="List URL schemes and whether each works here.")
@_json_option
def backends(*, as_json: bool) -> int:
    """List URL schemes, their implementations and whether they can be used here."""
    rows: list[dict[str, Any]] = []
    for scheme, target in available_backends().items():
        try:
            load_backend(scheme)
            problem = None
        except (MissingDependency, UnknownBackend) as exc:
            problem = _one_line(str(exc))
        rows.append({"scheme": scheme, "target": target, "available": problem is None, "problem": problem})
    if as_json:
        _dump_json(rows)
    else:
        width = max(len(r["scheme"]) for r in rows) + 3
        for r in rows:
            state = "ok" if r["available"] else f"unavailable: {r['problem']}"
            click.echo(f"{r['scheme'] + '://':<{width}} {r['target']:<36} {state}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# archive


@dataclass(frozen=True, slots=True)
class _Source:
    name: str
    kind: str  # "jsonl" or "parquet"
    path: str | None = None
    data: bytes | None = None

    def size(self) -> int:
        """What the progress bar counts: bytes of JSON Lines, rows of Parquet."""
        if self.kind == "parquet":
            try:
                return int(pq.read_metadata(self.path or pa.BufferReader(self.data or b"")).num_rows)
            except (pa.ArrowException, OSError):
                return 0  # reading it will say what is wrong
        return len(self.data) if self.data is not None else os.path.getsize(self.path or "")

    @contextlib.contextmanager
    def binary(self) -> Iterator[IO[bytes]]:
        if self.data is not None:
            yield io.BytesIO(self.data)
        else:
            with open(self.path or "", "rb") as f:
                yield f


def _source(file: str, fmt: str) -> _Source:
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
    return _Source(name, fmt, path, data)


def _chunks(src: _Source, tenant: str, win: Window, bar: _Bar) -> Iterator[pa.Table]:
    """The input as validated :data:`SCHEMA` tables of up to ``_CHUNK_ROWS`` rows."""
    if src.kind == "parquet":
        yield from _parquet_chunks(src, tenant, win, bar)
    else:
        yield from _jsonl_chunks(src, tenant, win, bar)


def _jsonl_chunks(src: _Source, tenant: str, win: Window, bar: _Bar) -> Iterator[pa.Table]:
    def lines(f: IO[bytes]) -> Iterator[bytes]:
        for line in f:
            bar.advance(len(line))
            yield line

    with src.binary() as f:
        batch = []
        for number, event in load_numbered(lines(f), tenant, name=src.name):
            ts = event.timestamp
            if ts < win.start:
                raise InvalidRequest(
                    f"{src.name} line {number}: timestamp {_rfc3339(ts)} is before --start {_rfc3339(win.start)}"
                )
            if ts > win.end:
                raise InvalidRequest(
                    f"{src.name} line {number}: timestamp {_rfc3339(ts)} is after --end {_rfc3339(win.end)}"
                )
            batch.append(event)
            if len(batch) == _CHUNK_ROWS:
                yield _validate.from_events(tenant, win, batch)
                batch = []
        if batch:
            yield _validate.from_events(tenant, win, batch)


def _parquet_chunks(src: _Source, tenant: str, win: Window, bar: _Bar) -> Iterator[pa.Table]:
    try:
        pf = pq.ParquetFile(src.path if src.path is not None else pa.BufferReader(src.data or b""))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{src.name} is not a readable Parquet file: {_one_line(str(exc))}") from None
    with pf:
        offset = 0
        batches = pf.iter_batches(batch_size=_CHUNK_ROWS, use_threads=False)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (pa.ArrowException, OSError) as exc:
                raise InputError(
                    f"{src.name} is not a readable Parquet file: {_one_line(str(exc))}"
                ) from None
            try:
                table = _validate.from_arrow(tenant, win, batch)
            except InvalidRequest as exc:
                rows = f"rows {offset}-{offset + batch.num_rows - 1}"
                raise InvalidRequest(f"{src.name} {rows}: {exc}") from None
            offset += batch.num_rows
            bar.advance(batch.num_rows)
            yield table


@cli.command("archive", short_help="Archive a JSON Lines or Parquet file of events.")
@click.argument("args", nargs=-1, metavar="[URL] FILE")
@click.option("--tenant", "-t", required=True, help="Tenant the events belong to.")
@click.option("--start", metavar="TIME", help="Inclusive window start (default: the earliest event).")
@click.option("--end", metavar="TIME", help="Inclusive window end (default: the latest event).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "jsonl", "parquet"]),
    default="auto",
    show_default=True,
    help="Input format; auto goes by extension, then by content.",
)
@_opt_option
@_json_option
def archive_cmd(
    *,
    args: tuple[str, ...],
    tenant: str,
    start: str | None,
    end: str | None,
    fmt: str,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """Archive the events in FILE (JSON Lines or Parquet; - reads stdin) for one tenant.

    The whole file is validated before anything is written.  Archiving the same
    file again stores nothing new and succeeds.
    """
    if len(args) == 2:
        url, file = args
    elif len(args) == 1 and os.environ.get("COLDTIER_URL"):
        url, file = None, args[0]
    elif len(args) == 1:
        raise click.UsageError("expected URL FILE (or set COLDTIER_URL and give only FILE)")
    else:
        raise click.UsageError("expected [URL] FILE")
    tenant = _validate.validate_tenant(tenant)
    lo, hi = _window(start, end)
    archive = _open(url, opts, must_exist=False)
    src = _source(file, fmt)
    win = Window(lo or _OPEN.start, hi or _OPEN.end)
    show = _interactive()

    # Pass 1: validate everything (nothing is written on bad input), find the
    # window, and keep the events if they are few enough to archive as one table.
    count, first, last = 0, None, None
    held: list[pa.Table] | None = []
    hold_events = _HOLD_EVENTS
    held_bytes = 0
    unit = "B" if src.kind == "jsonl" else "events"
    with _Bar(f"checking {src.name}", enabled=show, unit=unit) as bar:
        bar(0, src.size() if show else 0)
        for table in _chunks(src, tenant, win, bar):
            count += table.num_rows
            lo_ts, hi_ts = pc.min_max(table.column("timestamp")).values()
            first = lo_ts.as_py() if first is None else min(first, lo_ts.as_py())
            last = hi_ts.as_py() if last is None else max(last, hi_ts.as_py())
            if held is not None:
                held.append(table)
                held_bytes += table.nbytes
                if held_bytes > _HOLD_BYTES or count > hold_events:
                    held = None
    if count == 0 or first is None or last is None:
        sys.stderr.write(f"coldtier: {src.name} holds no events; nothing archived\n")
        receipt = Receipt(keys=(), events=0, bytes=0, created=False)
        w_start, w_end = lo, hi
    else:
        w_start = lo or first.replace(tzinfo=UTC)
        w_end = hi or last.replace(tzinfo=UTC)
        if held is not None:
            receipt = archive.archive(tenant, w_start, w_end, pa.concat_tables(held))
        else:
            if src.data is None and src.path is None:  # pragma: no cover - a source always has one
                raise InputError(f"{src.name} cannot be read twice")
            with _Bar(f"archiving {src.name}", enabled=show, unit=unit) as bar:
                bar(0, src.size() if show else 0)
                batches = (b for t in _chunks(src, tenant, win, bar) for b in t.to_batches())
                reader = pa.RecordBatchReader.from_batches(SCHEMA, batches)
                receipt = archive.archive(tenant, w_start, w_end, reader)
    if as_json:
        _dump_json(
            {
                "archive": archive.description(),
                "tenant_id": tenant,
                "start": None if w_start is None else _rfc3339(w_start),
                "end": None if w_end is None else _rfc3339(w_end),
                "events": receipt.events,
                "bytes": receipt.bytes,
                "created": receipt.created,
                "keys": list(receipt.keys),
            }
        )
    elif receipt.keys and w_start is not None and w_end is not None:
        state = "stored" if receipt.created else "already archived, unchanged"
        click.echo(
            f"{_count(receipt.events, 'event')} of {tenant} [{_rfc3339(w_start)}, {_rfc3339(w_end)}] in "
            f"{_count(len(receipt.keys), 'object')}, {receipt.bytes} bytes: {state}"
        )
        for key in receipt.keys:
            click.echo(f"  {key}")
    return EXIT_OK


# ---------------------------------------------------------------------------
# ls


@cli.command("ls", short_help="List archived objects, oldest first.")
@_url_argument
@click.option("--tenant", "-t", help="Only this tenant (default: every tenant).")
@_window_options
@_opt_option
@_json_option
def ls_cmd(
    *,
    url: str | None,
    tenant: str | None,
    start: str | None,
    end: str | None,
    day: str | None,
    opts: tuple[str, ...],
    as_json: bool,
) -> int:
    """List archived objects, oldest first, optionally only those overlapping a window.

    Reads key names only: start, end, size and key of each object.
    """
    lo, hi = _window(start, end, day)
    if tenant is not None:
        tenant = _validate.validate_tenant(tenant)
    archive = _open(url, opts, must_exist=True)
    tenants = [tenant] if tenant is not None else archive.tenants()
    with ThreadPoolExecutor(min(8, max(1, len(tenants)))) as pool:  # one listing per tenant
        found = [obj for objs in pool.map(lambda t: archive.objects(t, lo, hi), tenants) for obj in objs]
    if as_json:
        _dump_json([_object_json(o) for o in found])
        return EXIT_OK
    for obj in found:
        click.echo(f"{_rfc3339(obj.start)}  {_rfc3339(obj.end)}  {obj.size:>12}  {obj.key}")
    total = sum(o.size for o in found)
    scope = f"tenant {tenant}" if tenant is not None else _count(len(tenants), "tenant")
    sys.stderr.write(f"{_count(len(found), 'object')}, {total} bytes, {scope}, in {archive.description()}\n")
    return EXIT_OK


# ---------------------------------------------------------------------------
# read


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


def _runs(
    archive: Archive, tenant: str, lo: datetime | None, hi: datetime | None, bar: _Bar
) -> Iterator[tuple[str, pa.Table]]:
    """``(where, stored columns)`` in time order, each event once; streamed by the fsspec engine."""
    for table in archive.read_tables(tenant, lo, hi, progress=bar.callback):
        yield archive.description(), table.select(SCHEMA.names)


def _write_jsonl(sink: IO[bytes], runs: Iterator[tuple[str, pa.Table]], tenant: str) -> int:
    count = 0
    for where, table in runs:
        sink.writelines(dump_table(table, tenant, source=where))
        count += table.num_rows
    return count


def _write_parquet(sink: IO[bytes], runs: Iterator[tuple[str, pa.Table]], tenant: str) -> int:
    """The stored columns plus ``tenant_id``: what ``coldtier archive`` takes back."""
    field = pa.field("tenant_id", pa.string(), nullable=False)
    count = 0
    with pq.ParquetWriter(sink, SCHEMA.append(field), compression="zstd") as writer:
        for _, table in runs:
            tenants = pa.array([tenant] * table.num_rows, pa.string())
            writer.write_table(table.replace_schema_metadata(None).append_column(field, tenants))
            count += table.num_rows
    return count


def _write_rows(sink: IO[bytes], runs: Iterator[tuple[str, pa.Table]]) -> int:
    """A table for people: one line per event, the payload clipped to the terminal."""
    width = max(80, shutil.get_terminal_size((120, 24)).columns)
    header = f"{'TIMESTAMP (UTC)':<27} {'EVENT TYPE':<20} {'ENTITY':<20} {'V':>3} PAYLOAD"
    sink.write((header[:width] + "\n").encode())
    count = 0
    room = max(10, width - 74)
    for _, table in runs:
        names = ("timestamp", "event_type", "entity_id", "version", "payload")
        columns = [table.column(name).to_pylist() for name in names]
        for ts, etype, entity, version, payload in zip(*columns, strict=True):
            text = " ".join(payload.split())
            if len(text) > room:
                text = text[: room - 1] + "…"
            row = f"{ts:%Y-%m-%dT%H:%M:%S.%fZ} {_clip(etype, 20):<20} {_clip(entity, 20):<20} {version:>3} {text}"
            sink.write((row + "\n").encode())
        count += table.num_rows
    sink.write(f"({_count(count, 'event')})\n".encode())
    return count


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command("read", short_help="Read a tenant's events in a window.")
@_url_argument
@click.option("--tenant", "-t", required=True, help="Tenant to read.")
@_window_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "parquet", "table"]),
    help="Output format (default: parquet for -o *.parquet, else jsonl).",
)
@click.option("-o", "--output", "out", metavar="OUT", help="Write to this file (default: stdout).")
@_opt_option
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

    JSON Lines output uses the Event field names and can be archived again
    unchanged; Parquet output has the stored columns plus tenant_id.
    """
    tenant = _validate.validate_tenant(tenant)
    lo, hi = _window(start, end, day)
    to_stdout = out is None or out == "-"
    if fmt is None:
        fmt = "parquet" if out is not None and out.lower().endswith((".parquet", ".pq")) else "jsonl"
    if fmt == "parquet" and to_stdout and sys.stdout.isatty():
        raise click.UsageError("refusing to write Parquet to a terminal: give -o FILE or redirect stdout")
    archive = _open(url, opts, must_exist=True)
    with _Bar(f"reading {tenant}", enabled=not to_stdout and _interactive()) as bar, _output(out) as sink:
        runs = _runs(archive, tenant, lo, hi, bar)
        if fmt == "parquet":
            count = _write_parquet(sink, runs, tenant)
        elif fmt == "table":
            count = _write_rows(sink, runs)
        else:
            count = _write_jsonl(sink, runs, tenant)
    if not to_stdout:
        sys.stderr.write(f"{_count(count, 'event')} of {tenant} written to {out} ({fmt})\n")
    return EXIT_OK


# ---------------------------------------------------------------------------
# verify and probe


@cli.command("verify", short_help="Re-hash every object; exit 1 on any problem.")
@_url_argument
@click.option("--tenant", "-t", help="Only this tenant (default: every tenant).")
@_opt_option
@_json_option
def verify_cmd(*, url: str | None, tenant: str | None, opts: tuple[str, ...], as_json: bool) -> int:
    """Re-read and re-hash every object; exit 1 and print one line per problem found."""
    if tenant is not None:
        tenant = _validate.validate_tenant(tenant)
    archive = _open(url, opts, must_exist=True)
    with _Bar("verifying", enabled=_interactive()) as bar:
        report = _with_progress(archive, "verify", tenant, progress=bar)
    if as_json:
        _dump_json(
            {
                "archive": archive.description(),
                "tenant_id": tenant,
                "ok": report.ok,
                "objects": report.objects,
                "events": report.events,
                "problems": [{"key": p.key, "message": _one_line(p.message)} for p in report.problems],
            }
        )
    else:
        for problem in report.problems:
            click.echo(f"PROBLEM {problem.key}: {_one_line(problem.message)}")
        verdict = "OK" if report.ok else _count(len(report.problems), "problem")
        counts = f"{_count(report.objects, 'object')}, {_count(report.events, 'event')}"
        click.echo(f"{archive.description()}: {counts}: {verdict}")
    if report.objects == 0:
        sys.stderr.write(f"coldtier: warning: no objects found in {archive.description()}\n")
    return EXIT_OK if report.ok else EXIT_PROBLEMS


@cli.command("probe", short_help="Prove the store refuses to overwrite.")
@_url_argument
@_opt_option
@_json_option
def probe_cmd(*, url: str | None, opts: tuple[str, ...], as_json: bool) -> int:
    """Prove the store refuses to overwrite (writes and removes a canary object).

    Exit 1 when the store accepted a second create of the same object.
    """
    archive = _open(url, opts, must_exist=False)
    archive.probe()
    if as_json:
        _dump_json({"archive": archive.description(), "ok": True})
    else:
        click.echo(f"{archive.description()}: create-only writes are honoured")
    return EXIT_OK


# ---------------------------------------------------------------------------
# Entry point


def _fail(message: str, code: int) -> int:
    sys.stderr.write(f"coldtier: error: {_one_line(message)}\n")
    if os.environ.get("COLDTIER_DEBUG"):
        traceback.print_exc()
    return code


def run(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` and return its exit code."""
    try:
        result = cli.main(args=argv, prog_name="coldtier", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:
        sys.stderr.write(exc.ctx.get_help() + "\n" if exc.ctx else "")
        return EXIT_USAGE
    except click.UsageError as exc:
        hint = f" (see: coldtier {exc.ctx.info_name} --help)" if exc.ctx and exc.ctx.parent else ""
        return _fail(exc.format_message() + hint, EXIT_USAGE)
    except click.ClickException as exc:
        return _fail(exc.format_message(), exc.exit_code)
    except click.exceptions.Abort:
        return _fail("interrupted", 130)
    except (InvalidRequest, UnknownBackend, MissingDependency, InputError) as exc:
        return _fail(str(exc), EXIT_USAGE)
    except ColdTierError as exc:
        return _fail(str(exc), EXIT_PROBLEMS)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly, as a Unix filter does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PROBLEMS
    except OSError as exc:
        return _fail(f"{type(exc).__name__}: {exc}", EXIT_PROBLEMS)
    except Exception as exc:  # noqa: BLE001 - an operator gets one line, not a traceback
        return _fail(f"unexpected {type(exc).__name__}: {exc}", EXIT_PROBLEMS)
    return int(result or 0)


def main() -> NoReturn:
    """The ``coldtier`` console script."""
    sys.exit(run())


if __name__ == "__main__":
    main()
