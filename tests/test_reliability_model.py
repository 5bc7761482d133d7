"""Property-based tests: random archive / retry / race / bad-input / read schedules against an oracle.

The oracle is a plain set: the events archived so far.  Hypothesis draws a
schedule of steps over a pool of events that straddles a month boundary:

* ``archive`` a random subset, in a random input form (``Event`` list, Arrow
  table or stream), a random window around it, a random split size;
* ``retry`` an earlier call, in another order and input form: same keys, not created;
* ``race`` several archive objects on threads writing one batch: one set of keys;
* ``bad`` a batch with one event a microsecond outside its window: refused, nothing changes;
* ``read`` a random window: exactly the oracle's events in it, each once, in order.

At the end every stored object hashes to its name, the objects are exactly
the receipts' keys, and ``verify`` is clean.  Runs on every backend present.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import coldtier
from coldtier import InvalidRequest
from coldtier.testing import FsspecBackdoor, make_events
from tests._moto import CREDENTIALS, BotoBackdoor
from tests._reliability import check_store, tally

AREA = "model: random schedules vs an oracle"
US = timedelta(microseconds=1)
POOL = make_events("acme", 40, start=datetime(2024, 3, 31, 23, 58, 30, tzinfo=UTC), step=timedelta(seconds=5))
BY_ID = {str(e.id): e for e in POOL}


@dataclass
class Location:
    backend: str
    make: Callable[..., coldtier.Archive]
    backdoor: Any


@pytest.fixture(params=["memory", "local", "s3", "gcs"])
def locations(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], Location]:
    """A factory of fresh, empty locations (one per hypothesis example)."""
    backend = request.param
    if backend == "memory":

        def make() -> Location:
            name = f"model-{uuid.uuid4().hex}"
            return Location(
                backend,
                lambda **o: coldtier.open_archive(f"memory://{name}", **o),
                FsspecBackdoor(MemoryFileSystem(skip_instance_cache=True), f"/{name}"),
            )

    elif backend == "local":
        base = tmp_path_factory.mktemp("model")

        def make() -> Location:
            root = base / uuid.uuid4().hex
            root.mkdir()  # an archive's root exists, as a bucket does
            return Location(
                backend,
                lambda **o: coldtier.open_archive(str(root), **o),
                FsspecBackdoor(LocalFileSystem(), root.as_posix()),
            )

    elif backend == "s3":
        moto_url = request.getfixturevalue("moto_url")
        bucket = request.getfixturevalue("fresh_bucket")
        client = request.getfixturevalue("s3_client")

        def make() -> Location:
            prefix = uuid.uuid4().hex[:12]
            url = f"s3://{bucket}/{prefix}?endpoint_url={moto_url}&region=us-east-1"
            return Location(
                backend,
                lambda **o: coldtier.open_archive(url, **CREDENTIALS, **o),
                BotoBackdoor(client, bucket, prefix),
            )

    else:
        from tests._fakegcs import HTTPBackdoor

        server = request.getfixturevalue("fake_gcs")
        bucket = request.getfixturevalue("gcs_bucket")

        def make() -> Location:
            prefix = uuid.uuid4().hex[:12]
            return Location(
                backend,
                lambda **o: coldtier.open_archive(f"gs://{bucket}/{prefix}", endpoint_url=server.url, **o),
                HTTPBackdoor(server, bucket, prefix),
            )

    return make


def _as_input(events: list[Any], form: str) -> Any:
    if form == "events":
        return events
    table = pa.table(
        {
            "event_id": pa.array([str(e.id) for e in events], pa.string()),
            "event_type": pa.array([e.event_type for e in events], pa.string()),
            "entity_id": pa.array([e.entity_id for e in events], pa.string()),
            "payload": pa.array([orjson.dumps(e.payload).decode() for e in events], pa.string()),
            "timestamp": pa.array([e.timestamp for e in events], pa.timestamp("us", tz="UTC")),
            "metadata": pa.array(
                [None if e.metadata is None else orjson.dumps(e.metadata).decode() for e in events],
                pa.string(),
            ),
            "version": pa.array([e.version for e in events], pa.uint64()),
        }
    )
    if form == "table":
        return table
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=7))


subsets = st.lists(st.integers(0, len(POOL) - 1), min_size=0, max_size=25, unique=True)
forms = st.sampled_from(["events", "table", "stream"])
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("archive"),
            subsets,
            forms,
            st.integers(0, 90),  # seconds the window opens before the first event
            st.integers(0, 90),  # ... and closes after the last
            st.sampled_from([3, 8, 1_000]),  # object_events: split or not
        ),
        st.tuples(st.just("retry"), st.integers(0, 10), forms, st.randoms(use_true_random=False)),
        st.tuples(st.just("race"), subsets.filter(bool), st.integers(2, 4)),
        st.tuples(st.just("bad"), subsets.filter(lambda s: len(s) >= 2), st.booleans()),
        st.tuples(st.just("read"), st.integers(0, len(POOL) - 1), st.integers(0, len(POOL) - 1)),
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(schedule=steps)
def test_random_schedules_match_the_oracle(locations: Callable[[], Location], schedule: list[Any]) -> None:
    loc = locations()
    oracle: set[str] = set()
    keys: set[str] = set()
    calls: list[tuple[list[Any], datetime, datetime, int, str, tuple[str, ...]]] = []

    def archive() -> coldtier.Archive:
        return loc.make()

    for step in schedule:
        kind = step[0]
        if kind == "archive":
            _, chosen, form, before, after, per = step
            events = [POOL[i] for i in chosen]
            if events:
                start = min(e.timestamp for e in events) - timedelta(seconds=before)
                end = max(e.timestamp for e in events) + timedelta(seconds=after)
            else:
                start = end = POOL[0].timestamp
            receipt = loc.make(object_events=per).archive("acme", start, end, _as_input(events, form))
            assert receipt.events == len(events)
            oracle |= {str(e.id) for e in events}
            keys |= set(receipt.keys)
            if events:
                calls.append((events, start, end, per, form, receipt.keys))
        elif kind == "retry" and calls:
            _, index, form, rng = step
            events, start, end, per, first_form, expected = calls[index % len(calls)]
            shuffled = list(events)
            if form != "stream" or len(events) <= per:
                # A stream is cut into parts in its own row order (it cannot be
                # sorted as a whole), so a split stream is replayed in order.
                rng.shuffle(shuffled)
            receipt = loc.make(object_events=per).archive("acme", start, end, _as_input(shuffled, form))
            # A split stream's parts carry no part count (unknown until its end),
            # so only a split batch retried as a stream (or the reverse) gives other bytes.
            if len(events) <= per or (form == "stream") == (first_form == "stream"):
                assert receipt.keys == expected and not receipt.created, (
                    f"retry of {len(events)} events (split at {per}) first as {first_form}, now as {form}: "
                    f"{receipt} vs {expected}"
                )
            else:
                assert receipt.events == len(events)
                keys |= set(receipt.keys)
        elif kind == "race":
            _, chosen, n = step
            events = [POOL[i] for i in chosen]
            start, end = min(e.timestamp for e in events), max(e.timestamp for e in events)
            results: list[Any] = [None] * n
            barrier = threading.Barrier(n)
            racers = [loc.make() for _ in range(n)]

            def run(i: int, job: tuple[Any, ...] = (racers, results, barrier, start, end, events)) -> None:
                racers, results, barrier, start, end, events = job
                barrier.wait()
                try:
                    results[i] = racers[i].archive("acme", start, end, events)
                except BaseException as exc:
                    results[i] = exc

            threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert not [r for r in results if isinstance(r, BaseException)], results
            assert len({r.keys for r in results}) == 1
            oracle |= {str(e.id) for e in events}
            keys |= set(results[0].keys)
        elif kind == "bad":
            _, chosen, early = step
            events = [POOL[i] for i in chosen]
            start, end = min(e.timestamp for e in events), max(e.timestamp for e in events)
            victim = events[0] if early else events[-1]
            moved = replace(victim, timestamp=start - US if early else end + US)
            events = [moved if e is victim else e for e in events]
            before = loc.backdoor.list_keys()
            with pytest.raises(InvalidRequest):
                archive().archive("acme", start, end, events)
            assert loc.backdoor.list_keys() == before
            tally(AREA, loc.backend, errors_raised=1)
        elif kind == "read":
            _, a, b = step
            lo, hi = sorted((POOL[a].timestamp, POOL[b].timestamp))
            got = archive().read("acme", lo, hi)
            ids = got.column("event_id").to_pylist()
            want = sorted(
                (i for i in oracle if lo <= BY_ID[i].timestamp <= hi), key=lambda i: (BY_ID[i].timestamp, i)
            )
            assert ids == want
    final = archive()
    everything = final.read("acme").column("event_id").to_pylist()
    streamed = {str(e.id): e for e in final.events("acme")}
    store = check_store(loc.backdoor)
    lost = len(oracle - set(everything))
    tally(
        AREA,
        loc.backend,
        trials=1,
        inputs=len(schedule),
        events_checked=len(everything),
        events_lost=lost,
        partial_objects=len(store.partial),
    )
    assert lost == 0 and sorted(everything) == sorted(oracle) and len(everything) == len(set(everything))
    assert streamed == {i: BY_ID[i] for i in oracle}  # content, not only ids, survives
    assert store.partial == [] and store.other == []
    assert set(store.final) == keys
    assert final.verify().ok


def test_oracle_pool_straddles_a_month() -> None:
    """The schedules above cross a month boundary, where listing by month can go wrong."""
    assert {f"{e.timestamp:%Y-%m}" for e in POOL} == {"2024-03", "2024-04"}
