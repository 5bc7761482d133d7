"""Faults at the wire, through the fault proxy, for a backend that speaks HTTP.

The backends' own tests pin single faults to exact request sequences (one
lost response, two 503s, a cut upload, 503 forever).  This suite adds:

* random fault schedules over a split batch (lost responses after successful
  writes, 500/502/503/504/429 answers, connections reset mid-body, slow
  answers), each of which must settle to exactly the batch's objects, whole;
* every retryable status (and lost responses) *past* the retry budget: a clear
  ``ArchiveWriteError`` in bounded time, nothing partial, and a later retry
  that completes;
* slow responses: below the client's timeout they only cost time; past it
  (the ``timeout`` option) they are a bounded failure.

A backend's test class subclasses :class:`WireFaultTests` and supplies:

``upstream`` (fixture)
    The ``http://host:port`` endpoint of the store (an emulator) that the
    :class:`~coldtier.testing.faultproxy.FaultProxy` is put in front of.
``make_archive_through`` (fixture)
    ``make_archive_through(endpoint, **options)``: a new archive object on the
    test's fresh, empty storage, whose requests go to ``endpoint`` (the
    proxy's URL) instead of ``upstream``.
``backdoor`` (fixture)
    As for every suite: that storage, reached without the proxy or coldtier.

and, as class attributes, how its object writes look on the wire:
``write_method`` and ``write_path`` (a regex searched in the request target,
or ``None``), ``write_attempts`` (write attempts within the budget that
``budget_options`` sets).  The defaults fit S3.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from coldtier import Archive, ArchiveWriteError, Event

from ._backdoor import Backdoor
from ._base import Suite
from ._checks import check_store
from ._data import make_events, window_of
from .faultproxy import FaultProxy, Rule

__all__ = ["FAULTS", "WireFaultTests"]

AREA = "HTTP faults (fault proxy)"

#: The faults a random schedule draws from: (Rule action, Rule arguments).
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


class WireFaultTests(Suite):
    """Lost responses, 5xx/429, resets and slow answers on object writes; see the module docstring."""

    #: The HTTP method of an object write.
    write_method: ClassVar[str] = "PUT"
    #: A regex searched in an object write's request target (``None``: every ``write_method`` request).
    write_path: ClassVar[str | None] = None
    #: Options that make the retry budget small ...
    budget_options: ClassVar[dict[str, Any]] = {"max_attempts": 3}
    #: ... and the write attempts within it.
    write_attempts: ClassVar[int] = 3

    @pytest.fixture
    def upstream(self) -> str:
        raise NotImplementedError("provide an upstream fixture: the store's http://host:port")

    @pytest.fixture
    def make_archive_through(self) -> Callable[..., Archive]:
        raise NotImplementedError("provide a make_archive_through(endpoint, **options) fixture")

    @pytest.fixture
    def proxy(self, upstream: str) -> Iterator[FaultProxy]:
        with FaultProxy(upstream) as running:
            yield running

    @pytest.fixture
    def through_proxy(
        self, proxy: FaultProxy, make_archive_through: Callable[..., Archive]
    ) -> Callable[..., Archive]:
        """``through_proxy(**options)``: a new archive whose requests pass the proxy."""
        return lambda **options: make_archive_through(proxy.url, **options)

    def _rule(self, proxy: FaultProxy, action: str, **kwargs: Any) -> Rule:
        return proxy.add(Rule(action=action, method=self.write_method, path=self.write_path, **kwargs))

    def _settled(
        self,
        backdoor: Backdoor,
        make: Callable[..., Archive],
        events: list[Event],
        keys: tuple[str, ...] | None,
    ) -> None:
        """Whole objects only, exactly the batch's if it succeeded, and every event readable once."""
        store = check_store(backdoor)
        got = make().read("acme").column("event_id").to_pylist() if keys is not None else []
        lost = len({str(e.id) for e in events} - set(got)) if keys is not None else 0
        self.record(AREA, partial_objects=len(store.partial), events_lost=lost, events_checked=len(got))
        assert store.partial == [] and store.other == [], store
        if keys is not None:
            assert sorted(store.final) == sorted(keys), "objects other than the batch's"
            assert lost == 0 and len(got) == len(set(got)) == len(events)

    def test_random_fault_schedules_settle_to_whole_objects(
        self, proxy: FaultProxy, through_proxy: Callable[..., Archive], backdoor: Backdoor
    ) -> None:
        rng = random.Random(f"schedules-{self.backend_name or type(self).__name__}")
        began = time.monotonic()
        try:
            self._random_rounds(rng, proxy, through_proxy, backdoor)
        finally:
            self.record(AREA, seconds=round(time.monotonic() - began, 2))
        self.record(AREA, note="random schedules of lost responses, 5xx/429, resets and delays")

    def _random_rounds(
        self,
        rng: random.Random,
        proxy: FaultProxy,
        through_proxy: Callable[..., Archive],
        backdoor: Backdoor,
    ) -> None:
        everything: list[Event] = []
        keys: tuple[str, ...] = ()
        for round_ in range(6):
            proxy.clear()
            # Each round a new batch of the same window: earlier rounds' objects must stay as they are.
            events = make_events("acme", 400, seed=round_)
            # At most attempts-1 faults in all, so no single write can exhaust its budget.
            for _ in range(rng.randrange(1, self.write_attempts)):
                action, kwargs = rng.choice(FAULTS)
                self._rule(proxy, action, times=1, **kwargs)
            rules = list(proxy.rules)
            archive = through_proxy(object_events=50, workers=2)  # 8 objects, written two at a time
            receipt = archive.archive("acme", *window_of(events), events)
            applied = sum(r.applied for r in rules)
            self.record(AREA, trials=1, faults=applied)
            assert applied >= 1, "no fault reached the store: are write_method and write_path right?"
            assert len(receipt.keys) == 8
            everything += events
            keys += receipt.keys
            self._settled(backdoor, through_proxy, everything, keys)
            proxy.clear()
            again = through_proxy(object_events=50).archive("acme", *window_of(events), events)
            assert again.keys == receipt.keys and not again.created

    @pytest.mark.parametrize("fault", ["500", "502", "503", "504", "429", "drop", "reset"])
    def test_faults_past_the_retry_budget_fail_clearly_in_bounded_time(
        self, proxy: FaultProxy, through_proxy: Callable[..., Archive], backdoor: Backdoor, fault: str
    ) -> None:
        events = make_events("acme", 300)
        if fault.isdigit():
            self._rule(proxy, "status", status=int(fault), times=None)
        else:
            self._rule(proxy, fault, times=None)
        archive = through_proxy(**self.budget_options)
        began = time.monotonic()
        with pytest.raises(ArchiveWriteError) as info:
            archive.archive("acme", *window_of(events), events)
        elapsed = time.monotonic() - began
        writes = len(proxy.requests(self.write_method))
        self.record(AREA, trials=1, faults=writes, errors_raised=1)
        message = str(info.value)
        assert "keep the originals" in message or "could not be confirmed" in message, message
        assert elapsed < 20, f"{elapsed:.1f} s to give up"
        # aiohttp re-sends once on a pooled connection the server dropped, so a
        # broken connection can cost two requests per attempt; still bounded.
        assert writes <= 2 * self.write_attempts, f"{writes} write attempts, budget {self.write_attempts}"
        # A lost response may hide a write that did happen: it must be whole.
        self._settled(backdoor, through_proxy, events, None)
        proxy.clear()
        receipt = through_proxy().archive("acme", *window_of(events), events)
        self._settled(backdoor, through_proxy, events, receipt.keys)

    def test_slow_responses_below_the_timeout_only_cost_time(
        self, proxy: FaultProxy, through_proxy: Callable[..., Archive], backdoor: Backdoor
    ) -> None:
        events = make_events("acme", 300)
        self._rule(proxy, "delay", delay=1.0, times=2)
        began = time.monotonic()
        receipt = through_proxy(object_events=100, workers=1).archive("acme", *window_of(events), events)
        elapsed = time.monotonic() - began
        self.record(AREA, trials=1, faults=2)
        assert elapsed >= 2.0 and receipt.created
        self._settled(backdoor, through_proxy, events, receipt.keys)

    def test_slow_responses_past_the_timeout_fail_in_bounded_time(
        self, proxy: FaultProxy, through_proxy: Callable[..., Archive], backdoor: Backdoor
    ) -> None:
        events = make_events("acme", 300)
        self._rule(proxy, "delay", delay=4.0, times=None)
        began = time.monotonic()
        with pytest.raises(ArchiveWriteError):
            through_proxy(timeout=1, **self.budget_options).archive("acme", *window_of(events), events)
        elapsed = time.monotonic() - began
        self.record(AREA, trials=1, faults=len(proxy.requests(self.write_method)), errors_raised=1)
        assert elapsed < 20, elapsed
        time.sleep(4.5)  # writes the server received late may still land: they must be whole
        self._settled(backdoor, through_proxy, events, None)
        proxy.clear()
        receipt = through_proxy().archive("acme", *window_of(events), events)
        self._settled(backdoor, through_proxy, events, receipt.keys)
