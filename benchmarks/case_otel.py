"""Case otel: what metrics cost — 300 ``archive`` calls of 100 events each → local.

Three runs of the same calls, interleaved: coldtier without the OpenTelemetry
API (the ``is None`` no-op, as without the ``otel`` extra; simulated by hiding
the ``opentelemetry`` package from the import system), with the API but no SDK
(OpenTelemetry's global no-op provider), and with the SDK recording every
instrument into an ``InMemoryMetricReader``, the per-tenant gauge on.  The
ratio is SDK-on over no-API; target ≤ 1.03.  Log records are not enabled
(no handler), as in a library user's process by default.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import coldtier
import coldtier.observe
from coldtier import _observe
from coldtier.testing import make_events, window_of

from ._common import CPU, Row, interleave, median, scratch

CALLS = 300
EVENTS = 100


def _batches() -> list[tuple[str, datetime, datetime, list[coldtier.Event]]]:
    """300 windows of 100 events, 30 tenants, each window an hour after the last."""
    out = []
    for i in range(CALLS):
        tenant = f"t{i % 30}"
        events = make_events(tenant, EVENTS, start=datetime(2024, 3, 1, tzinfo=UTC) + timedelta(hours=i), seed=i)
        out.append((tenant, *window_of(events), events))
    return out


def _without_api() -> None:
    saved = {k: v for k, v in sys.modules.items() if k == "opentelemetry" or k.startswith("opentelemetry.")}
    for name in saved:
        del sys.modules[name]
    sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        coldtier.observe.configure()
        assert _observe._instruments() is None  # built now, with the API hidden: the no-op
    finally:
        del sys.modules["opentelemetry"]
        sys.modules.update(saved)


class _Bare:
    """An archive whose calls do nothing but what :mod:`coldtier._observe` adds to each."""

    def __init__(self, receipt: coldtier.Receipt) -> None:
        self.store = coldtier.open_archive("memory://otel-bench").store  # type: ignore[attr-defined]
        self.receipt = receipt

    @_observe.operation("archive")
    def archive(self, tenant: str, start: datetime, end: datetime, events: object) -> coldtier.Receipt:
        _observe.answered(self.store, True)  # what put.py and write.py add per object and call
        _observe.stored(self.store, True)
        _observe.new_objects(1)
        return self.receipt


def _per_call(setup: Callable[[], None], batches: list[tuple[str, datetime, datetime, list[coldtier.Event]]]) -> float:
    """CPU seconds the observation adds to one call: the best of 5 rounds of 20,000 calls."""
    setup()
    bare = _Bare(coldtier.Receipt(keys=("k",), events=EVENTS, bytes=5000, created=True))
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for i in range(20_000):
            tenant, start, end, events = batches[i % len(batches)]
            bare.archive(tenant, start, end, events)
        best = min(best, (time.process_time() - began) / 20_000)
    return best


def run(quick: bool = False) -> list[Row]:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    batches = _batches()
    reps = 3 if quick else 7
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])

    def calls(setup: Callable[[], None]) -> Callable[[], None]:
        def go() -> None:
            setup()
            with scratch("otel") as d:
                archive = coldtier.open_archive(str(d))
                for tenant, start, end, events in batches:
                    archive.archive(tenant, start, end, events)

        return go

    def sdk() -> None:
        coldtier.observe.configure(meter_provider=provider, archived_through=True)

    def api() -> None:
        coldtier.observe.configure()  # the global provider: the API's no-op without an SDK

    times = interleave({"no API": calls(_without_api), "API no-op": calls(api), "SDK": calls(sdk)}, reps)
    cost = {name: _per_call(setup, batches) for name, setup in (("no API", _without_api), ("SDK", sdk))}
    reader.collect()
    coldtier.observe.configure()
    provider.shutdown()
    wall = {n: median(times[n]) for n in times}
    cpu = {n: median(CPU[n]) for n in times}
    # What one call's observation costs, measured alone (load affects it far less than a
    # 15-second run of real calls), as a share of one real call's CPU without the API.
    added = (cost["SDK"] - cost["no API"]) * CALLS
    what = f"{CALLS} calls x {EVENTS} events → local"
    # The target is judged on CPU seconds: the calls wait on fsync, and on a loaded
    # machine the wall clock of two identical runs differs by more than 3 %.
    return [
        Row(
            "otel",
            f"{what}, CPU seconds, metrics recorded by the SDK vs no OpenTelemetry API",
            cpu["SDK"],
            cpu["no API"],
            target="target ≤ 1.03",
            passed=cpu["SDK"] / cpu["no API"] <= 1.03,
            note=f"wall {wall['SDK']:.2f} s vs {wall['no API']:.2f} s",
            samples={f"{n} cpu": CPU[n] for n in times},
        ),
        Row(
            "otel",
            f"{what}, wall seconds, metrics recorded by the SDK vs no OpenTelemetry API",
            wall["SDK"],
            wall["no API"],
            samples=times,
        ),
        Row(
            "otel",
            f"{what}: the observation alone, SDK on, added CPU seconds per {CALLS} calls "
            f"({cost['SDK'] * 1e6:.1f} µs vs {cost['no API'] * 1e6:.1f} µs per call), over the calls' CPU",
            cpu["no API"] + added,
            cpu["no API"],
            target="target ≤ 1.03",
            passed=(cpu["no API"] + added) / cpu["no API"] <= 1.03,
        ),
        Row(
            "otel",
            f"{what}, CPU seconds, the API's global no-op vs no OpenTelemetry API",
            cpu["API no-op"],
            cpu["no API"],
            note=f"wall {wall['API no-op']:.2f} s vs {wall['no API']:.2f} s",
        ),
    ]
