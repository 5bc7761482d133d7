"""Killed writers and racing writers, in real processes, on every backend present.

Crash trials: a writer process (``tests/crash_writer.py``) archiving a batch of
several objects is SIGKILLed at a random point of its write (for S3 through a
throttling fault proxy, so kills land mid-upload and the cut body never
becomes an object).  After each kill every object under a final key must hash
to its name; a fresh process then retries and must succeed, and ``read`` must
return every event exactly once.

Races: 8 processes released together archive the same batch (one object,
every process succeeds, exactly one creates it) or 8 different batches of one
window (all kept).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from fsspec.implementations.local import LocalFileSystem

import coldtier
from coldtier.testing import FaultProxy, FsspecBackdoor, Rule
from coldtier.testing._data import make_table
from tests._moto import CREDENTIALS, BotoBackdoor
from tests._reliability import check_store, tally, timed

ROOT = Path(__file__).resolve().parents[1]
#: Kill trials per backend (the issue asks for at least 20 on local and S3; GCS,
#: an extra, gets half to keep the suite within a few minutes).
TRIALS = int(os.environ.get("COLDTIER_CRASH_TRIALS", "20"))
ROWS = 60_000
OBJECT_EVENTS = 4_000  # 15 objects of ~130 KiB
RACERS = 8
WRITES = {"s3": "PUT", "gcs": "POST"}  # the method of an object write on the wire


@dataclass
class Target:
    """One storage location a writer process can reach, plus a backdoor to it."""

    backend: str
    url: str
    options: dict[str, Any]
    backdoor: Any
    proxy: FaultProxy | None = None
    direct_url: str | None = None  # the same location without the proxy
    extra: dict[str, Any] = field(default_factory=dict)

    def open(self, *, direct: bool = True) -> coldtier.Archive:
        url = self.direct_url if direct and self.direct_url else self.url
        return coldtier.open_archive(url, **self.options)


Location = Callable[[], Target]


@pytest.fixture(scope="module")
def batches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Arrow IPC files the writer processes memory-map: the crash batch and race batches."""
    directory = tmp_path_factory.mktemp("batches")
    files = {}
    specs = {"crash": (ROWS, 0)} | {f"race-{i}": (4_000, 100 + i) for i in range(RACERS)}
    for name, (rows, seed) in specs.items():
        table = make_table(rows, seed=seed)
        path = directory / f"{name}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        files[name] = path
    return files


def _ids(path: Path) -> set[str]:
    with pa.memory_map(str(path)) as source:
        return set(pa.ipc.open_file(source).read_all().column("event_id").to_pylist())


@pytest.fixture
def local_locations(tmp_path: Path) -> Location:
    counter = iter(range(10_000))

    def make() -> Target:
        root = tmp_path / f"loc-{next(counter)}"
        root.mkdir()  # an archive's root exists (a missing one is ArchiveNotFound), as a bucket does
        return Target("local", str(root), {}, FsspecBackdoor(LocalFileSystem(), root.as_posix()))

    return make


@pytest.fixture
def s3_locations(moto_url: str, s3_client: Any, fresh_bucket: str) -> Iterator[Location]:
    with FaultProxy(moto_url) as proxy:

        def make() -> Target:
            prefix = f"p-{uuid.uuid4().hex[:8]}"
            query = "region=us-east-1"
            return Target(
                "s3",
                f"s3://{fresh_bucket}/{prefix}?endpoint_url={proxy.url}&{query}",
                dict(CREDENTIALS),
                BotoBackdoor(s3_client, fresh_bucket, prefix),
                proxy=proxy,
                direct_url=f"s3://{fresh_bucket}/{prefix}?endpoint_url={moto_url}&{query}",
            )

        yield make


@pytest.fixture
def gcs_locations(fake_gcs: Any, gcs_bucket: str) -> Iterator[Location]:
    from tests._fakegcs import HTTPBackdoor

    with FaultProxy(fake_gcs.url) as proxy:

        def make() -> Target:
            prefix = f"p-{uuid.uuid4().hex[:8]}"
            return Target(
                "gcs",
                f"gs://{gcs_bucket}/{prefix}?endpoint_url={proxy.url}",
                {},
                HTTPBackdoor(fake_gcs, gcs_bucket, prefix),
                proxy=proxy,
                direct_url=f"gs://{gcs_bucket}/{prefix}?endpoint_url={fake_gcs.url}",
            )

        yield make


@pytest.fixture(params=["local", "s3", "gcs"])
def locations(request: pytest.FixtureRequest) -> Location:
    fixture: Location = request.getfixturevalue(f"{request.param}_locations")
    return fixture


def _writer(
    target: Target, url: str, batch: Path, tenant: str, go: Path | None = None, **options: Any
) -> subprocess.Popen[str]:
    env = {**os.environ, "COLDTIER_WRITER_OPTIONS": json.dumps({**target.options, **options})}
    argv = [sys.executable, "-m", "tests.crash_writer", url, str(batch), tenant]
    if go is not None:
        argv += ["--go", str(go)]
    return subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _wait_ready(proc: subprocess.Popen[str]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "ready":
        _, err = proc.communicate(timeout=30)
        raise AssertionError(f"writer did not start: {line!r} {err}")


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGUSR1)  # the writer dumps every thread's stack
        time.sleep(1)
        proc.kill()
        out, err = proc.communicate(timeout=30)
        raise AssertionError(f"writer hung for {timeout} s: {out[-2000:]} {err[-3000:]}") from None
    assert proc.returncode == 0, err[-3000:]
    done = [line for line in out.splitlines() if line.startswith("done ")]
    assert done, out
    result: dict[str, Any] = json.loads(done[-1][5:])
    return result


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)


# -- crash trials ------------------------------------------------------------


def _wait_for_objects(target: Target, count: int, proc: subprocess.Popen[str]) -> None:
    """Poll a local archive until ``count`` objects are there (or the writer ended)."""
    root = Path(target.url)
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        if sum(1 for _ in root.glob("acme/*/archive.*.parquet")) >= count:
            return
        time.sleep(0.0005)


@pytest.mark.crash
def test_killed_writers_leave_only_whole_objects_and_a_retry_completes(
    locations: Location, batches: dict[str, Path]
) -> None:
    rng = random.Random(20_241_129)
    expected = _ids(batches["crash"])
    backend = locations().backend
    options = {"object_events": OBJECT_EVENTS, "workers": 1 + (backend != "local")}
    trials = TRIALS // 2 if backend == "gcs" else TRIALS
    rate = 1_500_000  # bytes/s per upload through the proxy: ~0.15 s per object

    # Calibrate: how long does an uninterrupted write take after "ready"?
    probe = locations()
    if probe.proxy is not None:
        probe.proxy.add(Rule(action="throttle", method=WRITES[backend], rate=rate, times=None))
    proc = _writer(probe, probe.url, batches["crash"], "acme", **options)
    _wait_ready(proc)
    duration = float(_finish(proc)["seconds"])

    landed = {"before the first object": 0, "mid-write": 0, "after the last object": 0}
    cut = 0
    with timed("crash: SIGKILL mid-archive, then retry", backend):
        for trial in range(trials):
            target = locations()
            kills = 1 + (rng.random() < 0.25)  # sometimes the first retry is killed too
            for _ in range(kills):
                proc = _writer(target, target.url, batches["crash"], "acme", **options)
                _wait_ready(proc)
                if backend == "local" and rng.random() < 0.5:
                    # A local write takes ~0.1 s, much of it before the first object
                    # lands: half the kills wait for a random object count instead.
                    _wait_for_objects(target, rng.randrange(1, ROWS // OBJECT_EVENTS), proc)
                    time.sleep(rng.uniform(0, 0.003))
                else:
                    time.sleep(rng.uniform(0, duration))
                in_flight = 0
                if target.proxy is not None:
                    in_flight = sum(
                        1
                        for r in target.proxy.requests(WRITES[backend])
                        if r.status is None and r.action == "throttle"
                    )
                _kill(proc)
                cut += in_flight
                after = check_store(target.backdoor)
                killed_report = target.open().verify()
                partial_after_kill = len(after.partial) + len(killed_report.problems)
                if in_flight or after.temp or 0 < len(after.final) < ROWS // OBJECT_EVENTS:
                    landed["mid-write"] += 1
                elif after.final:
                    landed["after the last object"] += 1
                else:
                    landed["before the first object"] += 1
                tally(
                    "crash: SIGKILL mid-archive, then retry",
                    backend,
                    faults=1,
                    partial_objects=partial_after_kill,
                )
                assert after.partial == [], f"trial {trial}: partial objects after SIGKILL: {after.partial}"
                assert killed_report.ok and killed_report.objects == len(after.final), killed_report
                other = [k for k in after.other if k not in after.temp]
                assert other == [], f"trial {trial}: unexpected keys {other}"
            # A fresh process (direct, no throttle) completes the batch.
            receipt = _finish(
                _writer(target, target.direct_url or target.url, batches["crash"], "acme", **options)
            )
            assert receipt["events"] == ROWS and len(receipt["keys"]) == ROWS // OBJECT_EVENTS
            archive = target.open()
            report = archive.verify()
            table = archive.read("acme")
            ids = table.column("event_id").to_pylist()
            final = check_store(target.backdoor)
            lost = len(expected - set(ids))
            tally(
                "crash: SIGKILL mid-archive, then retry",
                backend,
                trials=1,
                events_checked=len(expected),
                events_lost=lost,
                partial_objects=len(final.partial) + len(report.problems),
            )
            assert report.ok, f"trial {trial}: {report.problems}"
            assert lost == 0 and len(ids) == len(set(ids)) == ROWS, f"trial {trial}"
            assert final.partial == [] and final.other == [], f"trial {trial}: {final}"
            assert sorted(final.final) == sorted(receipt["keys"]), f"trial {trial}: stray objects"
    tally(
        "crash: SIGKILL mid-archive, then retry",
        backend,
        note=f"{trials} trials x {ROWS} events in {ROWS // OBJECT_EVENTS} objects; "
        f"kills at random points of a {duration:.2f} s write"
        + (" (half of them after a random number of objects)" if backend == "local" else "")
        + " landed "
        + ", ".join(f"{n} {where}" for where, n in landed.items())
        + (f"; {cut} uploads cut mid-body" if backend != "local" else ""),
    )
    # The kills must actually have landed inside the write, not only before or after it.
    assert landed["mid-write"] >= max(3, trials // 5), landed


# -- races -------------------------------------------------------------------


def _race(target: Target, batches: list[Path], tmp_path: Path) -> list[dict[str, Any]]:
    go = tmp_path / f"go-{uuid.uuid4().hex}"
    procs = [_writer(target, target.url, batch, "acme", go=go) for batch in batches]
    for proc in procs:
        _wait_ready(proc)
    go.touch()  # release every writer at once
    return [_finish(proc) for proc in procs]


@pytest.mark.crash
@pytest.mark.parametrize("rounds", [2])
def test_eight_processes_archiving_the_same_batch_settle_to_one_object(
    locations: Location, batches: dict[str, Path], tmp_path: Path, rounds: int
) -> None:
    backend = locations().backend
    with timed("race: 8 processes, same batch", backend):
        for _ in range(rounds):
            target = locations()
            results = _race(target, [batches["race-0"]] * RACERS, tmp_path)
            keys = {tuple(r["keys"]) for r in results}
            creators = sum(r["created"] for r in results)
            stored = check_store(target.backdoor)
            got = target.open().read("acme").column("event_id").to_pylist()
            lost = len(_ids(batches["race-0"]) - set(got))
            tally(
                "race: 8 processes, same batch",
                backend,
                trials=1,
                inputs=RACERS,
                events_checked=len(got),
                events_lost=lost,
                partial_objects=len(stored.partial),
            )
            assert len(keys) == 1 and len(stored.final) == 1 and keys == {tuple(stored.final)}
            assert creators == 1, f"{creators} processes claim to have created the one object"
            assert stored.partial == [] and stored.other == []
            assert lost == 0 and len(got) == len(set(got))


@pytest.mark.crash
@pytest.mark.parametrize("rounds", [2])
def test_eight_processes_archiving_different_batches_of_one_window_all_kept(
    locations: Location, batches: dict[str, Path], tmp_path: Path, rounds: int
) -> None:
    backend = locations().backend
    racing = [batches[f"race-{i}"] for i in range(RACERS)]
    expected = set().union(*(_ids(b) for b in racing))
    with timed("race: 8 processes, different batches, one window", backend):
        for _ in range(rounds):
            target = locations()
            results = _race(target, racing, tmp_path)
            stored = check_store(target.backdoor)
            got = target.open().read("acme").column("event_id").to_pylist()
            lost = len(expected - set(got))
            tally(
                "race: 8 processes, different batches, one window",
                backend,
                trials=1,
                inputs=RACERS,
                events_checked=len(got),
                events_lost=lost,
                partial_objects=len(stored.partial),
            )
            assert all(r["created"] for r in results)
            assert len({tuple(r["keys"]) for r in results}) == RACERS == len(stored.final)
            assert stored.partial == [] and stored.other == []
            assert lost == 0 and len(got) == len(set(got)) == len(expected)
