"""coldtier.dask on a real two-process LocalCluster: verify and read equal the archive's own, locally and on S3.

The workers are separate processes: the archive reaches them pickled (URL
and non-secret options) and they take S3 credentials from their environment,
set for the cluster here; the test process passes them as options.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import distributed
import pyarrow as pa
import pytest

import coldtier
import coldtier.dask
from coldtier import VerifyReport
from coldtier.testing import make_events, window_of
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests.test_scrub import START, every_object, fill, flip_a_byte


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    env = {"AWS_ACCESS_KEY_ID": CREDENTIALS["key"], "AWS_SECRET_ACCESS_KEY": CREDENTIALS["secret"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own start-up chatter (ports, dashboards)
        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None, env=env
        )
        dask_client = distributed.Client(cluster)
    try:
        yield dask_client
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dask_client.close()
            cluster.close()


def _damage(archive: coldtier.Archive, write: Any) -> tuple[str, str]:
    """One object flipped in place and one replaced by garbage; their keys."""
    objs = every_object(archive)
    rotten, garbage = objs[2].key, objs[11].key
    write(rotten, None)
    write(garbage, b"not parquet at all")
    return rotten, garbage


def test_verify_on_the_cluster_equals_verify_locally(tmp_path: Path, client: Any) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    total = fill(archive)

    def write(key: str, data: bytes | None) -> None:
        if data is None:
            flip_a_byte(tmp_path / key)
        else:
            (tmp_path / key).write_bytes(data)

    rotten, garbage = _damage(archive, write)
    here = archive.verify()
    there = coldtier.dask.verify(str(tmp_path), client, group_objects=3)
    assert there.objects == total
    assert sorted(there.problems, key=str) == sorted(here.problems, key=str)
    assert (there.events, there.objects) == (here.events, here.objects)
    assert sorted({p.key for p in there.problems}) == sorted({rotten, garbage})
    assert [p.key for p in there.problems].count(garbage) == 1  # each found once
    assert coldtier.dask.verify(str(tmp_path), client, tenant="globex") == archive.verify("globex")
    shards = [coldtier.dask.objects(str(tmp_path), client=client, shard=(i, 4)) for i in range(1, 5)]
    assert sorted(o.key for shard in shards for o in shard) == sorted(o.key for o in every_object(archive))


def test_verify_on_the_cluster_on_s3(moto_url: str, fresh_bucket: str, s3_client: Any, client: Any) -> None:
    url = archive_url("s3", fresh_bucket, "cold", moto_url)
    archive = coldtier.open_archive(url, **CREDENTIALS)
    total = fill(archive, hours=4)
    backdoor = BotoBackdoor(s3_client, fresh_bucket, "cold")
    victim = every_object(archive)[5].key
    data = bytearray(backdoor.get(victim))
    data[len(data) // 3] ^= 0xFF
    backdoor.put(victim, bytes(data))  # an overwrite behind coldtier's back: its stored sha256 is stale now
    here = archive.verify()
    there = coldtier.dask.verify(url, client, **CREDENTIALS)  # workers: credentials from their environment
    assert there == VerifyReport.combine([there])
    assert (there.objects, there.events) == (here.objects, here.events) == (total, 5 * (total - 1))
    assert sorted(map(str, there.problems)) == sorted(map(str, here.problems))
    assert {p.key for p in there.problems} == {victim}


def test_read_on_the_cluster_equals_read_with_duplicates_across_objects(tmp_path: Path, client: Any) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    events = make_events("acme", 300, start=START, step=timedelta(minutes=1))
    for first in range(0, 300, 50):  # 6 batches of 50 ...
        batch = events[first : first + 50]
        archive.archive("acme", *window_of(batch), batch)
    overlap = events[40:70]  # ... and one overlapping two of them, all its events already stored
    archive.archive("acme", *window_of(overlap), overlap)
    late = make_events("acme", 10, start=START + timedelta(days=3), seed=9)
    archive.archive("acme", *window_of(late), late)
    lo, hi = START + timedelta(minutes=20), START + timedelta(days=4)
    frame = coldtier.dask.read(str(tmp_path), "acme", lo, hi, partition_bytes=1)
    assert frame.npartitions == 6  # the two overlapped batches and the overlap share one partition
    got = pa.Table.from_pandas(frame.compute(), preserve_index=False)
    want = archive.read("acme", lo, hi)
    assert got.num_rows == want.num_rows == 300 - 20 + 10
    assert got.cast(want.schema).equals(want)
    empty = coldtier.dask.read(str(tmp_path), "nobody").compute()
    assert list(empty.columns) == want.column_names
    assert len(empty) == 0


def test_the_recipe_runs_on_the_cluster(tmp_path: Path, client: Any) -> None:
    from tests.test_interop import run_recipe

    archive = coldtier.open_archive(str(tmp_path))
    events = make_events("acme", 120, step=timedelta(hours=6))  # March 2024 and beyond
    for first in range(0, 120, 40):
        archive.archive("acme", *window_of(events[first : first + 40]), events[first : first + 40])
    done = run_recipe("dask-cluster", client=client, url=str(tmp_path))
    assert done["report"] == archive.verify()
    march = [e for e in events if e.timestamp.month == 3]
    want = {kind: sum(e.event_type == kind for e in march) for kind in {e.event_type for e in march}}
    assert done["per_type"].to_dict() == want


def test_a_failed_task_is_a_problem_for_each_of_its_objects(tmp_path: Path, client: Any) -> None:
    from coldtier.dask import _outcome  # the step verify takes for every task

    archive = coldtier.open_archive(str(tmp_path))
    fill(archive, ("acme",), 3)
    group = every_object(archive)
    failed = client.submit(divmod, 1, 0, pure=False)  # a task that fails on a worker
    distributed.wait([failed])
    report = VerifyReport.combine(_outcome(failed, group)[0])
    assert (report.objects, report.events) == (3, 0)
    assert [p.key for p in report.problems] == [o.key for o in group]
    assert all("its Dask task failed (ZeroDivisionError" in p.message for p in report.problems)


def _reuse(event: coldtier.Event, at: datetime, n: int) -> coldtier.Event:
    """A distinct event at ``at`` that reuses ``event``'s id."""
    return dataclasses.replace(event, timestamp=at, payload={"reused": n})


def test_read_on_the_cluster_keeps_what_read_keeps_of_an_id_reused_across_objects(
    tmp_path: Path, client: Any
) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    days = [
        make_events("acme", 40, start=START + timedelta(days=d), step=timedelta(minutes=1), seed=d)
        for d in range(4)
    ]
    first, second, third = days[0][5], days[0][30], days[1][10]
    days[1][20] = _reuse(first, days[1][20].timestamp, 1)  # reused one object later ...
    days[3][7] = _reuse(first, days[3][7].timestamp, 3)  # ... and three objects later
    days[2][0] = _reuse(second, days[2][0].timestamp, 2)
    days[3][39] = _reuse(third, days[3][39].timestamp, 4)
    for batch in days:  # four objects whose windows do not overlap
        archive.archive("acme", *window_of(batch), batch)
    overlap = [*days[2][30:], _reuse(second, days[2][35].timestamp + timedelta(seconds=1), 5)]
    archive.archive(
        "acme", *window_of(overlap), overlap
    )  # copies across overlapping objects, and one more reuse
    want = archive.read("acme")
    assert want.num_rows == 4 * 40 - 4  # each reused id once (the earliest), each copy once
    assert {e.id for e in (first, second, third)} <= {
        uuid.UUID(i) for i in want.column("event_id").to_pylist()
    }
    for partition_bytes in (1, 2**30):  # one partition per object run, or all in one
        frame = coldtier.dask.read(str(tmp_path), "acme", partition_bytes=partition_bytes)
        assert frame.npartitions == (4 if partition_bytes == 1 else 1)
        got = pa.Table.from_pandas(frame.compute(), preserve_index=False)
        assert got.cast(want.schema).equals(want)
    lo = START + timedelta(days=1, minutes=15)  # the first copy outside the window: the next one is kept
    got = pa.Table.from_pandas(
        coldtier.dask.read(str(tmp_path), "acme", lo, partition_bytes=1).compute(), preserve_index=False
    )
    assert got.cast(want.schema).equals(archive.read("acme", lo))


def _verify_tasks(dask_scheduler: Any) -> tuple[int, dict[str, list[str]]]:
    """On the scheduler: verify tasks finished, and those each worker is processing."""
    done = sum(ts.state == "memory" for key, ts in dask_scheduler.tasks.items() if _verifying(key))
    processing = {
        w.address: [ts.key for ts in w.processing if _verifying(ts.key)]
        for w in dask_scheduler.workers.values()
    }
    return done, processing


def _verifying(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("coldtier-verify-")


def _kill_a_worker_mid_verify(client: Any, url: str) -> tuple[VerifyReport, dict[str, list[str]]]:
    """``coldtier.dask.verify`` (one object per task) with one worker SIGKILLed once a task has finished.

    Returns the report and the scheduler's record of the run: the verify
    tasks it ran again after the worker was lost, and those it gave up on.
    """
    pids = client.run(os.getpid)
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["report"] = coldtier.dask.verify(url, client, group_objects=1)
        except BaseException as exc:  # handed to the test thread below
            outcome["error"] = exc

    verifying = threading.Thread(target=run, daemon=True)
    verifying.start()
    deadline = time.monotonic() + 20
    while True:
        assert verifying.is_alive(), f"verify ended before a worker could be killed: {outcome}"
        assert time.monotonic() < deadline, "no verify task ran within 20 s"
        done, processing = client.run_on_scheduler(_verify_tasks)
        victim = next((worker for worker, keys in processing.items() if keys), None)
        if done and victim is not None:
            os.kill(pids[victim], signal.SIGKILL)
            break
        time.sleep(0.005)
    verifying.join(60)
    assert not verifying.is_alive(), "verify did not finish within 60 s of the kill"
    client.wait_for_workers(2, timeout=90)  # the nanny starts a new worker process (slow under load)
    assert pids[victim] not in client.run(os.getpid).values()
    assert "error" not in outcome, outcome
    prefix = processing[victim][0].rsplit("-", 1)[0]  # coldtier-verify-<run>
    log = client.run_on_scheduler(lambda dask_scheduler: [t[:5] for t in dask_scheduler.transition_log])
    ours = [
        (key, finish, stimulus)
        for key, _, finish, _, stimulus in log
        if isinstance(key, str) and key.startswith(f"{prefix}-")
    ]
    record = {
        "rerun": sorted(
            {key for key, finish, stimulus in ours if finish == "released" and "worker-cleanup" in stimulus}
        ),
        "erred": sorted({key for key, finish, _ in ours if finish == "erred"}),
    }
    return outcome["report"], record


def test_verify_on_the_cluster_survives_a_killed_worker(tmp_path: Path, client: Any) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    for tenant in ("acme", "globex"):
        for hour in range(30):
            events = make_events(
                tenant, 200, start=START + timedelta(hours=hour), step=timedelta(seconds=10), seed=hour
            )
            archive.archive(tenant, *window_of(events), events)
    objs = every_object(archive)
    here = archive.verify()
    assert (here.ok, here.objects) == (True, 60)

    # Dask's default: the killed worker's tasks (running, or finished with their result on it) run again.
    there, record = _kill_a_worker_mid_verify(client, str(tmp_path))
    assert there == here
    assert record["rerun"]  # the lost tasks were rescheduled, and their objects checked again
    assert not record["erred"]

    # A scheduler that gives up on a task at once (allowed-failures 0): KilledWorker, reported, not dropped.
    allowed = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.allowed_failures)
    client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", 0))
    try:
        there, record = _kill_a_worker_mid_verify(client, str(tmp_path))
    finally:
        client.run_on_scheduler(lambda dask_scheduler: setattr(dask_scheduler, "allowed_failures", allowed))
    failed = {p.key for p in there.problems}
    assert record["erred"]  # the tasks running on the killed worker: KilledWorker
    assert failed == {objs[int(key.rsplit("-", 1)[1])].key for key in record["erred"]}  # one object per task
    assert all("its Dask task failed (KilledWorker" in p.message for p in there.problems)
    assert len(there.problems) == len(failed)  # each failed object named once
    assert (there.objects, there.events) == (
        here.objects,
        here.events - 200 * len(failed),
    )  # the rest checked


def test_verify_on_the_cluster_with_a_state_file_and_a_sample(tmp_path: Path, client: Any) -> None:
    from tests.test_cli import coldtier_cli
    from tests.test_scrub import _state_keys

    root, state = tmp_path / "a", tmp_path / "state.jsonl"
    archive = coldtier.open_archive(str(root))
    total = fill(archive)
    first = coldtier.dask.verify(str(root), client, state=state, group_objects=3)
    assert first == VerifyReport(objects=total, events=5 * total)
    assert _state_keys(state) == {
        o.key for o in every_object(archive)
    }  # recorded here, as the tasks returned
    victim = every_object(archive)[7].key
    flip_a_byte(root / victim)
    again = coldtier.dask.verify(str(root), client, state=state)
    assert again == VerifyReport(objects=0, events=0, skipped=total)  # no object read: the rot goes unseen
    assert archive.verify(state=state) == again  # one state file for the CLI's verify and the cluster's
    due = coldtier.dask.verify(str(root), client, state=state, recheck_after=timedelta(microseconds=1))
    assert (due.objects, due.skipped, {p.key for p in due.problems}) == (total, 0, {victim})
    after = coldtier.dask.verify(str(root), client, state=state)  # the damaged object left the state
    assert (after.objects, after.skipped, {p.key for p in after.problems}) == (1, total - 1, {victim})

    # A sample: the same seed and share draw the same objects as the CLI's --sample --seed.
    cli_state, dask_state = tmp_path / "cli.jsonl", tmp_path / "dask.jsonl"
    done = coldtier_cli(
        "verify", str(root), "--sample", "0.4", "--seed", "7", "--state", str(cli_state), "--json"
    )
    assert done.code in (0, 1), done.err
    by_cli = json.loads(done.out)
    sampled = coldtier.dask.verify(str(root), client, sample=0.4, seed=7, state=dask_state)
    assert (sampled.objects, sampled.skipped) == (by_cli["objects"], by_cli["skipped"])
    assert sampled.objects + sampled.skipped == total and 0 < sampled.objects < total
    assert _state_keys(dask_state) == _state_keys(cli_state)  # the same objects checked without a problem
    assert sampled == archive.verify(sample=0.4, seed=7)
    other = coldtier.dask.verify(str(root), client, sample=0.4, seed=8)
    assert other.objects + other.skipped == total

    # Shards with their own state files still add up to one verify.
    shards = [
        coldtier.dask.verify(str(root), client, shard=(i, 4), state=tmp_path / f"shard-{i}.jsonl")
        for i in range(1, 5)
    ]
    assert VerifyReport.combine(shards) == archive.verify()


def test_verify_on_the_cluster_checks_across_objects_as_verify_does(tmp_path: Path, client: Any) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    fill(archive, ("acme",), 6)
    early = make_events("acme", 10, start=START - timedelta(days=3), seed=21)
    late = make_events("acme", 10, start=START + timedelta(days=3), seed=22)
    late[4] = _reuse(early[2], late[4].timestamp, 1)  # a distinct event reusing an id, in an object far away
    for batch in (early, late):
        archive.archive("acme", *window_of(batch), batch)
    here = archive.verify()
    assert [p.message for p in here.problems] == [
        f"event id {early[2].id} is also stored in {archive.objects('acme', *window_of(early))[0].key}"
        " with different contents (readers return only one of them)"
    ]
    there = coldtier.dask.verify(str(tmp_path), client, group_objects=2)
    assert there == here
    assert coldtier.dask.verify(str(tmp_path), client, tenant="acme") == archive.verify("acme")
    alone = coldtier.dask.verify(
        str(tmp_path), client, cross_check=False
    )  # each object on its own: it is intact
    assert (alone.objects, alone.events, alone.problems) == (here.objects, here.events, ())
