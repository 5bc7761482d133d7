"""Interoperability: allsource-core's own archives, and query engines on coldtier's.

* Files named as allsource-core names them (``archive.<tenant>.<start>-<end>.parquet``,
  no digest, snappy, written by pyarrow with its default Arrow schema and no
  coldtier footer) are listed, read and verified; damaged ones are reported.
* The DuckDB and Polars recipes of ``docs/recipes.md`` are executed verbatim
  against a local archive, an fsspec memory filesystem and S3 (moto), and must
  give what ``Archive.read`` gives.
* Reading touches only what can overlap: months after the window are not
  listed, only overlapping objects are fetched, row groups are skipped by their
  statistics.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier import _format, _validate
from coldtier._format import _row_groups
from coldtier.jsonl import load_events
from coldtier.store import Entry, Location, ObjectStore, Stat
from coldtier.testing import make_events, window_of
from tests._moto import CREDENTIALS

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "data" / "sample-events.jsonl"
RECIPES: dict[str, str] = dict(
    re.findall(r"```python\n# recipe: ([\w-]+)\n(.*?)```", (ROOT / "docs" / "recipes.md").read_text(), re.S)
)
DAY = datetime(2024, 3, 2, tzinfo=UTC)
DAY_END = DAY + timedelta(days=1) - timedelta(microseconds=1)
MICROSECOND = timedelta(microseconds=1)


def run_recipe(name: str, **given: Any) -> dict[str, Any]:
    """Execute the recipe block ``name`` of docs/recipes.md with ``given`` names defined."""
    namespace = dict(given)
    exec(compile(RECIPES[name], f"docs/recipes.md#{name}", "exec"), namespace)
    return namespace


def allsource_bytes(events: list[coldtier.Event], *, schema: pa.Schema | None = None) -> bytes:
    """An object as allsource-core writes it: same columns, snappy, no coldtier footer."""
    start, end = window_of(events)
    table = _validate.from_events(events[0].tenant_id, _validate.window(start, end), events)
    if schema is not None:
        table = table.cast(schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")  # store_schema left at its default
    return sink.getvalue().to_pybytes()


def allsource_key(tenant: str, start: datetime, end: datetime) -> str:
    return f"{tenant}/{start:%Y-%m}/archive.{tenant}.{start:%Y-%m-%dT%H%M%SZ}-{end:%Y-%m-%dT%H%M%SZ}.parquet"


#: allsource-core's columns as arrow-rs declares them (everything nullable).
ALLSOURCE_SCHEMA = pa.schema([(f.name, f.type) for f in _format.SCHEMA])


def sample_batches() -> dict[tuple[str, datetime], list[coldtier.Event]]:
    """The shipped sample grouped by tenant and UTC day, as the quickstart archives it."""
    batches: dict[tuple[str, datetime], list[coldtier.Event]] = defaultdict(list)
    with SAMPLE.open("rb") as lines:
        for event in load_events(lines, tenant_id=""):
            day = event.timestamp.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            batches[(event.tenant_id, day)].append(event)
    return batches


def fill(archive: coldtier.Archive, put: Any) -> None:
    """The sample, a batch archived twice with different windows, and an allsource-core file."""
    batches = sample_batches()
    for (tenant, day), events in sorted(batches.items()):
        archive.archive(tenant, day, day + timedelta(days=1) - MICROSECOND, events)
    # acme's 2 March archived again inside a wider window: every event twice.
    again = batches[("acme", DAY)]
    archive.archive("acme", DAY - timedelta(hours=12), DAY_END, again)
    # globex's 3 March once more, written by allsource-core.
    events = batches[("globex", DAY + timedelta(days=1))]
    start, end = window_of(events)
    put(allsource_key("globex", start, end), allsource_bytes(events, schema=ALLSOURCE_SCHEMA))


def expected_day(archive: coldtier.Archive, tenant: str = "acme") -> pa.Table:
    return archive.read(tenant, DAY, DAY_END).drop_columns(["tenant_id"])


def same_rows(got: Any, want: pa.Table) -> None:
    """``got`` (Arrow table or Polars frame) holds ``want``'s rows, in order."""
    table = got if isinstance(got, pa.Table) else got.to_arrow()
    assert table.num_rows == want.num_rows > 0
    for name in want.column_names:
        assert table.column(name).to_pylist() == want.column(name).to_pylist(), name


def expected_per_day(archive: coldtier.Archive) -> list[tuple[str, date, int]]:
    rows = []
    for tenant in archive.tenants():
        days = Counter(ts.date() for ts in archive.read(tenant).column("timestamp").to_pylist())
        rows += [(tenant, day, n) for day, n in sorted(days.items())]
    return rows


# ---------------------------------------------------------------------------
# A local archive, as `make demo` leaves it (plus duplicates and a foreign file)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding ``demo-archive``."""
    base = tmp_path_factory.mktemp("demo")
    root = base / "demo-archive"
    archive = coldtier.open_archive(str(root))

    def put(key: str, data: bytes) -> None:
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(data)

    fill(archive, put)
    return base


@pytest.fixture
def in_demo(demo: Path, monkeypatch: pytest.MonkeyPatch) -> coldtier.Archive:
    monkeypatch.chdir(demo)
    return coldtier.open_archive("demo-archive")


def test_every_recipe_is_tested() -> None:
    assert set(RECIPES) == {
        "duckdb-day",
        "duckdb-tenants",
        "duckdb-payload",
        "duckdb-fsspec",
        "polars-day",
        "polars-tenants",
        "polars-object-store",
        "dask-cluster",  # tests/test_dask.py
    }


def test_duckdb_day(in_demo: coldtier.Archive) -> None:
    same_rows(run_recipe("duckdb-day")["day"], expected_day(in_demo))


def test_duckdb_tenants_from_the_path(in_demo: coldtier.Archive) -> None:
    per_day = run_recipe("duckdb-tenants")["per_day"]
    assert per_day == expected_per_day(in_demo)
    assert {row[0] for row in per_day} == {"acme", "globex"}


def test_duckdb_payload_fields(in_demo: coldtier.Archive) -> None:
    sums: dict[str, float] = defaultdict(float)
    for event in in_demo.events("acme", DAY, DAY_END):
        sums[event.event_type] += event.payload["amount"]
    assert run_recipe("duckdb-payload")["amounts"] == [(k, round(v, 2)) for k, v in sorted(sums.items())]


def test_polars_day(in_demo: coldtier.Archive) -> None:
    same_rows(run_recipe("polars-day")["day"], expected_day(in_demo))


def test_polars_tenants_from_the_path(in_demo: coldtier.Archive) -> None:
    per_day = run_recipe("polars-tenants")["per_day"]
    assert [
        tuple(row) for row in per_day.select("tenant_id", "day", "events").iter_rows()
    ] == expected_per_day(in_demo)


# ---------------------------------------------------------------------------
# The same recipes on object stores


def test_duckdb_through_fsspec_memory() -> None:
    name = f"interop-{uuid.uuid4().hex[:8]}"
    archive = coldtier.open_archive(f"memory://{name}")
    fs = MemoryFileSystem(skip_instance_cache=True)
    fill(archive, lambda key, data: fs.pipe_file(f"/{name}/{key}", data))
    day = run_recipe("duckdb-fsspec", fs=fs, root=f"memory://{name}")["day"]
    same_rows(day, expected_day(archive))


@pytest.fixture
def s3_archive(moto_url: str, fresh_bucket: str, s3_client: Any) -> Iterator[tuple[coldtier.Archive, str]]:
    url = f"s3://{fresh_bucket}/cold?endpoint_url={moto_url}&region=us-east-1"
    archive = coldtier.open_archive(url, **CREDENTIALS)
    fill(archive, lambda key, data: s3_client.put_object(Bucket=fresh_bucket, Key=f"cold/{key}", Body=data))
    yield archive, f"s3://{fresh_bucket}/cold"


def test_duckdb_through_s3fs(s3_archive: tuple[coldtier.Archive, str], moto_url: str) -> None:
    archive, root = s3_archive
    fs = s3fs.S3FileSystem(
        key=CREDENTIALS["key"],
        secret=CREDENTIALS["secret"],
        endpoint_url=moto_url,
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    same_rows(run_recipe("duckdb-fsspec", fs=fs, root=root)["day"], expected_day(archive))


def test_polars_object_store(s3_archive: tuple[coldtier.Archive, str], moto_url: str) -> None:
    archive, root = s3_archive
    storage_options = {
        "aws_endpoint_url": moto_url,
        "aws_region": "us-east-1",
        "aws_access_key_id": CREDENTIALS["key"],
        "aws_secret_access_key": CREDENTIALS["secret"],
        "aws_allow_http": "true",
    }
    day = run_recipe("polars-object-store", root=root, storage_options=storage_options)["day"]
    same_rows(day, expected_day(archive))


# ---------------------------------------------------------------------------
# allsource-core's own archives


@pytest.fixture
def allsource_dir(tmp_path: Path) -> tuple[Path, list[coldtier.Event]]:
    """A local archive holding only files written the way allsource-core writes them."""
    events = make_events("acme", 3000, step=timedelta(minutes=1))  # about two days
    root = tmp_path / "allsource"
    for chunk in (events[:1000], events[1000:2200], events[2200:]):
        start, end = window_of(chunk)
        path = root / allsource_key("acme", start, end)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(allsource_bytes(chunk, schema=ALLSOURCE_SCHEMA))
    return root, events


def test_allsource_files_are_listed_read_and_verified(
    allsource_dir: tuple[Path, list[coldtier.Event]],
) -> None:
    root, events = allsource_dir
    archive = coldtier.open_archive(str(root))
    objs = archive.objects("acme")
    assert len(objs) == 3
    assert all(o.digest is None for o in objs)
    table = archive.read("acme")
    assert table.column("event_id").to_pylist() == [str(e.id) for e in events]
    assert table.schema.remove_metadata() == _format.SCHEMA.append(
        pa.field("tenant_id", pa.string(), nullable=False)
    )
    assert list(archive.events("acme", events[500].timestamp, events[1500].timestamp)) == events[500:1501]
    report = archive.verify()
    assert report.ok, report.problems
    assert (report.objects, report.events) == (3, len(events))


def test_allsource_and_coldtier_objects_side_by_side(
    allsource_dir: tuple[Path, list[coldtier.Event]],
) -> None:
    """The same events archived by coldtier next to allsource-core's files: each once."""
    root, events = allsource_dir
    archive = coldtier.open_archive(str(root))
    start, end = window_of(events[900:1300])
    archive.archive("acme", start, end, events[900:1300])
    assert sum(o.digest is None for o in archive.objects("acme")) == 3
    assert archive.read("acme").column("event_id").to_pylist() == [str(e.id) for e in events]
    assert archive.verify().ok


def test_damaged_allsource_files_are_reported(allsource_dir: tuple[Path, list[coldtier.Event]]) -> None:
    root, events = allsource_dir
    archive = coldtier.open_archive(str(root))
    first, second, third = archive.objects("acme")
    truncated = root / first.key
    truncated.write_bytes(truncated.read_bytes()[:-100])
    # A readable file whose columns are not allsource-core's.
    wrong = pa.table({"event_id": [str(events[1500].id)], "timestamp": pa.array([events[1500].timestamp])})
    pq.write_table(wrong, root / second.key, compression="snappy")
    report = archive.verify()
    assert not report.ok
    problems = {p.key: p.message for p in report.problems}
    assert set(problems) == {first.key, second.key}
    assert "not readable Parquet" in problems[first.key]
    assert "schema" in problems[second.key]
    assert report.events == len(events) - 2200  # the intact third file
    with pytest.raises(coldtier.IntegrityError, match=re.escape(first.key)):
        archive.read("acme")
    # The intact file alone still reads.
    assert archive.read("acme", start=third.start).num_rows == len(events) - 2200


# ---------------------------------------------------------------------------
# Reading touches only what can overlap


class CountingFS(MemoryFileSystem):
    """fsspec's memory filesystem, recording the listings and reads it serves."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, str]] = []

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> Any:
        self.calls.append(("ls", self._strip_protocol(path)))
        return super().ls(path, detail=detail, **kwargs)

    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> Any:
        self.calls.append(("cat", self._strip_protocol(path)))
        return super().cat_file(path, start=start, end=end, **kwargs)


class CountingStore(ObjectStore):
    """A minimal third-party backend on :class:`CountingFS`, written against ``coldtier.store`` only."""

    scheme = "counting"

    def __init__(self, name: str) -> None:
        self.fs = CountingFS(skip_instance_cache=True)
        self.root = f"/{name}"

    @classmethod
    def from_location(cls, location: Location) -> CountingStore:
        return cls(location.netloc + location.path)

    def description(self) -> str:
        return f"counting:/{self.root}"

    def put(self, key: str, data: bytes, *, sha256: str, metadata: Any, lock: bool = True) -> bool:
        path = f"{self.root}/{key}"
        if self.fs.exists(path):
            return False
        self.fs.pipe_file(path, data)
        return True

    def stat(self, key: str) -> Stat:
        return Stat(size=int(self.fs.info(f"{self.root}/{key}")["size"]))

    def get(self, key: str) -> bytes:
        data: bytes = self.fs.cat_file(f"{self.root}/{key}")
        return data

    def list(self, prefix: str) -> list[Entry]:
        try:
            found = self.fs.ls(f"{self.root}/{prefix}".rstrip("/"), detail=True)
        except FileNotFoundError:
            return []
        return [
            Entry(e["name"][len(self.root) + 1 :], int(e.get("size") or 0), e["type"] == "directory")
            for e in found
        ]

    def delete(self, key: str) -> None:
        self.fs.rm_file(f"{self.root}/{key}")


def test_a_day_read_lists_only_earlier_months_and_fetches_one_object() -> None:
    name = f"scale-{uuid.uuid4().hex[:8]}"
    coldtier.register_backend("counting", CountingStore, clobber=True)
    archive = coldtier.open_archive(f"counting://{name}?workers=1")
    store = archive.store  # type: ignore[attr-defined]
    first = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(182):  # January to June, one object a day
        day = first + timedelta(days=n)
        archive.archive(
            "acme", day, day + timedelta(days=1) - MICROSECOND, make_events("acme", 5, start=day, seed=n)
        )
    # A batch crossing from January into February lives under January.
    crossing = make_events(
        "acme", 4, start=datetime(2024, 1, 31, 23, tzinfo=UTC), step=timedelta(hours=1), seed=99
    )
    archive.archive("acme", *window_of(crossing), crossing)

    store.fs.calls.clear()
    day = datetime(2024, 2, 1, tzinfo=UTC)
    table = archive.read("acme", day, day + timedelta(days=1) - MICROSECOND)
    assert table.num_rows == 5 + 3  # the day's batch and three hours of the crossing one
    listed = sorted(path for op, path in store.fs.calls if op == "ls")
    assert listed == [f"/{name}/acme", f"/{name}/acme/2024-01", f"/{name}/acme/2024-02"]
    fetched = [path.rsplit("/", 1)[-1] for op, path in store.fs.calls if op == "cat"]
    assert sorted(fetched) == sorted(o.key.rsplit("/", 1)[-1] for o in archive.objects("acme", day, day))
    assert len(fetched) == 2


def test_row_groups_are_skipped_by_statistics() -> None:
    events = make_events("acme", 1000, step=timedelta(seconds=1))
    start, end = window_of(events)
    table = _validate.from_events("acme", _validate.window(start, end), events)
    ours = _format.encode(
        table, _format.footer("acme", _validate.window(start, end), 1000, None, None, digest=""), row_group_events=100
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table.cast(ALLSOURCE_SCHEMA), sink, compression="snappy", row_group_size=100)
    for data in (ours, sink.getvalue().to_pybytes()):
        pf = pq.ParquetFile(pa.BufferReader(data))
        assert pf.metadata.num_row_groups == 10
        assert _row_groups(pf, events[350].timestamp, events[360].timestamp) == [3]
        assert _row_groups(pf, events[399].timestamp, events[400].timestamp) == [3, 4]
        assert _row_groups(pf, None, events[50].timestamp) == [0]
        assert _row_groups(pf, end + timedelta(seconds=1), None) == []
        assert _row_groups(pf, None, None) == list(range(10))


def test_events_stream_in_read_order_across_overlapping_objects(tmp_path: Path) -> None:
    """Overlapping batches are merged: events() gives read()'s rows, in read()'s order."""
    archive = coldtier.open_archive(str(tmp_path / "a"))
    step = timedelta(minutes=7)
    a = make_events("acme", 400, start=datetime(2024, 3, 1, tzinfo=UTC), step=step, seed=1)
    b = make_events("acme", 400, start=datetime(2024, 3, 1, 10, tzinfo=UTC), step=step, seed=2)
    c = make_events("acme", 50, start=datetime(2024, 3, 10, tzinfo=UTC), step=step, seed=3)
    # The same id again, at another time, in a later batch: kept once, the earliest.
    reused = coldtier.Event(
        id=a[5].id,
        event_type="x",
        entity_id="y",
        tenant_id="acme",
        payload={},
        timestamp=datetime(2024, 3, 10, 12, tzinfo=UTC),
    )
    for batch in (a, b, c, [reused], a[100:200]):
        archive.archive("acme", *window_of(batch), batch)
    table = archive.read("acme")
    streamed = list(archive.events("acme"))
    assert [str(e.id) for e in streamed] == table.column("event_id").to_pylist()
    assert len(streamed) == 850
    assert [e.timestamp for e in streamed] == sorted(e.timestamp for e in streamed)
    lo, hi = datetime(2024, 3, 1, 12, tzinfo=UTC), datetime(2024, 3, 10, 1, tzinfo=UTC)
    window = archive.read("acme", lo, hi).column("event_id").to_pylist()
    assert [str(e.id) for e in archive.events("acme", lo, hi)] == window


def test_events_ids_are_the_uuids_uuid_would_make(tmp_path: Path) -> None:
    """events() builds ids without uuid.UUID's parsing only for canonical text; the result is the same object."""
    import pickle

    from coldtier._engine.read import _canonical_uuid

    for text in ("00000000-0000-0000-0000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff", str(uuid.uuid4())):
        fast, slow = _canonical_uuid(text), uuid.UUID(text)
        assert (fast, hash(fast), str(fast), repr(fast), fast.is_safe) == (
            slow, hash(slow), str(slow), repr(slow), slow.is_safe
        )
        assert pickle.loads(pickle.dumps(fast)) == slow
        assert type(fast) is uuid.UUID
    # A foreign file's ids in upper case and braces are not canonical: uuid.UUID parses them.
    events = make_events("acme", 20, start=datetime(2024, 3, 1, tzinfo=UTC), step=timedelta(minutes=1))
    path = tmp_path / allsource_key("acme", *window_of(events))
    path.parent.mkdir(parents=True)
    path.write_bytes(allsource_bytes(events))
    table = pq.read_table(path)
    odd = pa.array([(f"{{{e.id}}}" if i % 2 else str(e.id).upper()) for i, e in enumerate(events)], pa.string())
    pq.write_table(table.set_column(0, table.schema.field(0), odd), path)
    got = list(coldtier.open_archive(str(tmp_path)).events("acme"))
    assert [e.id for e in got] == [e.id for e in events]
    assert got == events
    # A later file reusing a braced id (kept as text) and an upper-case one (hashed): each id once, as read() has it.
    later = make_events("acme", 4, start=datetime(2024, 3, 2, tzinfo=UTC), step=timedelta(minutes=1))
    path = tmp_path / allsource_key("acme", *window_of(later))
    path.write_bytes(allsource_bytes(later))
    table = pq.read_table(path)
    reused = pa.array([odd[1].as_py(), odd[2].as_py(), str(later[2].id), str(later[3].id)], pa.string())
    pq.write_table(table.set_column(0, table.schema.field(0), reused), path)
    archive = coldtier.open_archive(str(tmp_path))
    streamed = list(archive.events("acme"))
    assert len(streamed) == 22
    kept = archive.read("acme").column("event_id").to_pylist()
    assert [str(e.id) for e in streamed] == [str(uuid.UUID(i)) for i in kept]


def test_a_foreign_file_holding_rows_outside_its_name_is_still_filtered(tmp_path: Path) -> None:
    """read() filters by the rows' own timestamps, not by the window a name claims."""
    events = make_events("acme", 72, start=datetime(2024, 3, 1, tzinfo=UTC), step=timedelta(hours=1))
    named_start, named_end = datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 2, 23, 59, 59, tzinfo=UTC)
    path = tmp_path / allsource_key("acme", named_start, named_end)
    path.parent.mkdir(parents=True)
    path.write_bytes(allsource_bytes(events))  # three days of rows under a one-day name
    archive = coldtier.open_archive(str(tmp_path))
    lo, hi = datetime(2024, 3, 2, tzinfo=UTC), datetime(2024, 3, 3, tzinfo=UTC)  # holds the named window
    got = archive.read("acme", lo, hi).column("timestamp").to_pylist()
    assert got == [e.timestamp.replace(tzinfo=None) for e in events if lo <= e.timestamp <= hi]
    assert len(got) == 25
    assert [e.timestamp for e in archive.events("acme", lo, hi)] == [
        e.timestamp for e in events if lo <= e.timestamp <= hi
    ]
