"""Model-based tests: random archive / retry / race / bad-input / read schedules against an oracle.

The oracle is a plain set: the events archived so far.  Hypothesis draws a
schedule of steps over a pool of events that straddles a month boundary:

* ``archive`` a random subset, in a random input form (``Event`` list, Arrow
  table or stream), a random window around it, a random split size;
* ``retry`` an earlier call, in another order and input form: same keys, not created;
* ``race`` several archive objects on threads writing one batch: one set of keys;
* ``bad`` a batch with one event a microsecond outside its window: refused, nothing changes;
* ``read`` a random window: exactly the oracle's events in it, each once, in order.

At the end every stored object hashes to its name, the objects are exactly
the receipts' keys, and ``verify`` is clean.

A backend's test file subclasses :class:`ModelTests` and supplies the two
fixtures of every suite (``make_archive``, ``backdoor``; see
:mod:`coldtier.testing`).  All examples of one test share that one storage:
each example archives under a tenant of its own, so its oracle is the whole
truth about its tenant.  ``max_examples`` (a class attribute) sets how many
schedules hypothesis draws.  This module needs ``hypothesis``.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coldtier import Archive, Event, InvalidRequest

from ._backdoor import Backdoor
from ._base import MakeArchive, Suite
from ._checks import check_store
from ._data import make_events

__all__ = ["ModelTests"]

AREA = "model: random schedules vs an oracle"
US = timedelta(microseconds=1)
POOL = make_events("acme", 40, start=datetime(2024, 3, 31, 23, 58, 30, tzinfo=UTC), step=timedelta(seconds=5))
BY_ID = {str(e.id): e for e in POOL}


def _as_input(events: list[Event], form: str) -> Any:
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


class ModelTests(Suite):
    """Random schedules of archive, retry, race, bad input and read, checked against a set of events."""

    #: How many schedules hypothesis draws per test.
    max_examples: ClassVar[int] = 25

    def test_random_schedules_match_the_oracle(self, make_archive: MakeArchive, backdoor: Backdoor) -> None:
        @settings(
            max_examples=self.max_examples,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(schedule=steps)
        def run(schedule: list[Any]) -> None:
            self._one_schedule(make_archive, backdoor, schedule)

        run()

    def test_oracle_pool_straddles_a_month(self) -> None:
        """The schedules above cross a month boundary, where listing by month can go wrong."""
        assert {f"{e.timestamp:%Y-%m}" for e in POOL} == {"2024-03", "2024-04"}

    def _one_schedule(self, make: MakeArchive, backdoor: Backdoor, schedule: list[Any]) -> None:
        # One tenant per example (hypothesis replays examples while shrinking, too).
        tenant = f"m-{uuid.uuid4().hex[:16]}"
        pool = [replace(e, tenant_id=tenant) for e in POOL]
        by_id = {str(e.id): e for e in pool}
        oracle: set[str] = set()
        keys: set[str] = set()
        calls: list[tuple[list[Event], datetime, datetime, int, str, tuple[str, ...]]] = []

        def mine() -> list[str]:
            return [k for k in backdoor.list_keys() if k.startswith(f"{tenant}/")]

        for step in schedule:
            kind = step[0]
            if kind == "archive":
                _, chosen, form, before, after, per = step
                events = [pool[i] for i in chosen]
                if events:
                    start = min(e.timestamp for e in events) - timedelta(seconds=before)
                    end = max(e.timestamp for e in events) + timedelta(seconds=after)
                else:
                    start = end = pool[0].timestamp
                receipt = make(object_events=per).archive(tenant, start, end, _as_input(events, form))
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
                receipt = make(object_events=per).archive(tenant, start, end, _as_input(shuffled, form))
                # A split stream's parts carry no part count (unknown until its end),
                # so only a split batch retried as a stream (or the reverse) gives other bytes.
                if len(events) <= per or (form == "stream") == (first_form == "stream"):
                    assert receipt.keys == expected and not receipt.created, (
                        f"retry of {len(events)} events (split at {per}) first as {first_form}, "
                        f"now as {form}: {receipt} vs {expected}"
                    )
                else:
                    assert receipt.events == len(events)
                    keys |= set(receipt.keys)
            elif kind == "race":
                _, chosen, n = step
                events = [pool[i] for i in chosen]
                results = _race(
                    [make() for _ in range(n)],
                    tenant,
                    min(e.timestamp for e in events),
                    max(e.timestamp for e in events),
                    events,
                )
                assert not [r for r in results if isinstance(r, BaseException)], results
                assert len({r.keys for r in results}) == 1
                oracle |= {str(e.id) for e in events}
                keys |= set(results[0].keys)
            elif kind == "bad":
                _, chosen, early = step
                events = [pool[i] for i in chosen]
                start, end = min(e.timestamp for e in events), max(e.timestamp for e in events)
                victim = events[0] if early else events[-1]
                moved = replace(victim, timestamp=start - US if early else end + US)
                events = [moved if e is victim else e for e in events]
                before = backdoor.list_keys()
                with pytest.raises(InvalidRequest):
                    make().archive(tenant, start, end, events)
                assert backdoor.list_keys() == before
                self.record(AREA, errors_raised=1)
            elif kind == "read":
                _, a, b = step
                lo, hi = sorted((pool[a].timestamp, pool[b].timestamp))
                got = make().read(tenant, lo, hi)
                ids = got.column("event_id").to_pylist()
                want = sorted(
                    (i for i in oracle if lo <= by_id[i].timestamp <= hi),
                    key=lambda i: (by_id[i].timestamp, i),
                )
                assert ids == want
        final = make()
        everything = final.read(tenant).column("event_id").to_pylist()
        streamed = {str(e.id): e for e in final.events(tenant)}
        store = check_store(backdoor, under=f"{tenant}/")
        lost = len(oracle - set(everything))
        self.record(
            AREA,
            trials=1,
            inputs=len(schedule),
            events_checked=len(everything),
            events_lost=lost,
            partial_objects=len(store.partial),
        )
        assert lost == 0 and sorted(everything) == sorted(oracle) and len(everything) == len(set(everything))
        assert streamed == {i: by_id[i] for i in oracle}  # content, not only ids, survives
        assert store.partial == [] and store.other == []
        assert set(store.final) == keys == set(mine())
        report = final.verify(tenant)
        assert report.ok, report.problems


def _race(
    racers: list[Archive], tenant: str, start: datetime, end: datetime, events: list[Event]
) -> list[Any]:
    """Every racer archives ``events`` at once (released by a barrier); results or exceptions, in order."""
    results: list[Any] = [None] * len(racers)
    barrier = threading.Barrier(len(racers))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = racers[i].archive(tenant, start, end, events)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted by the caller
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(racers))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results
