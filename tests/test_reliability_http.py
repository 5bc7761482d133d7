"""Faults at the wire for every object store present (S3, R2, GCS), through the fault proxy.

The backends' own tests pin single faults to exact request sequences (one
lost response, two 503s, a cut upload, 503 forever).  This file adds:

* random fault schedules over a split batch (lost responses after successful
  writes, 500/502/503/504/429 answers, connections reset mid-body, slow
  answers), each of which must settle to exactly the batch's objects, whole;
* every retryable status (and lost responses) *past* the retry budget: a clear
  ``ArchiveWriteError`` in bounded time, nothing partial, and a later retry
  that completes;
* slow responses: below the client's timeout they only cost time; past it
  (when the backend offers a ``timeout`` option) they are a bounded failure.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import coldtier
from coldtier import ArchiveWriteError
from coldtier.testing import make_events, window_of
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests._reliability import check_store, tally, timed
from tests.faultproxy import FaultProxy, Rule

AREA = "HTTP faults (fault proxy)"
GCS_UPLOAD = r"^/upload/storage/v1/b/[^/]+/o\?"


@dataclass
class Wire:
    """An object store behind a fault proxy, and how its object writes look on the wire."""

    backend: str
    proxy: FaultProxy
    open: Callable[..., coldtier.Archive]
    backdoor: Any
    write_method: str
    write_path: str | None
    budget_option: dict[str, Any]  # options that make the retry budget small
    attempts: int  # write attempts within that budget

    def rule(self, action: str, **kwargs: Any) -> Rule:
        return self.proxy.add(Rule(action=action, method=self.write_method, path=self.write_path, **kwargs))


@pytest.fixture(params=["s3", "r2", "gcs"])
def wire(request: pytest.FixtureRequest) -> Iterator[Wire]:
    backend = request.param
    if backend in ("s3", "r2"):
        moto_url = request.getfixturevalue("moto_url")
        bucket = request.getfixturevalue("fresh_bucket")
        client = request.getfixturevalue("s3_client")
        with FaultProxy(moto_url) as proxy:
            url = archive_url(backend, bucket, "w", proxy.url)
            yield Wire(
                backend,
                proxy,
                lambda **o: coldtier.open_archive(url, **CREDENTIALS, **o),
                BotoBackdoor(client, bucket, "w"),
                "PUT",
                None,
                {"max_attempts": 3},
                3,
            )
    else:
        from coldtier.backends.gcs import GCSStore
        from tests._fakegcs import HTTPBackdoor

        server = request.getfixturevalue("fake_gcs")
        bucket = request.getfixturevalue("gcs_bucket")
        with FaultProxy(server.url) as proxy:
            url = f"gs://{bucket}/w"
            yield Wire(
                backend,
                proxy,
                lambda **o: coldtier.open_archive(url, endpoint_url=proxy.url, **o),
                HTTPBackdoor(server, bucket, "w"),
                "POST",
                GCS_UPLOAD,
                {},
                GCSStore.upload_attempts,
            )


def _settled(wire: Wire, events: list[Any], keys: tuple[str, ...] | None) -> None:
    """Whole objects only, exactly the batch's if it succeeded, and every event readable once."""
    store = check_store(wire.backdoor)
    got = wire.open().read("acme").column("event_id").to_pylist() if keys is not None else []
    lost = len({str(e.id) for e in events} - set(got)) if keys is not None else 0
    tally(AREA, wire.backend, partial_objects=len(store.partial), events_lost=lost, events_checked=len(got))
    assert store.partial == [] and store.other == [], store
    if keys is not None:
        assert sorted(store.final) == sorted(keys), "objects other than the batch's"
        assert lost == 0 and len(got) == len(set(got)) == len(events)


FAULTS: list[tuple[str, dict[str, Any]]] = [
    ("drop", {}),
    ("status", {"status": 500, "body": b"<Error><Code>InternalError</Code><Message>x</Message></Error>"}),
    ("status", {"status": 502}),
    ("status", {"status": 503}),
    ("status", {"status": 504}),
    ("status", {"status": 429, "body": b"<Error><Code>SlowDown</Code><Message>x</Message></Error>"}),
    ("reset", {}),
    ("delay", {"delay": 0.3}),
]


def test_random_fault_schedules_settle_to_whole_objects(wire: Wire) -> None:
    rng = random.Random(f"schedules-{wire.backend}")
    everything: list[Any] = []
    keys: tuple[str, ...] = ()
    with timed(AREA, wire.backend):
        for round_ in range(6):
            wire.proxy.clear()
            # Each round a new batch of the same window: earlier rounds' objects must stay as they are.
            events = make_events("acme", 400, seed=round_)
            # At most attempts-1 faults in all, so no single write can exhaust its budget.
            for _ in range(rng.randrange(1, wire.attempts)):
                action, kwargs = rng.choice(FAULTS)
                wire.rule(action, times=1, **kwargs)
            rules = list(wire.proxy.rules)
            archive = wire.open(object_events=50, workers=2)  # 8 objects, written two at a time
            receipt = archive.archive("acme", *window_of(events), events)
            tally(AREA, wire.backend, trials=1, faults=sum(r.applied for r in rules))
            assert len(receipt.keys) == 8
            everything += events
            keys += receipt.keys
            _settled(wire, everything, keys)
            wire.proxy.clear()
            again = wire.open(object_events=50).archive("acme", *window_of(events), events)
            assert again.keys == receipt.keys and not again.created
    tally(AREA, wire.backend, note="random schedules of lost responses, 5xx/429, resets and delays")


# r2 is the s3 code path with other settings: its random schedules above suffice.
@pytest.mark.parametrize("wire", ["s3", "gcs"], indirect=True)
@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "429", "drop", "reset"])
def test_faults_past_the_retry_budget_fail_clearly_in_bounded_time(wire: Wire, fault: str) -> None:
    events = make_events("acme", 300)
    if fault.isdigit():
        wire.rule("status", status=int(fault), times=None)
    else:
        wire.rule(fault, times=None)
    archive = wire.open(**wire.budget_option)
    began = time.monotonic()
    with pytest.raises(ArchiveWriteError) as info:
        archive.archive("acme", *window_of(events), events)
    elapsed = time.monotonic() - began
    writes = len(wire.proxy.requests(wire.write_method))
    tally(AREA, wire.backend, trials=1, faults=writes, errors_raised=1)
    message = str(info.value)
    assert "keep the originals" in message or "could not be confirmed" in message, message
    assert elapsed < 20, f"{elapsed:.1f} s to give up"
    # aiohttp re-sends once on a pooled connection the server dropped, so a
    # broken connection can cost two requests per attempt; still bounded.
    assert writes <= 2 * wire.attempts, f"{writes} write attempts, budget {wire.attempts}"
    # A lost response may hide a write that did happen: it must be whole.
    _settled(wire, events, None)
    wire.proxy.clear()
    receipt = wire.open().archive("acme", *window_of(events), events)
    _settled(wire, events, receipt.keys)


@pytest.mark.parametrize("wire", ["s3", "gcs"], indirect=True)
def test_slow_responses_below_the_timeout_only_cost_time(wire: Wire) -> None:
    events = make_events("acme", 300)
    wire.rule("delay", delay=1.0, times=2)
    began = time.monotonic()
    receipt = wire.open(object_events=100, workers=1).archive("acme", *window_of(events), events)
    elapsed = time.monotonic() - began
    tally(AREA, wire.backend, trials=1, faults=2)
    assert elapsed >= 2.0 and receipt.created
    _settled(wire, events, receipt.keys)


@pytest.mark.parametrize("wire", ["s3", "gcs"], indirect=True)
def test_slow_responses_past_the_timeout_fail_in_bounded_time(wire: Wire) -> None:
    events = make_events("acme", 300)
    wire.rule("delay", delay=4.0, times=None)
    began = time.monotonic()
    with pytest.raises(ArchiveWriteError):
        wire.open(timeout=1, **wire.budget_option).archive("acme", *window_of(events), events)
    elapsed = time.monotonic() - began
    tally(AREA, wire.backend, trials=1, faults=len(wire.proxy.requests(wire.write_method)), errors_raised=1)
    assert elapsed < 20, elapsed
    time.sleep(4.5)  # writes the server received late may still land: they must be whole
    _settled(wire, events, None)
    wire.proxy.clear()
    receipt = wire.open().archive("acme", *window_of(events), events)
    _settled(wire, events, receipt.keys)
