"""Every mainstream Parquet reader, reading coldtier's objects column by column.

Shared by ``tests/test_readers.py`` (which asserts) and
``benchmarks/reader_matrix.py`` (which prints the reader x column matrix).

Each reader turns one Parquet file into :class:`Read`: for every stored column,
the type the reader sees and the values as plain Python (``str``/``None`` for
text, ``int`` microseconds since the epoch for ``timestamp``, ``int`` for
``version``), so values compare exactly, whatever the reader's own types are.
"""

from __future__ import annotations

import importlib
import shutil
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import coldtier
from coldtier import SCHEMA
from coldtier.testing import make_events
from coldtier.testing._data import make_table

COLUMNS: tuple[str, ...] = tuple(SCHEMA.names)
CODECS: tuple[str, ...] = ("zstd", "snappy", "gzip", "lz4", "brotli", "none")
START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1) - timedelta(microseconds=1)
#: Small enough to be quick, large enough for several objects of several row groups each.
ARROW_EVENTS = 5_000
OBJECT_EVENTS = 2_000
ROW_GROUP_EVENTS = 700
VERSIONS = (0, 1, 2**31, 2**53 + 1, 2**63, 2**64 - 1)  # 2**53 + 1: not a float64


@dataclass
class Read:
    """One reader's view of one file: per column, its type there and its values."""

    types: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# Normalising


def _plain(table: pa.Table) -> dict[str, list[Any]]:
    """Arrow columns as Python values: timestamps as integer microseconds."""
    out = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            col = pc.cast(col, pa.timestamp("us", tz=col.type.tz)).cast(pa.int64())
        out[name] = col.to_pylist()
    return out


def _pandas_values(series: Any) -> list[Any]:
    """A pandas column as Python values (``None`` for missing), timestamps as integer microseconds."""
    if str(series.dtype).startswith("datetime64"):
        return [int(x) for x in series.astype("datetime64[us]").astype("int64")]
    values = series.astype(object).where(series.notna(), None).tolist()
    return [v.item() if hasattr(v, "item") else v for v in values]


# ---------------------------------------------------------------------------
# The readers: path, columns -> (types, values).  Each raises on what it cannot read.

Reader = Callable[[str, list[str]], tuple[dict[str, str], dict[str, list[Any]]]]


def read_pyarrow(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    table = pq.read_table(path, columns=columns)
    return {f.name: str(f.type) for f in table.schema}, _plain(table)


def read_duckdb(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    import duckdb

    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        quoted = ", ".join(f'"{c}"' for c in columns)
        rel = con.sql(f"SELECT {quoted} FROM read_parquet(?)", params=[path])
        types = {name: str(kind) for name, kind in zip(rel.columns, rel.types, strict=True)}
        fetch = getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table  # renamed in DuckDB 1.4
        return types, _plain(fetch())
    finally:
        con.close()


def read_polars(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    import polars as pl

    frame = pl.read_parquet(path, columns=columns)
    types = {name: str(kind) for name, kind in frame.schema.items()}
    values = {}
    for name in frame.columns:
        s = frame.get_column(name)
        if isinstance(s.dtype, pl.Datetime):
            s = s.dt.cast_time_unit("us").cast(pl.Int64)
        values[name] = s.to_list()
    return types, values


def datafusion_context() -> Any:
    """A DataFusion session reading strings as ``Utf8`` (not ``Utf8View``), as arrow-rs does."""
    import datafusion

    config = datafusion.SessionConfig().set("datafusion.execution.parquet.schema_force_view_types", "false")
    return datafusion.SessionContext(config)


def read_datafusion(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    from datafusion import col

    frame = datafusion_context().read_parquet(path).select(*(col(c) for c in columns))
    table = frame.to_arrow_table()
    return {f.name: str(f.type) for f in table.schema}, _plain(table)


def read_chdb(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    import chdb

    source = f"file('{path}', Parquet)"
    described = chdb.query(f"DESCRIBE {source}", "ArrowTable")
    kinds = dict(zip(described.column("name").to_pylist(), described.column("type").to_pylist(), strict=True))
    exprs = [f"toUnixTimestamp64Micro(`{c}`) AS `{c}`" if c == "timestamp" else f"`{c}`" for c in columns]
    # ClickHouse reads row groups in parallel and hands them out as they finish: ask for file order
    order = "SETTINGS input_format_parquet_preserve_order = 1, max_threads = 1"
    table = chdb.query(f"SELECT {', '.join(exprs)} FROM {source} {order}", "ArrowTable")
    values = _plain(table)
    for name in columns:  # ClickHouse hands String out as binary unless told otherwise
        values[name] = [v.decode() if isinstance(v, bytes) else v for v in values[name]]
    return {c: kinds[c] for c in columns}, values


def read_fastparquet(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    import fastparquet

    with open(path, "rb") as handle:  # given a path, fastparquet leaves the file open
        frame = fastparquet.ParquetFile(handle).to_pandas(columns=columns)
    return {c: str(frame[c].dtype) for c in columns}, {c: _pandas_values(frame[c]) for c in columns}


def read_pandas_fastparquet(path: str, columns: list[str]) -> tuple[dict[str, str], dict[str, list[Any]]]:
    import pandas as pd

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The 'fastparquet' engine is deprecated", category=Warning)
        frame = pd.read_parquet(path, engine="fastparquet", columns=columns)
    return {c: str(frame[c].dtype) for c in columns}, {c: _pandas_values(frame[c]) for c in columns}


#: name -> (module that must import, reader)
READERS: dict[str, tuple[str, Reader]] = {
    "pyarrow": ("pyarrow", read_pyarrow),
    "duckdb": ("duckdb", read_duckdb),
    "polars": ("polars", read_polars),
    "datafusion": ("datafusion", read_datafusion),
    "chdb": ("chdb", read_chdb),
    "fastparquet": ("fastparquet", read_fastparquet),
    "pandas-fastparquet": ("fastparquet", read_pandas_fastparquet),
}


def version_of(reader: str) -> str:
    """The reader's package version (raises ``ImportError`` when it is not installed)."""
    module = importlib.import_module(READERS[reader][0])
    version = str(getattr(module, "__version__", "?"))
    if reader == "pandas-fastparquet":
        return f"{importlib.import_module('pandas').__version__} + fastparquet {version}"
    return version


def read_file(reader: str, path: str) -> Read:
    """Every column of ``path`` through ``reader``; a failing column is recorded, not raised.

    The whole file is read at once; only when that fails is each column tried
    alone, so an error is pinned to the column that causes it.
    """
    fn = READERS[reader][1]
    out = Read()
    try:
        out.types, out.values = fn(path, list(COLUMNS))
        return out
    except Exception as exc:
        whole = f"{type(exc).__name__}: {exc}"
    for name in COLUMNS:
        try:
            types, values = fn(path, [name])
        except Exception as exc:
            out.errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:160]
        else:
            out.types.update(types)
            out.values.update(values)
    if not out.errors:  # each column alone works, together they fail
        out.errors = dict.fromkeys(COLUMNS, whole.splitlines()[0][:160])
    return out


# ---------------------------------------------------------------------------
# The archive under test


def arrow_batch(count: int = ARROW_EVENTS) -> pa.Table:
    """``make_table`` with the awkward values: extreme versions, unicode, null and set metadata."""
    table = make_table(count, step_us=17_000_000)  # 17 s apart: 5,000 events fill most of the day
    versions = table.column("version").to_pylist()
    payloads = table.column("payload").to_pylist()
    entities = table.column("entity_id").to_pylist()
    metadata = table.column("metadata").to_pylist()
    for i, v in enumerate(VERSIONS):
        versions[i * 997 % count] = v
    for i in range(0, count, 11):
        payloads[i] = f'{{"n":{i},"note":"café ☕ 𝄞 Ωmega 日本語","esc":"\\u0000\\"\\n"}}'
        entities[i] = f"entité-{i % 7}-ß"
    for i in range(0, count, 13):
        metadata[i] = '{"source":"ünïcode ✓","trace":' + str(i) + "}"
    replaced = {
        "entity_id": pa.array(entities, pa.string()),
        "payload": pa.array(payloads, pa.string()),
        "metadata": pa.array(metadata, pa.string()),
        "version": pa.array(versions, pa.uint64()),
    }
    for name, column in replaced.items():
        table = table.set_column(table.column_names.index(name), name, column)
    return table


@dataclass
class Sample:
    """A local archive of one codec: its objects' paths and what each tenant holds."""

    codec: str
    root: Path
    archive: coldtier.Archive
    inputs: dict[str, pa.Table]
    paths: dict[str, list[str]]  # tenant -> object files


def build(root: Path, codec: str) -> Sample:
    """Archive the sample under ``root`` with ``compression=codec``.

    * ``acme``: :func:`arrow_batch` through the Arrow path, split into
      several objects (``object_events``) of several row groups each;
    * ``globex``: ``make_events`` (dict payloads, ``None`` metadata every
      third event, unicode) through the ``Event`` path, one object.
    """
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    archive = coldtier.open_archive(
        str(root), compression=codec, object_events=OBJECT_EVENTS, row_group_events=ROW_GROUP_EVENTS
    )
    acme = arrow_batch()
    archive.archive("acme", START, END, acme)
    events = make_events("globex", 500, start=START, step=timedelta(seconds=97), seed=3)
    archive.archive("globex", START, END, events)
    globex = archive.read("globex").drop_columns(["tenant_id"])
    paths = {t: [str(root / o.key) for o in archive.objects(t)] for t in archive.tenants()}
    return Sample(codec, root, archive, {"acme": acme, "globex": globex}, paths)


def expected(sample: Sample, path: str) -> dict[str, list[Any]]:
    """What ``Archive.read_object`` gives for the object at ``path``, as plain values."""
    tenant = next(t for t, ps in sample.paths.items() if path in ps)
    obj = next(o for o in sample.archive.objects(tenant) if str(sample.root / o.key) == path)
    return _plain(sample.archive.read_object(obj).select(list(COLUMNS)))


def sorted_rows(columns: dict[str, list[Any]]) -> list[tuple[Any, ...]]:
    """Rows in ``(timestamp, event_id)`` order, as tuples of the stored columns."""
    rows = list(zip(*(columns[c] for c in COLUMNS), strict=True))
    ts, eid = COLUMNS.index("timestamp"), COLUMNS.index("event_id")
    return sorted(rows, key=lambda r: (r[ts], r[eid]))


def concat(reads: Iterable[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for r in reads:
        for c in COLUMNS:
            out[c] += r[c]
    return out
