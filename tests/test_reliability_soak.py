"""Load held, not a burst: writers and readers on one archive for a bounded time (marker ``soak``).

On local and on S3 (moto), each until ``COLDTIER_SOAK_CALLS`` calls (default
10,000) or for at most ``COLDTIER_SOAK_SECONDS`` (default :data:`CAP`: local
300 s, S3 20 s), whichever comes first:

* 8 writer threads in this process and 4 writer processes (``tests/soak_writer.py``)
  archive small batches of 12 tenants, each call a window of its own (one in
  ten repeats an earlier batch: ``created=False``, same keys); every few
  seconds one writer process is SIGKILLed and replaced;
* 2 reader threads meanwhile ``read``/``events`` the window of a random
  acknowledged call (exactly its events) and ``verify`` a random tenant;
* on S3 every request goes through the fault proxy, which answers a share
  of them with 503, drops the response to some PUTs after they landed,
  cuts some uploads and some GET bodies mid-way (moto and the proxy run in
  a process of their own, ``tests/soak_server.py``, so this process's
  threads do not starve them).

A call that failed or whose process was killed is the caller's to retry (it
kept its data, DESIGN.md §1): after the run each one is archived again,
directly, as the event store's next pass would; until then its objects may
lack their ledger receipt (verify's "unrecorded"), which a verify during the
run may also see for a call still in flight.

At the end, read directly: every acknowledged event is there exactly once, no
object under a final key is partial, ``verify`` is clean; this process's open
file descriptors, threads and RSS are back within :data:`FD_SLACK`,
:data:`THREAD_SLACK` and :data:`RSS_SLACK_MIB` of the level after warm-up
(open sockets within :data:`POOL_SOCKETS`: the S3 client's pool of idle connections)
(threads not counting the at most :data:`LOOP_POOL` of fsspec's IO loop
executor, which asyncio keeps once made).
Calls/s, events/s, p50/p99 latency and errors by kind go to RELIABILITY.md.
"""

from __future__ import annotations

import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, NamedTuple

import boto3
import pytest
from fsspec.implementations.local import LocalFileSystem

import coldtier
from coldtier.testing import FsspecBackdoor
from coldtier.testing._data import make_table
from tests import soak_writer
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests._reliability import check_store, tally, timed

pytestmark = pytest.mark.soak

ROOT = Path(__file__).resolve().parents[1]
CALLS = int(os.environ.get("COLDTIER_SOAK_CALLS", "10000"))  # until this many calls
#: at most this long a backend: local reaches CALLS well within it; S3 through moto and the
#: fault proxy holds ~3-10 calls/s here, so it is bounded by time
CAP = {"local": 300.0, "s3": 20.0}
SECONDS_ENV = os.environ.get("COLDTIER_SOAK_SECONDS")
THREADS, PROCESSES, READERS = 8, 4, 2
KILL_EVERY = 6.0  # seconds between SIGKILLs of a writer process
FD_SLACK, THREAD_SLACK, RSS_SLACK_MIB = 8, 2, 200
WARM = 50  # the writer id of the warm-up call
AREA = "soak: writers and readers held under faults"


@dataclass
class Soak:
    backend: str
    url: str  # what the writers and readers use (through the proxy on S3)
    direct_url: str
    options: dict[str, Any]
    backdoor: Any
    server: subprocess.Popen[str] | None = None  # moto and the fault proxy (S3)
    faults: int = 0
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    acks: list[dict[str, Any]] = field(default_factory=list)
    tries: set[tuple[int, int]] = field(default_factory=set)  # (writer, call) of every call begun
    lock: threading.Lock = field(default_factory=threading.Lock)

    def calls(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.latencies.values())

    def note(self, kind: str, seconds: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)
            if error:
                self.errors[f"{kind}: {error}"] += 1


@pytest.fixture
def local_soak(tmp_path: Path) -> Iterator[Soak]:
    root = tmp_path / "archive"
    root.mkdir()
    yield Soak("local", str(root), str(root), {}, FsspecBackdoor(LocalFileSystem(), root.as_posix()))


@pytest.fixture
def s3_soak() -> Iterator[Soak]:
    """moto and the fault proxy in a process of their own (``tests/soak_server.py``)."""
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.soak_server"],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        line = server.stdout.readline().split()
        assert line and line[0] == "ready", server.communicate(timeout=30)
        moto_url, proxy_url = line[1:3]
        client = boto3.client(
            "s3",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["key"],
            aws_secret_access_key=CREDENTIALS["secret"],
        )
        bucket = f"soak-{uuid.uuid4().hex[:12]}"
        client.create_bucket(Bucket=bucket)
        soak = Soak(
            "s3",
            archive_url("s3", bucket, "soak", proxy_url),
            archive_url("s3", bucket, "soak", moto_url),
            dict(CREDENTIALS),
            BotoBackdoor(client, bucket, "soak"),
            server=server,
        )
        yield soak
        client.close()
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=30)


@pytest.fixture(params=["local", "s3"])
def soak(request: pytest.FixtureRequest) -> Soak:
    fixture: Soak = request.getfixturevalue(f"{request.param}_soak")
    return fixture


def _stop_server(soak: Soak) -> None:
    """End the S3 server process; keep the number of requests its fault rules acted on."""
    if soak.server is None:
        return
    out, _ = soak.server.communicate(timeout=60)
    soak.faults = sum(int(line.split()[1]) for line in out.splitlines() if line.startswith("faults "))
    soak.server = None


#: asyncio's default executor of fsspec's IO loop (DNS lookups) keeps up to this many threads: a pool, not a leak.
LOOP_POOL = min(32, (os.cpu_count() or 1) + 4)


#: keep-alive sockets one archive's S3 client may hold open by design: aiobotocore's connector
#: limit, botocore's ``max_pool_connections`` (10 by default; coldtier does not change it)
POOL_SOCKETS = 10


class Resources(NamedTuple):
    files: int  # open fds that are not sockets
    sockets: int
    threads: int  # not counting the IO loop's executor pool
    rss_mib: float


def _resources() -> Resources:
    """Open fds (files and sockets apart), threads (not the IO loop's executor pool) and RSS in MiB."""
    gc.collect()
    files = sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the fd of listdir itself, closed since
            continue
        sockets += target.startswith("socket:")
        files += not target.startswith("socket:")
    with open("/proc/self/statm") as f:
        rss = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    threads = sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))
    return Resources(files, sockets, threads, rss)


def _ids(writer: int, call: int) -> tuple[str, list[str]]:
    tenant, start_us, seed = soak_writer.batch(writer, call)
    return tenant, make_table(soak_writer.EVENTS, start_us=start_us, seed=seed).column("event_id").to_pylist()


def _window(writer: int, call: int) -> tuple[datetime, datetime]:
    _, start_us, _ = soak_writer.batch(writer, call)
    start = datetime.fromtimestamp(start_us / 1e6, UTC)
    return start, datetime.fromtimestamp((start_us + (soak_writer.EVENTS - 1) * 1_000) / 1e6, UTC)


def _writer_thread(soak: Soak, archive: coldtier.Archive, writer: int, stop: threading.Event) -> None:
    rng, call = random.Random(writer), 0
    while not stop.is_set():
        number = rng.randrange(call) if call and rng.random() < 0.1 else call
        with soak.lock:
            soak.tries.add((writer, number))
        began = time.monotonic()
        try:
            ack = soak_writer.archive_one(archive, writer, number)
        except coldtier.ColdTierError as exc:
            soak.note("archive", time.monotonic() - began, type(exc).__name__)
        else:
            soak.note("archive", time.monotonic() - began)
            with soak.lock:
                soak.acks.append(ack)
        call += number == call


def _reader_thread(soak: Soak, archive: coldtier.Archive, seed: int, stop: threading.Event) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        with soak.lock:
            ack = rng.choice(soak.acks) if soak.acks else None
        if ack is None:
            time.sleep(0.05)
            continue
        tenant, ids = _ids(ack["writer"], ack["call"])
        window = _window(ack["writer"], ack["call"])
        kind = rng.choice(["read", "events", "verify"])
        began = time.monotonic()
        try:
            if kind == "read":
                got = archive.read(tenant, *window).column("event_id").to_pylist()
            elif kind == "events":
                got = [str(e.id) for e in archive.events(tenant, *window)]
            else:
                report = archive.verify(tenant)
                # An object of a call in flight (or failed, or killed, not yet retried) has no receipt yet.
                damage = [p for p in report.problems if not p.message.startswith("unrecorded:")]
                unreadable = [p for p in damage if "cannot be" in p.message]
                assert soak.backend != "local" or not damage, damage
                assert len(unreadable) == len(damage), f"verify under load: {report.problems}"
                error = "object unreadable (fault)" if unreadable else None
                if len(damage) < len(report.problems):
                    error = "unrecorded (call in flight or not yet retried)"
                soak.note(kind, time.monotonic() - began, error)
                continue
        except (coldtier.ArchiveReadError, coldtier.IntegrityError) as exc:
            soak.note(kind, time.monotonic() - began, type(exc).__name__)
            continue
        soak.note(kind, time.monotonic() - began)
        assert sorted(got) == sorted(ids), (
            f"{kind} of an acknowledged call: {len(got)} events, want {len(ids)}"
        )


@dataclass
class Writer:
    """A writer process, its stdout read line by line as it runs (so calls are counted live)."""

    proc: subprocess.Popen[str]
    pump: threading.Thread
    stderr: IO[str]


def _spawn(soak: Soak, writer: int, seconds: float) -> Writer:
    env = {**os.environ, "COLDTIER_WRITER_OPTIONS": json.dumps(soak.options)}
    argv = [sys.executable, "-m", "tests.soak_writer", soak.url, str(writer), str(seconds)]
    stderr = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by _collect)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
    pump = threading.Thread(target=_pump, args=(soak, proc), name=f"soak-pump-{writer}")
    pump.start()
    return Writer(proc, pump, stderr)


def _pump(soak: Soak, proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        kind, _, body = line.partition(" ")
        try:
            record = json.loads(body)
        except ValueError:
            continue  # the line a kill cut short, or "ready"
        with soak.lock:
            if kind == "try":
                soak.tries.add((record["writer"], record["call"]))
            elif kind == "ack":
                soak.acks.append(record)
        if kind == "ack":
            soak.note("archive (process)", record["seconds"])
        elif kind == "err":
            soak.note("archive (process)", record["seconds"], record["type"])


def _collect(writer: Writer, killed: bool) -> None:
    """Wait for a writer process (SIGKILLed, or told to stop with SIGTERM) and its last lines."""
    code = writer.proc.wait(timeout=60)
    writer.pump.join(60)
    writer.proc.stdout.close()  # type: ignore[union-attr]
    with writer.stderr:
        writer.stderr.seek(0)
        err = writer.stderr.read()
    assert not writer.pump.is_alive(), "a writer's output was not read to its end"
    # -SIGTERM: stopped while still starting, before its handler was in place (no call begun).
    assert killed or code in (0, -signal.SIGTERM), err[-3000:]


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def test_soak(soak: Soak) -> None:
    seconds = float(SECONDS_ENV) if SECONDS_ENV else CAP[soak.backend]
    # One archive object shared by this process's threads, as an application would (and each
    # thread's own would make s3fs build a client per thread, on the one IO loop all share).
    warm = coldtier.open_archive(soak.url, **soak.options)  # load every code path and pool once
    warm_ack = soak_writer.archive_one(warm, WARM, 0)
    warm.read(_ids(WARM, 0)[0], *_window(WARM, 0))
    warm.verify(_ids(WARM, 0)[0])
    soak.acks.append(warm_ack)
    before = _resources()
    stop = threading.Event()
    began = time.monotonic()
    with timed(AREA, soak.backend):
        procs = {w: _spawn(soak, 100 + w, seconds) for w in range(PROCESSES)}
        threads = [
            threading.Thread(target=_writer_thread, args=(soak, warm, w, stop)) for w in range(THREADS)
        ]
        threads += [
            threading.Thread(target=_reader_thread, args=(soak, warm, r, stop)) for r in range(READERS)
        ]
        for thread in threads:
            thread.start()
        kills, next_id, rng, killed_at = 0, 100 + PROCESSES, random.Random(7), began
        while time.monotonic() - began < seconds and soak.calls() < CALLS:
            time.sleep(0.2)
            now = time.monotonic()
            left = seconds - (now - began)
            if now - killed_at >= KILL_EVERY and left > 3:
                victim = rng.choice(sorted(procs))
                procs[victim].proc.send_signal(signal.SIGKILL)
                _collect(procs.pop(victim), killed=True)
                procs[next_id] = _spawn(soak, next_id, left)
                next_id, kills, killed_at = next_id + 1, kills + 1, now
        stop.set()
        for writer in procs.values():
            writer.proc.send_signal(signal.SIGTERM)  # ends after its current call
        for thread in threads:
            thread.join(60)
            assert not thread.is_alive(), "a soak thread did not stop"
        for writer in procs.values():
            _collect(writer, killed=False)
        elapsed = time.monotonic() - began
    after = _resources()  # after the calls; the checks below read everything once more
    # -- the caller retries what was not acknowledged, directly (DESIGN.md §1) ---------
    direct = coldtier.open_archive(soak.direct_url, **soak.options)
    retried = sorted(soak.tries - {(ack["writer"], ack["call"]) for ack in soak.acks})
    for writer, call in retried:
        soak.acks.append(soak_writer.archive_one(direct, writer, call))
    # -- what is stored, read directly ------------------------------------------------
    expected: dict[str, set[str]] = defaultdict(set)
    for ack in soak.acks:
        tenant, ids = _ids(ack["writer"], ack["call"])
        expected[tenant].update(ids)
    lost = 0
    for tenant, ids in expected.items():
        got = direct.read(tenant).column("event_id").to_pylist()
        assert len(got) == len(set(got)), f"{tenant}: an event read twice"
        lost += len(ids - set(got))
    check = check_store(soak.backdoor)
    assert not check.partial, check.partial
    assert lost == 0, f"{lost} acknowledged events missing"
    assert direct.verify().problems == ()
    # -- figures ------------------------------------------------------------------------
    calls = sum(len(v) for v in soak.latencies.values())
    written = sum(1 for _ in soak.acks) * soak_writer.EVENTS
    read_calls = [s for k, v in soak.latencies.items() if not k.startswith("archive") for s in v]
    write_calls = [s for k, v in soak.latencies.items() if k.startswith("archive") for s in v]
    errors = ", ".join(f"{k} {n}" for k, n in sorted(soak.errors.items())) or "none"
    _stop_server(soak)
    faults = soak.faults
    reached = f"target of {CALLS:,} calls reached" if calls >= CALLS else f"stopped at the {seconds:.0f} s bound"
    note = (
        f"{elapsed:.0f} s ({reached}), {calls:,} calls ({calls / elapsed:.1f}/s), "
        f"{len(soak.acks):,} acknowledged archive calls = {written / elapsed:,.0f} events/s archived; "
        f"latency p50/p99 archive "
        f"{_percentile(write_calls, 0.5) * 1000:.0f}/{_percentile(write_calls, 0.99) * 1000:.0f} ms, reads "
        f"{_percentile(read_calls, 0.5) * 1000:.0f}/{_percentile(read_calls, 0.99) * 1000:.0f} ms; "
        f"{kills} writer processes SIGKILLed; {len(retried)} calls not acknowledged, retried after the run; "
        f"errors by kind: {errors}; fds {before.files}->{after.files} (+ sockets {before.sockets}->"
        f"{after.sockets}), threads {before.threads}->{after.threads} "
        f"(+ {sum(1 for t in threading.enumerate() if t.name.startswith('asyncio_'))} "
        f"in the IO loop's pool), RSS {before.rss_mib:.0f}->{after.rss_mib:.0f} MiB "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )
    tally(
        AREA,
        soak.backend,
        note,
        trials=calls,
        faults=faults + kills,
        events_checked=sum(len(v) for v in expected.values()),
        errors_raised=sum(soak.errors.values()),
        events_lost=lost,
        partial_objects=len(check.partial),
    )
    print(note)
    assert after.files <= before.files + FD_SLACK, f"open fds {before.files} -> {after.files}"
    # Sockets: the S3 client's pool keeps idle connections open (at most POOL_SOCKETS) until they time out.
    assert after.sockets <= before.sockets + POOL_SOCKETS, f"sockets {before.sockets} -> {after.sockets}"
    names = sorted(t.name for t in threading.enumerate())
    assert after.threads <= before.threads + THREAD_SLACK, f"threads {before.threads} -> {after.threads}: {names}"
    assert sum(1 for name in names if name.startswith("asyncio_")) <= LOOP_POOL, names
    assert after.rss_mib <= before.rss_mib + RSS_SLACK_MIB, f"RSS {before.rss_mib:.0f} -> {after.rss_mib:.0f} MiB"
    assert calls > 0 and soak.acks
