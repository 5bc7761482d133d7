"""The archive's own lifecycle (DESIGN.md §10) on local, memory, S3 (moto) and GCS (fake-gcs-server).

The ledger (verify reports exactly what was deleted, altered, planted or
stored twice), repack (500 hourly objects of one month, read identical at
every step, request counts), expire's edges, Object Lock on moto, and
SIGKILLed repacks rerun to completion.
"""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier.cli import run as cli_run
from coldtier.testing import FsspecBackdoor, make_events, window_of
from coldtier.testing._checks import RESERVED_PREFIX, check_store
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url

ROOT = Path(__file__).resolve().parents[1]
BASE = datetime(2024, 3, 1, tzinfo=UTC)
BACKENDS = ["local", "memory", "s3", "gcs"]
TRIALS = int(os.environ.get("COLDTIER_CRASH_TRIALS", "20"))


@dataclass
class Rig:
    """An archive location on one backend, and a backdoor to its raw objects."""

    backend: str
    url: str
    options: dict[str, Any]
    raw: Any
    remove: Callable[[str], None]

    def open(self, **options: Any) -> coldtier.Archive:
        return coldtier.open_archive(self.url, **self.options, **options)

    def objects(self) -> list[str]:
        """Stored object keys, the ledger's receipts left out."""
        return [k for k in self.raw.list_keys() if not k.startswith(RESERVED_PREFIX)]


def _rig(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Rig:
    if backend == "local":
        root = tmp_path / "archive"
        raw = _LocalRaw(root)
        return Rig(backend, str(root), {}, raw, raw.remove)
    if backend == "memory":
        name = f"lc-{uuid.uuid4().hex}"
        fs = MemoryFileSystem(skip_instance_cache=True)
        return Rig(
            backend,
            f"memory://{name}",
            {},
            FsspecBackdoor(fs, f"/{name}"),
            lambda k: fs.rm_file(f"/{name}/{k}"),
        )
    if backend == "s3":
        client, bucket = request.getfixturevalue("s3_client"), request.getfixturevalue("fresh_bucket")
        url = archive_url("s3", bucket, "p", request.getfixturevalue("moto_url"))
        return Rig(
            backend,
            url,
            dict(CREDENTIALS),
            BotoBackdoor(client, bucket, "p"),
            lambda k: client.delete_object(Bucket=bucket, Key=f"p/{k}"),
        )
    server, bucket = request.getfixturevalue("fake_gcs"), request.getfixturevalue("gcs_bucket")
    from tests._fakegcs import HTTPBackdoor

    def remove(key: str) -> None:
        server.request("DELETE", f"/storage/v1/b/{bucket}/o/{quote('p/' + key, safe='')}")

    return Rig(
        backend, f"gs://{bucket}/p", {"endpoint_url": server.url}, HTTPBackdoor(server, bucket, "p"), remove
    )


class _LocalRaw:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list_keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def remove(self, key: str) -> None:
        (self.root / key).unlink()


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Rig:
    return _rig(request, request.param, tmp_path)


def hourly(archive: coldtier.Archive, hours: int, *, events: int = 3, tenant: str = "acme") -> list[str]:
    """``hours`` archive calls of ``events`` events each, one an hour from BASE; their keys."""
    keys = []
    for h in range(hours):
        batch = make_events(
            tenant, events, start=BASE + timedelta(hours=h), step=timedelta(minutes=7), seed=h + 1
        )
        keys.extend(archive.archive(tenant, *window_of(batch), batch).keys)
    return keys


def counting(archive: coldtier.Archive) -> Counter[str]:
    """Count the store primitives the engine calls (the real store still answers every one)."""
    store = archive.store  # type: ignore[attr-defined]
    calls: Counter[str] = Counter()
    for name in ("put", "get", "stat", "list", "delete"):
        method = getattr(store, name)

        def counted(*args: Any, _m: Callable[..., Any] = method, _n: str = name, **kwargs: Any) -> Any:
            calls[_n] += 1
            return _m(*args, **kwargs)

        setattr(store, name, counted)
    return calls


# ---------------------------------------------------------------------------
# The ledger


def test_verify_reports_exactly_the_four_on_every_backend(rig: Rig) -> None:
    archive = rig.open()
    keys = hourly(archive, 6)
    assert archive.verify().ok
    deleted, altered = keys[1], keys[3]
    rig.remove(deleted)
    data = bytearray(rig.raw.get(altered))
    data[len(data) // 3] ^= 0xFF  # damage a page: its CRC and the digest no longer match
    if rig.backend != "local":
        rig.remove(altered)
    rig.raw.put(altered, bytes(data))
    # An object no receipt names: archived with the ledger off.
    planted_events = make_events("acme", 3, start=BASE + timedelta(hours=40), seed=99)
    (planted,) = rig.open(ledger=False).archive("acme", *window_of(planted_events), planted_events).keys
    # One id twice, with different payloads, in two calls.
    first = make_events("acme", 2, start=BASE + timedelta(hours=50), seed=500)
    again = [
        coldtier.Event(
            id=first[0].id,
            event_type=first[0].event_type,
            entity_id=first[0].entity_id,
            tenant_id="acme",
            payload={"changed": True},
            timestamp=BASE + timedelta(hours=60),
        )
    ]
    archive.archive("acme", *window_of(first), first)
    (twice,) = archive.archive("acme", *window_of(again), again).keys
    report = archive.verify()
    flagged = {p.key for p in report.problems}
    assert flagged == {deleted, altered, planted, twice}, report.problems
    by_key = {p.key: p.message for p in report.problems}
    assert "missing" in by_key[deleted]
    assert "unrecorded" in by_key[planted]
    assert str(first[0].id) in by_key[twice]
    assert report.unrecorded == ()
    if rig.backend == "local":  # the CLI refuses memory:// (nothing survives the command)
        assert cli_run(["verify", rig.url]) == 1
    # Reads never need a receipt: every one gone, the (undamaged) events still read.
    for key in rig.raw.list_keys():
        if key.startswith(RESERVED_PREFIX):
            rig.remove(key)
    assert archive.read("acme", BASE, BASE + timedelta(hours=1)).num_rows == 3


@pytest.mark.parametrize("lands", ["before verify's listing", "after verify's listing"])
def test_verify_beside_an_archive_call_reports_nothing_of_it(tmp_path: Path, lands: str) -> None:
    """An archive() running beside verify is no damage, whichever of its writes verify saw first.

    The store's own ``list`` lets another writer's call land while verify lists
    the tenant's month: before the listing, its object is listed but its
    receipt appears only after verify's first load of receipts; after it, its
    receipt names an object verify did not list.
    """
    archive = coldtier.open_archive(str(tmp_path))
    hourly(archive, 2)
    other = coldtier.open_archive(str(tmp_path))
    store = archive.store  # type: ignore[attr-defined]
    real_list = store.list
    landed: list[str] = []
    held: dict[Path, bytes] = {}  # the receipt kept back until verify has loaded receipts once
    ledger_top = f"{RESERVED_PREFIX}ledger/acme"
    receipts = lambda: set(tmp_path.glob(f"{RESERVED_PREFIX}ledger/**/*.json"))  # noqa: E731

    def land() -> None:
        events = make_events("acme", 3, start=BASE + timedelta(hours=30), seed=7)
        landed.extend(other.archive("acme", *window_of(events), events).keys)

    def listing(prefix: str) -> Any:
        if prefix == "acme/2024-03" and not landed and lands == "before verify's listing":
            before = receipts()
            land()
            (receipt,) = receipts() - before
            held[receipt] = receipt.read_bytes()
            receipt.unlink()
        entries = real_list(prefix)
        if prefix == "acme/2024-03" and not landed:
            land()
        if prefix == ledger_top and held and store.tops_listed:  # verify's second look
            for path, body in held.items():
                path.write_bytes(body)
            held.clear()
        if prefix == ledger_top:
            store.tops_listed += 1
        return entries

    store.tops_listed = 0
    store.list = listing
    report = archive.verify("acme")
    assert report.ok, report.problems
    assert len(landed) == 1 and not held, (landed, held)
    assert report.unrecorded == ()
    store.list = real_list
    assert archive.verify("acme").ok and len(archive.objects("acme")) == 3


def test_archive_writes_one_receipt_and_a_retry_the_same_one(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    calls = counting(archive)
    events = make_events("acme", 10)
    archive.archive("acme", *window_of(events), events)
    assert calls == Counter(put=2)  # the object, then its receipt
    archive.archive("acme", *window_of(events), events)  # a retry: both refused, confirmed
    receipts = [p for p in tmp_path.rglob("*.json")]
    assert len(receipts) == 1 and receipts[0].relative_to(tmp_path).parts[0] == "_coldtier~ledger"
    body = json.loads(receipts[0].read_bytes())
    assert body["kind"] == "archive" and body["objects"][0]["events"] == 10
    assert archive.tenants() == ["acme"] and len(archive.objects("acme")) == 1


def test_archives_without_a_ledger_and_foreign_files_are_unrecorded_not_damage(tmp_path: Path) -> None:
    old = coldtier.open_archive(str(tmp_path), ledger=False)
    hourly(old, 2)
    foreign = _allsource_file(tmp_path, "acme", BASE + timedelta(days=3))
    report = coldtier.open_archive(str(tmp_path)).verify()
    assert report.ok and len(report.unrecorded) == 3 and foreign in report.unrecorded


def _allsource_file(root: Path, tenant: str, at: datetime) -> str:
    """An allsource-core archive file (no digest in its name, no coldtier footer), written directly."""
    events = make_events(tenant, 2, start=at, seed=777)
    table = pa.table(
        {
            "event_id": [str(e.id) for e in events],
            "event_type": [e.event_type for e in events],
            "entity_id": [e.entity_id for e in events],
            "payload": [json.dumps(e.payload) for e in events],
            "timestamp": pa.array([e.timestamp.replace(tzinfo=None) for e in events], pa.timestamp("us")),
            "metadata": pa.array([None for _ in events], pa.string()),
            "version": pa.array([e.version for e in events], pa.uint64()),
        }
    )
    start, end = window_of(events)
    key = f"{tenant}/{start:%Y-%m}/archive.{tenant}.{start:%Y-%m-%dT%H%M%S}Z-{end:%Y-%m-%dT%H%M%S}Z.parquet"
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    (root / key).parent.mkdir(parents=True, exist_ok=True)
    (root / key).write_bytes(sink.getvalue())
    return key


# ---------------------------------------------------------------------------
# Repack


def test_repack_500_hourly_objects(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    archive = rig.open()
    began = time.monotonic()
    hourly(archive, 500)
    written = time.monotonic() - began
    expected = archive.read("acme")
    before = len(rig.objects())
    calls = counting(archive)
    reads = 0

    deletes = 0

    def check(what: str) -> None:
        """read() at moments inside the repack: merged objects written, receipt, 1, 250 and 500 sources gone."""
        nonlocal reads, deletes
        deletes += what.startswith("deleted")
        if what.startswith(("wrote", "recorded")) or (
            deletes in (1, 250, 500) and what.startswith("deleted")
        ):
            counted = calls.copy()  # the repack's requests only
            assert archive.read("acme").equals(expected), what
            calls.clear()
            calls.update(counted)
            reads += 1

    began = time.monotonic()
    first = archive.repack("acme", "2024-03", target_bytes=40_000, progress=check)
    assert first.objects_before == 500 and len(first.sources) == 500 and len(first.pending) == 500
    assert first.deleted == () and first.ok
    merging = calls.copy()
    assert archive.read("acme").equals(expected) and archive.verify().ok
    calls.clear()
    second = archive.repack("acme", "2024-03", target_bytes=40_000, grace=timedelta(0), progress=check)
    took = time.monotonic() - began
    deleting = calls.copy()
    assert len(second.deleted) == 500 and second.written == () and second.ok
    after = archive.objects("acme")
    assert {o.key for o in after} == set(first.written)
    assert len(after) == second.objects_after == len(rig.objects())
    assert all(o.size >= 20_000 for o in after)  # each near the target (none under half of it)
    assert archive.read("acme").equals(expected)
    report = archive.verify()
    assert report.ok and report.objects == len(after) and report.unrecorded == ()
    # Once more: nothing left to merge, nothing changes.
    third = archive.repack("acme", grace=timedelta(0))
    assert third.written == () and third.deleted == () and third.objects_after == len(after)
    with capsys.disabled():
        print(
            f"\n[{rig.backend}] 500 hourly objects: {before} objects, {first.bytes_before} B -> "
            f"{len(after)} objects, {second.bytes_after} B; requests: merge {dict(merging)}, "
            f"delete {dict(deleting)}; "
            f"{reads} reads during it; archive {written:.1f} s, repack {took:.1f} s (loaded machine)"
        )


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    hourly(archive, 20)
    keys = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    report = archive.repack("acme", target_bytes=10_000, grace=timedelta(0), dry_run=True)
    assert report.dry_run and len(report.sources) == 20 and report.written
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == keys


def test_two_repacks_at_once_leave_a_correct_archive(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    hourly(archive, 60)
    expected = archive.read("acme")
    errors: list[BaseException] = []
    gate = threading.Barrier(2)

    def one() -> None:
        try:
            gate.wait()
            coldtier.open_archive(str(tmp_path)).repack("acme", target_bytes=8_000, grace=timedelta(0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    final = archive.repack("acme", target_bytes=8_000, grace=timedelta(0))
    assert archive.read("acme").equals(expected)
    assert archive.verify().ok and final.ok
    assert len(archive.objects("acme")) < 60


def test_repack_refuses_to_merge_an_id_with_two_contents(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    hourly(archive, 4)
    first = make_events("acme", 1, start=BASE + timedelta(hours=10), seed=42)
    clash = [coldtier.Event(first[0].id, "x", "y", "acme", {"other": 1}, BASE + timedelta(hours=11))]
    (a,) = archive.archive("acme", *window_of(first), first).keys
    (b,) = archive.archive("acme", *window_of(clash), clash).keys
    report = archive.repack("acme", target_bytes=50_000, grace=timedelta(0))
    assert {p.key for p in report.skipped} == {a, b}
    assert len(report.deleted) == 4 and a in [o.key for o in archive.objects("acme")]
    assert archive.read("acme").num_rows == 13  # both versions of the id still stored; one read


def test_repack_and_expire_cli_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    hourly(archive, 10)
    url = str(tmp_path)
    assert cli_run(["repack", url, "--tenant", "acme", "--month", "2024-03", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and len(dry["sources"]) == 10 and dry["deleted"] == []
    assert cli_run(["repack", url, "--tenant", "acme", "--grace", "0", "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert len(done["deleted"]) == 10 and done["objects_after"] == 1
    assert cli_run(["repack", url, "--tenant", "acme", "--grace", "soon"]) == 2
    assert cli_run(["expire", url, "--tenant", "acme", "--before", "2025-01-01", "--dry-run"]) == 0
    assert "WOULD DELETE" in capsys.readouterr().out and archive.read("acme").num_rows == 30
    assert cli_run(["expire", url, "--tenant", "acme", "--before", "2025-01-01", "--json"]) == 0
    gone = json.loads(capsys.readouterr().out)
    assert len(gone["expired"]) == 1 and gone["ok"] and archive.objects("acme") == []
    assert cli_run(["verify", url]) == 0


# ---------------------------------------------------------------------------
# Expire


def test_expire_edges(rig: Rig) -> None:
    archive = rig.open()
    before = BASE + timedelta(days=2)

    def put(start: datetime, end: datetime, seed: int) -> str:
        events = make_events("acme", 2, start=start, step=end - start, seed=seed)
        (key,) = archive.archive("acme", start, end, events).keys
        return key

    wholly = put(BASE, BASE + timedelta(hours=5), 1)
    just_before = put(BASE + timedelta(hours=6), before - timedelta(seconds=1), 2)
    at = put(BASE + timedelta(days=1), before, 3)  # ends exactly at `before`: it overlaps
    straddling = put(before - timedelta(hours=1), before + timedelta(hours=1), 4)
    later = put(before + timedelta(days=1), before + timedelta(days=1, hours=1), 5)
    foreign = _foreign(rig, BASE + timedelta(hours=2))
    assert archive.expire("empty", before).expired == ()
    dry = archive.expire("acme", before, dry_run=True)
    assert set(dry.expired) == {wholly, just_before, foreign} and dry.receipt is None
    assert len(archive.objects("acme")) == 6
    done = archive.expire("acme", before)
    assert set(done.expired) == {wholly, just_before, foreign} and done.ok and done.kept == 3
    assert {o.key for o in archive.objects("acme")} == {at, straddling, later}
    assert archive.read("acme").num_rows == 6
    assert archive.verify().ok  # the expire receipt says the deletions were meant


def _foreign(rig: Rig, at: datetime) -> str:
    if rig.backend == "local":
        return _allsource_file(Path(rig.url), "acme", at)
    scratch = Path(f"/tmp/coldtier-foreign-{uuid.uuid4().hex}")
    key = _allsource_file(scratch, "acme", at)
    rig.raw.put(key, (scratch / key).read_bytes())
    return key


# ---------------------------------------------------------------------------
# Object Lock (moto: a bucket with default retention)


def test_object_lock_repack_and_expire_refuse_and_lose_nothing(moto_url: str, s3_client: Any) -> None:
    bucket = f"ct-lock-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    s3_client.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
        },
    )
    archive = coldtier.open_archive(archive_url("s3", bucket, "p", moto_url), **CREDENTIALS)
    keys = hourly(archive, 8)
    expected = archive.read("acme")
    stored = BotoBackdoor(s3_client, bucket, "p")
    listing = stored.list_keys()
    report = archive.repack("acme", target_bytes=50_000, grace=timedelta(0))
    assert report.written == () and report.deleted == () and report.ok  # nothing it could not finish
    assert {p.key for p in report.skipped} == set(keys)
    assert all("Object Lock" in p.message for p in report.skipped)
    gone = archive.expire("acme", BASE + timedelta(days=30))
    assert not gone.ok and gone.expired == () and {p.key for p in gone.refused} == set(keys)
    assert all("Object Lock" in p.message for p in gone.refused)
    assert stored.list_keys() == listing  # not even a receipt
    assert archive.read("acme").equals(expected) and archive.verify().ok


# ---------------------------------------------------------------------------
# Kill trials


@pytest.fixture(params=["local", "s3"])
def crash_rig(request: pytest.FixtureRequest, tmp_path: Path) -> Rig:
    return _rig(request, request.param, tmp_path)


def test_killed_repacks_rerun_to_a_complete_archive(
    crash_rig: Rig, request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(14)
    hours, target = 24, 4_000  # a few merged objects of ~4 KB
    stages: Counter[str] = Counter()
    for trial in range(TRIALS):
        rig = crash_rig if trial == 0 else _rig(request, crash_rig.backend, tmp_path / f"t{trial}")
        if crash_rig.backend == "s3" and trial:
            rig = _fresh_s3(request)
        archive = rig.open()
        hourly(archive, hours)
        expected = archive.read("acme")
        child = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "tests" / "crash_repack.py"),
                rig.url,
                json.dumps(rig.options),
                str(target),
            ],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        assert child.stdout is not None
        with child.stdout:
            assert child.stdout.readline().strip() == "ready"
            # A random step of read, write, record, delete; the kill lands at it or a little after.
            kill_at, last = rng.randrange(1, 2 * hours + 4), "ready"
            for _ in range(kill_at):
                last = child.stdout.readline().strip() or last
            time.sleep(rng.uniform(0, 0.02))
            child.send_signal(signal.SIGKILL)
            child.wait(30)
        stages[last.split(" ", 1)[0]] += 1
        # Nothing partial, whatever the moment: every stored object decodes to its name's digest.
        assert check_store(rig.raw).partial == []
        assert archive.read("acme").equals(expected), f"trial {trial}"
        rerun = archive.repack("acme", target_bytes=target, grace=timedelta(0))
        assert rerun.ok, rerun.refused
        assert archive.read("acme").equals(expected), f"trial {trial}"
        report = archive.verify()
        assert report.ok and report.unrecorded == (), (trial, report.problems)
        merged = archive.objects("acme")
        assert all(o.size >= target // 2 for o in merged) or len(merged) == 1, [o.size for o in merged]
        assert len(rig.objects()) == len(merged)  # no orphan, no source left
        # A temp file only if the kill came between a local link and its unlink: the killed
        # child's, invisible to readers, swept by the next write into its directory.
        assert all(f".~coldtier.{child.pid}." in k for k in check_store(rig.raw).temp)
    with capsys.disabled():
        print(
            f"\n[{crash_rig.backend}] {TRIALS} killed repacks, by last step seen: {dict(stages)}; reruns complete"
        )


def _fresh_s3(request: pytest.FixtureRequest) -> Rig:
    client = request.getfixturevalue("s3_client")
    bucket = f"ct-{uuid.uuid4().hex[:20]}"
    client.create_bucket(Bucket=bucket)
    url = archive_url("s3", bucket, "p", request.getfixturevalue("moto_url"))
    return Rig(
        "s3",
        url,
        dict(CREDENTIALS),
        BotoBackdoor(client, bucket, "p"),
        lambda k: client.delete_object(Bucket=bucket, Key=f"p/{k}"),
    )


# ---------------------------------------------------------------------------
# Write-side coalescing (WORM buckets)


def test_coalescer_archives_once_enough_has_built_up(tmp_path: Path) -> None:
    from coldtier.coalesce import Coalescer

    archive = coldtier.open_archive(str(tmp_path))
    pending = Coalescer(archive, "acme", min_object_bytes=20_000)
    receipts = []
    added = 0
    for h in range(200):
        batch = make_events("acme", 5, start=BASE + timedelta(hours=h), step=timedelta(minutes=5), seed=h + 1)
        added += 5
        receipt = pending.add(*window_of(batch), batch)
        if receipt is None:
            assert pending.pending[-1] == window_of(batch)  # the caller still keeps this window
            continue
        receipts.append(receipt)
        assert pending.pending == [] and pending.last_flushed[-1] == window_of(batch)
        assert receipt.events == 5 * len(pending.last_flushed) and len(receipt.keys) == 1
    last = pending.flush()
    assert last is not None and pending.flush() is None
    sizes = [o.size for o in archive.objects("acme")]
    assert len(sizes) == len(receipts) + 1 and all(size >= 20_000 for size in sizes[:-1])
    assert archive.read("acme").num_rows == added and archive.verify().ok
    with pytest.raises(coldtier.InvalidRequest):
        pending.add(BASE, BASE + timedelta(hours=1), make_events("other", 1))
    assert pending.pending == []


def test_worm_example_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "worm_retention.py"), str(tmp_path / "a")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "originals left: 0" in done.stdout
