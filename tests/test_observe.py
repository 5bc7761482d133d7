"""Metrics and log records (DESIGN.md §12), read back through the OpenTelemetry SDK.

Each test gives coldtier a MeterProvider of its own with an
``InMemoryMetricReader`` (``coldtier.observe.configure``; the global provider
can be set only once per process) and compares every data point the reader
holds with the calls made — on memory, a local directory, S3 (moto, with
503s, a lost answer and 409s injected by the fault proxy) and GCS
(fake-gcs-server: the upload loop's retries).  The Prometheus recipe of
docs/recipes.md is scraped once over HTTP.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

import coldtier
import coldtier.observe
from coldtier import (
    ArchiveReadError,
    ArchiveWriteError,
    IntegrityError,
    InvalidRequest,
    KeyUnavailable,
    _observe,
)
from coldtier.testing import FaultProxy, Rule, make_events, window_of
from coldtier.testing._checks import written
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests.test_cli import coldtier_cli

Points = dict[str, dict[tuple[tuple[str, Any], ...], float]]


class Metrics:
    def __init__(self, reader: InMemoryMetricReader, provider: MeterProvider) -> None:
        self.reader = reader
        self.provider = provider

    def points(self) -> Points:
        """Every data point: instrument name -> sorted attributes -> value (a histogram: its count)."""
        data = self.reader.get_metrics_data()
        out: Points = {}
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = point.count if isinstance(point, HistogramDataPoint) else point.value
                        out.setdefault(metric.name, {})[tuple(sorted(point.attributes.items()))] = value
        return out


def at(**attributes: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(attributes.items()))


@pytest.fixture
def metrics() -> Iterator[Metrics]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    coldtier.observe.configure(meter_provider=provider, archived_through=False)
    try:
        yield Metrics(reader, provider)
    finally:
        coldtier.observe.configure(archived_through=False)
        provider.shutdown()


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Any:
    caplog.set_level(logging.DEBUG, logger="coldtier")
    return lambda: [r for r in caplog.records if r.name == "coldtier.calls"]


def _no_tenant_anywhere(points: Points) -> None:
    for name, series in points.items():
        for attributes in series:
            assert "tenant" not in dict(attributes), (name, attributes)


# -- memory ------------------------------------------------------------------------


def test_memory_counts_every_call_by_operation_and_outcome(metrics: Metrics, records: Any) -> None:
    archive = coldtier.open_archive(f"memory://obs-{uuid.uuid4().hex}")
    events = make_events("acme", 100)
    start, end = window_of(events)
    first = archive.archive("acme", start, end, events)
    again = archive.archive("acme", start, end, events)
    assert first.created and not again.created
    with pytest.raises(InvalidRequest, match="after end"):
        archive.archive("acme", end, start, events)
    with pytest.raises(InvalidRequest):
        archive.archive("no/slash", start, end, events)
    empty = archive.archive("acme", start, end, [])
    assert archive.read("acme").num_rows == 100
    assert len(list(archive.events("acme"))) == 100  # streamed: counted when the stream ends
    assert sum(t.num_rows for t in archive.read_tables("acme")) == 100
    with pytest.raises(InvalidRequest):
        archive.events("no/slash")  # checked at the call
    with pytest.raises(InvalidRequest):
        next(archive.read_tables("no/slash"))  # checked at the first table
    assert archive.verify().ok
    archive.probe()

    points = metrics.points()
    calls = {
        at(operation="archive", backend="memory", outcome="ok"): 3,
        at(operation="archive", backend="memory", outcome="invalid"): 2,
        at(operation="read", backend="memory", outcome="ok"): 3,
        at(operation="read", backend="memory", outcome="invalid"): 2,
        at(operation="verify", backend="memory", outcome="ok"): 1,
        at(operation="probe", backend="memory", outcome="ok"): 1,
    }
    assert points["coldtier.calls"] == calls
    assert points["coldtier.call.duration"] == calls
    assert points["coldtier.events"] == {
        at(operation="archive", backend="memory"): 200,
        at(operation="read", backend="memory"): 300,
        at(operation="verify", backend="memory"): 100,
    }
    assert points["coldtier.bytes"] == {at(operation="archive", backend="memory"): first.bytes + again.bytes}
    assert points["coldtier.objects"] == {
        at(backend="memory", state="created"): 1,
        at(backend="memory", state="confirmed"): 1,
    }
    assert points["coldtier.refusals"] == {at(backend="memory", reason="exists"): 1}
    assert set(points) == {
        "coldtier.calls",
        "coldtier.call.duration",
        "coldtier.events",
        "coldtier.bytes",
        "coldtier.objects",
        "coldtier.refusals",
    }  # no retries, no store errors, and no tenant gauge unless enabled
    _no_tenant_anywhere(points)

    # One INFO record per successful archive, one WARNING per refused input, fields in extra=.
    got = records()
    infos = [r for r in got if r.levelno == logging.INFO]
    assert [(r.tenant, r.objects, r.events, r.bytes, r.new_objects) for r in infos] == [
        ("acme", 1, 100, first.bytes, 1),
        ("acme", 1, 100, again.bytes, 0),
        ("acme", 0, 0, empty.bytes, 0),
    ]
    assert all(r.operation == "archive" and r.backend == "memory" and r.outcome == "ok" for r in infos)
    assert infos[0].window_start == start.isoformat() and infos[0].window_end == end.isoformat()
    assert all(isinstance(r.seconds, float) and r.seconds > 0 for r in infos)
    warnings = [r for r in got if r.levelno == logging.WARNING]
    assert [(r.operation, r.outcome, r.error, r.tenant) for r in warnings] == [
        ("archive", "invalid", "InvalidRequest", "acme"),
        ("archive", "invalid", "InvalidRequest", "no/slash"),
        ("read", "invalid", "InvalidRequest", "no/slash"),
        ("read", "invalid", "InvalidRequest", "no/slash"),
    ]
    assert "after end" in warnings[0].reason and "after end" in warnings[0].getMessage()
    assert not [r for r in got if r.levelno >= logging.ERROR]
    debug = sorted((r.operation, r.events) for r in got if r.levelno == logging.DEBUG)
    assert debug == [("probe", 0), ("read", 100), ("read", 100), ("read", 100), ("verify", 100)]


def test_archived_through_names_tenants_only_when_enabled(metrics: Metrics, records: Any) -> None:
    coldtier.observe.configure(meter_provider=metrics.provider, archived_through=True, max_tenants=2)
    archive = coldtier.open_archive(f"memory://obs-{uuid.uuid4().hex}")
    day = make_events("acme", 10)
    later = make_events("acme", 10, start=day[0].timestamp + timedelta(days=1))
    archive.archive("acme", *window_of(later), later)
    archive.archive("acme", *window_of(day), day)  # a backfill does not move the signal back
    globex = make_events("globex", 5)
    archive.archive("globex", *window_of(globex), globex)
    with pytest.raises(InvalidRequest):  # a failed call does not move it either
        archive.archive("globex", window_of(globex)[0], window_of(globex)[0], globex)
    initech = make_events("initech", 5)
    archive.archive("initech", *window_of(initech), initech)  # beyond max_tenants: left out, said once
    archive.archive("initech", *window_of(initech), initech)
    points = metrics.points()
    assert points["coldtier.archived_through"] == {
        at(backend="memory", tenant="acme"): window_of(later)[1].timestamp(),
        at(backend="memory", tenant="globex"): window_of(globex)[1].timestamp(),
    }
    # Everywhere else the attributes stay tenant-free.
    _no_tenant_anywhere({k: v for k, v in points.items() if k != "coldtier.archived_through"})
    full = [r for r in records() if "max_tenants" in r.__dict__]
    assert len(full) == 1 and full[0].levelno == logging.WARNING and full[0].max_tenants == 2


def test_a_shredded_tenant_is_its_own_outcome(metrics: Metrics, tmp_path: Path) -> None:
    coldtier.observe.configure(meter_provider=metrics.provider)
    archive = coldtier.open_archive(f"memory://obs-{uuid.uuid4().hex}", encryption=(tmp_path / "keys").as_uri())
    events = make_events("acme", 10)
    archive.archive("acme", *window_of(events), events)
    archive.shred("acme")
    with pytest.raises(KeyUnavailable):
        archive.read("acme")
    calls = metrics.points()["coldtier.calls"]
    assert calls[at(operation="read", backend="memory", outcome="key_unavailable")] == 1
    assert calls[at(operation="archive", backend="memory", outcome="ok")] == 1


def test_tenant_gauge_from_the_environment(metrics: Metrics, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLDTIER_METRICS_TENANTS", "1")
    coldtier.observe.configure(meter_provider=metrics.provider)
    archive = coldtier.open_archive(f"memory://obs-{uuid.uuid4().hex}")
    events = make_events("acme", 3)
    archive.archive("acme", *window_of(events), events)
    assert metrics.points()["coldtier.archived_through"] == {
        at(backend="memory", tenant="acme"): window_of(events)[1].timestamp()
    }
    with pytest.raises(InvalidRequest, match="max_tenants"):
        coldtier.observe.configure(max_tenants=-1)


def test_without_the_api_nothing_is_recorded_and_everything_works(
    metrics: Metrics, records: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As without the `otel` extra: importing opentelemetry fails.
    for name in [m for m in sys.modules if m == "opentelemetry" or m.startswith("opentelemetry.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    coldtier.observe.configure(meter_provider=metrics.provider)
    archive = coldtier.open_archive(f"memory://obs-{uuid.uuid4().hex}")
    events = make_events("acme", 10)
    assert archive.archive("acme", *window_of(events), events).created
    assert archive.read("acme").num_rows == 10
    monkeypatch.undo()
    assert metrics.points() == {}
    assert [r.levelno for r in records()] == [logging.INFO, logging.DEBUG]  # logs do not need OpenTelemetry


def test_observing_never_fails_a_call(metrics: Metrics) -> None:
    class Unobservable:
        @property
        def store(self) -> Any:
            raise RuntimeError("no store to name")

        @_observe.operation("archive")
        def archive(self) -> str:
            return "stored"

    assert Unobservable().archive() == "stored"  # its objects may be durable: no error after that
    assert metrics.points() == {}


# -- local --------------------------------------------------------------------------


def test_local_split_objects_integrity_and_write_errors(metrics: Metrics, records: Any, tmp_path: Path) -> None:
    # workers=1: parts are put in order, so the retry below stops at the damaged one.
    archive = coldtier.open_archive(str(tmp_path / "a"), object_events=40, workers=1)
    events = make_events("acme", 100)
    window = window_of(events)
    receipt = archive.archive("acme", *window, events)
    assert len(receipt.keys) == 3
    damaged = tmp_path / "a" / receipt.keys[1]
    lost = pq.read_metadata(damaged).num_rows
    damaged.write_bytes(b"damaged by the test")
    assert not archive.verify().ok
    with pytest.raises(IntegrityError):
        archive.archive("acme", *window, events)
    (tmp_path / "file").write_text("not a directory")
    broken = coldtier.open_archive(str(tmp_path / "file" / "a"))
    with pytest.raises(ArchiveWriteError):
        broken.archive("acme", *window, events)
    with pytest.raises(ArchiveReadError):
        broken.read("acme")

    points = metrics.points()
    assert points["coldtier.calls"] == {
        at(operation="archive", backend="file", outcome="ok"): 1,
        at(operation="verify", backend="file", outcome="integrity"): 1,
        at(operation="archive", backend="file", outcome="integrity"): 1,
        at(operation="archive", backend="file", outcome="write_error"): 1,
        at(operation="read", backend="file", outcome="read_error"): 1,
    }
    # The retry confirmed the first object and found the damaged second one; the third part,
    # written beside the checks, may have been confirmed before the damage stopped the call.
    objects = points["coldtier.objects"]
    assert objects[at(backend="file", state="created")] == 3 and set(objects) == {
        at(backend="file", state="created"),
        at(backend="file", state="confirmed"),
    }
    assert objects[at(backend="file", state="confirmed")] in (1, 2)
    confirmed = objects[at(backend="file", state="confirmed")]
    assert points["coldtier.refusals"] == {at(backend="file", reason="exists"): confirmed + 1}  # + the damaged
    assert points["coldtier.store.errors"] == {at(backend="file", fault="unknown"): 2}  # ENOTDIR
    assert points["coldtier.events"] == {
        at(operation="archive", backend="file"): 100,
        at(operation="verify", backend="file"): 100 - lost,  # the damaged object's events are not counted
    }
    _no_tenant_anywhere(points)

    got = records()
    (info,) = [r for r in got if r.levelno == logging.INFO]
    assert (info.objects, info.new_objects, info.events, info.bytes) == (3, 3, 100, receipt.bytes)
    assert [(r.levelname, r.operation, r.outcome) for r in got if r.levelno >= logging.WARNING] == [
        ("WARNING", "verify", "integrity"),
        ("ERROR", "archive", "integrity"),
        ("ERROR", "archive", "write_error"),
        ("ERROR", "read", "read_error"),
    ]
    errors = [r for r in got if r.levelno == logging.ERROR]
    assert [r.error for r in errors] == ["IntegrityError", "ArchiveWriteError", "ArchiveReadError"]
    assert all(r.tenant == "acme" and r.archive.startswith("file://") for r in errors)


def test_cli_json_log_records_carry_the_fields(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(
                {
                    "id": str(e.id),
                    "event_type": e.event_type,
                    "entity_id": e.entity_id,
                    "payload": e.payload,
                    "timestamp": e.timestamp.isoformat(),
                }
            )
            for e in make_events("acme", 10)
        )
    )
    url = str(tmp_path / "a")
    quiet = coldtier_cli("archive", url, str(events), "--tenant", "acme")
    assert quiet.code == 0 and quiet.err == ""  # library loggers stay quiet without -v
    loud = coldtier_cli("-v", "archive", url, str(events), "--tenant", "acme", "--log-format", "json")
    assert loud.code == 0, loud
    lines = [json.loads(line) for line in loud.err.splitlines()]
    ours = [line for line in lines if line["logger"] == "coldtier.calls"]
    assert len(ours) == 1
    assert ours[0]["level"] == "INFO" and ours[0]["tenant"] == "acme"
    assert (ours[0]["events"], ours[0]["objects"], ours[0]["new_objects"]) == (10, 1, 0)


# -- S3 on moto, faults through the proxy ------------------------------------------

_CONFLICT = b"<Error><Code>ConditionalRequestConflict</Code><Message>in flight</Message></Error>"

S3_CASES = {
    "503 twice": (
        [Rule(action="status", method="PUT", status=503, times=2)],
        {},
        "ok",
        [("PUT", 503), ("PUT", 503), ("PUT", 200)],
        {
            "coldtier.objects": {at(backend="s3", state="created"): 1},
            "coldtier.retries": {at(backend="s3", reason="transient"): 2},
        },
    ),
    "lost answer": (
        [Rule(action="drop", method="PUT", times=1)],
        {},
        "ok",
        [("PUT", 200), ("PUT", 412), ("HEAD", 200)],
        {
            "coldtier.objects": {at(backend="s3", state="confirmed"): 1},
            "coldtier.refusals": {at(backend="s3", reason="exists"): 1},
            # No retry is counted: aiohttp itself resends an idempotent request (a PUT) once
            # when the connection drops, below botocore, so no retry count reaches coldtier.
            # What coldtier sees, and counts, is the refused create and its confirmation.
        },
    ),
    "503 forever": (
        [Rule(action="status", method="PUT", status=503, times=None)],
        {"max_attempts": 3},
        "write_error",
        [("PUT", 503)] * 3,
        {
            "coldtier.retries": {at(backend="s3", reason="transient"): 2},
            "coldtier.store.errors": {at(backend="s3", fault="unavailable"): 1},
        },
    ),
    "409 twice": (
        [Rule(action="status", method="PUT", status=409, body=_CONFLICT, times=2)],
        {},
        "ok",
        [("PUT", 409), ("PUT", 409), ("PUT", 200)],
        {
            "coldtier.objects": {at(backend="s3", state="created"): 1},
            "coldtier.refusals": {at(backend="s3", reason="conflict"): 2},
            "coldtier.retries": {at(backend="s3", reason="conflict"): 2},
        },
    ),
}


@pytest.mark.parametrize("case", list(S3_CASES))
def test_s3_retries_refusals_and_outcomes(
    case: str, metrics: Metrics, records: Any, moto_url: str, fresh_bucket: str, s3_client: Any
) -> None:
    rules, options, outcome, wire, expected = S3_CASES[case]
    events = make_events("acme", 50)
    with FaultProxy(moto_url) as proxy:
        url = archive_url("s3", fresh_bucket, "p", proxy.url)
        archive = coldtier.open_archive(url, **CREDENTIALS, **options, ledger=False)  # receipts: test_lifecycle
        for rule in rules:
            proxy.add(rule)
        if outcome == "ok":
            archive.archive("acme", *window_of(events), events)
        else:
            with pytest.raises(ArchiveWriteError):
                archive.archive("acme", *window_of(events), events)
        assert [(r.method, r.status) for r in proxy.requests()] == wire
    stored = written(BotoBackdoor(s3_client, fresh_bucket, "p"))  # the objects, not the receipts
    assert len(stored) == (1 if outcome == "ok" else 0)
    points = metrics.points()
    assert points.pop("coldtier.calls") == {at(operation="archive", backend="s3", outcome=outcome): 1}
    assert points.pop("coldtier.call.duration") == {at(operation="archive", backend="s3", outcome=outcome): 1}
    if outcome == "ok":
        assert points.pop("coldtier.events") == {at(operation="archive", backend="s3"): 50}
        size = s3_client.head_object(Bucket=fresh_bucket, Key="p/" + stored[0])["ContentLength"]
        assert points.pop("coldtier.bytes") == {at(operation="archive", backend="s3"): size}
    assert points == expected
    (record,) = [r for r in records() if r.levelno >= logging.INFO]
    assert record.levelname == ("INFO" if outcome == "ok" else "ERROR") and record.outcome == outcome


# -- Prometheus ---------------------------------------------------------------------


def test_prometheus_exporter_serves_the_metrics(tmp_path: Path) -> None:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry()
    provider = MeterProvider(metric_readers=[PrometheusMetricReader(registry=registry)])
    coldtier.observe.configure(meter_provider=provider, archived_through=True)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        archive = coldtier.open_archive(str(tmp_path))
        events = make_events("acme", 20)
        receipt = archive.archive("acme", *window_of(events), events)
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            text = answer.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        coldtier.observe.configure(archived_through=False)
        provider.shutdown()
    samples = _samples(text)
    assert samples[("coldtier_calls_total", at(backend="file", operation="archive", outcome="ok"))] == 1
    assert samples[("coldtier_events_total", at(backend="file", operation="archive"))] == 20
    assert samples[("coldtier_bytes_total", at(backend="file", operation="archive"))] == receipt.bytes
    assert samples[("coldtier_objects_total", at(backend="file", state="created"))] == 1
    count = ("coldtier_call_duration_seconds_count", at(backend="file", operation="archive", outcome="ok"))
    assert samples[count] == 1
    through = samples[("coldtier_archived_through_seconds", at(backend="file", tenant="acme"))]
    assert through == window_of(events)[1].timestamp()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The text exposition format's coldtier samples, without the exporter's ``otel_scope_*`` labels."""
    out = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(coldtier_\w+)\{(.*)\} (\S+)", line)
        if match:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', match[2]))
            kept = {k: v for k, v in labels.items() if not k.startswith("otel_scope_")}
            out[match[1], at(**kept)] = float(match[3])
    return out


# -- GCS on fake-gcs-server: the upload loop's retries ------------------------------

_UPLOAD = r"^/upload/storage/v1/b/[^/]+/o\?"


@pytest.mark.parametrize("fault", ["503 twice", "lost answer"])
def test_gcs_upload_retries(fault: str, metrics: Metrics, fake_gcs: Any, gcs_bucket: str) -> None:
    events = make_events("acme", 20)
    with FaultProxy(fake_gcs.url) as proxy:
        archive = coldtier.open_archive(f"gs://{gcs_bucket}/p", endpoint_url=proxy.url, ledger=False)
        if fault == "503 twice":
            proxy.add(Rule(action="status", method="POST", path=_UPLOAD, status=503, times=2))
        else:
            proxy.add(Rule(action="drop", method="POST", path=_UPLOAD, times=1))
        archive.archive("acme", *window_of(events), events)
        uploads = [r.status for r in proxy.requests("POST") if r.target.startswith("/upload/")]
    points = metrics.points()
    assert points["coldtier.calls"] == {at(operation="archive", backend="gs", outcome="ok"): 1}
    if fault == "503 twice":
        assert uploads == [503, 503, 200]
        assert points["coldtier.retries"] == {at(backend="gs", reason="transient"): 2}
        assert points["coldtier.objects"] == {at(backend="gs", state="created"): 1}
        assert "coldtier.refusals" not in points
    else:
        assert uploads == [200, 412]  # stored, answer lost; coldtier's loop resends, refused, confirmed
        assert points["coldtier.retries"] == {at(backend="gs", reason="transient"): 1}
        assert points["coldtier.objects"] == {at(backend="gs", state="confirmed"): 1}
        assert points["coldtier.refusals"] == {at(backend="gs", reason="exists"): 1}
