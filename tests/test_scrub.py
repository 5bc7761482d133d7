"""Scrubbing without Dask: pickled archives, per-object units, shards, a state file, a sample (DESIGN.md §11)."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import coldtier
from coldtier import InvalidRequest, VerifyReport
from coldtier.testing import make_events, window_of
from coldtier.testing._checks import written
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url
from tests.test_cli import coldtier_cli

START = datetime(2024, 1, 31, 20, tzinfo=UTC)


def fill(archive: coldtier.Archive, tenants: tuple[str, ...] = ("acme", "globex"), hours: int = 10) -> int:
    """``hours`` hourly objects per tenant, across a month boundary; returns the number of objects."""
    for tenant in tenants:
        for hour in range(hours):
            events = make_events(tenant, 5, start=START + timedelta(hours=hour), seed=hour)
            archive.archive(tenant, *window_of(events), events)
    return len(tenants) * hours


def flip_a_byte(path: Path) -> None:
    """Damage a stored object in place, keeping its size (bit rot)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))


def every_object(archive: coldtier.Archive) -> list[coldtier.ArchivedObject]:
    return [o for t in archive.tenants() for o in archive.objects(t)]


# -- pickling ----------------------------------------------------------------------


def test_pickled_s3_archive_holds_no_credential_and_works_from_the_environment(
    moto_url: str, fresh_bucket: str, monkeypatch: pytest.MonkeyPatch, s3_client: Any
) -> None:
    url = archive_url("s3", fresh_bucket, "cold", moto_url)
    secrets = {**CREDENTIALS, "token": "session-token-do-not-leak"}
    archive = coldtier.open_archive(url, **secrets, timeout=7)
    data = pickle.dumps(archive)
    for value in secrets.values():
        assert value.encode() not in data
    assert b"timeout" in data  # the non-secret options travel
    # The unpickling side takes credentials from its environment (moto accepts any key).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWORKER")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "worker-secret")
    events = make_events("acme", 20)
    coldtier.open_archive(url, **CREDENTIALS).archive("acme", *window_of(events), events)
    rebuilt = pickle.loads(data)
    assert rebuilt.description() == archive.description()
    (obj,) = rebuilt.objects("acme")
    assert pickle.loads(pickle.dumps(obj)) == obj
    assert rebuilt.read_object(obj).num_rows == 20
    assert rebuilt.verify_object(obj) == VerifyReport(objects=1, events=20)
    assert written(BotoBackdoor(s3_client, fresh_bucket, "cold")) == [obj.key]


def test_local_archive_pickles_with_its_absolute_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    archive = coldtier.open_archive("rel/archive", compression="snappy")
    fill(archive, ("acme",), 2)
    monkeypatch.chdir("/")
    rebuilt = pickle.loads(pickle.dumps(archive))
    assert rebuilt.verify() == VerifyReport(objects=2, events=10)
    assert rebuilt.store.description() == (tmp_path / "rel" / "archive").as_uri()


# -- shards ------------------------------------------------------------------------


def _state_keys(path: Path) -> set[str]:
    return {json.loads(line)["key"] for line in path.read_text().splitlines()[1:]}


def test_four_shards_cover_every_object_once_and_keep_it_as_the_archive_grows(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path / "a"))
    total = fill(archive)
    states = [tmp_path / f"shard-{i}.jsonl" for i in range(1, 5)]
    reports = [archive.verify(shard=(i, 4), state=states[i - 1]) for i in range(1, 5)]
    assert VerifyReport.combine(reports) == archive.verify()
    assert all(r.objects > 0 for r in reports)  # these 20 keys fall in every shard
    before = [_state_keys(path) for path in states]
    assert sum(len(keys) for keys in before) == total  # disjoint ...
    assert set().union(*before) == {o.key for o in every_object(archive)}  # ... and everything
    fill(archive, ("initech",), 6)  # the archive grows: every old object stays in its shard
    grown = [archive.verify(shard=f"{i}/4", state=states[i - 1]) for i in range(1, 5)]
    assert [r.skipped for r in grown] == [len(keys) for keys in before]
    assert sum(r.objects for r in grown) == 6
    after = [_state_keys(path) for path in states]
    assert all(old <= new for old, new in zip(before, after, strict=True))
    assert sum(len(keys) for keys in after) == total + 6


@pytest.mark.parametrize("shard", [(0, 4), (5, 4), "3", "a/b", (1, 0), (True, 2), "2/1"])
def test_bad_shard_is_refused(tmp_path: Path, shard: Any) -> None:
    with pytest.raises(InvalidRequest, match="shard"):
        coldtier.open_archive(str(tmp_path)).verify(shard=shard)


# -- state -------------------------------------------------------------------------


def test_rerun_with_state_reads_no_object_until_recheck(tmp_path: Path) -> None:
    root, state = tmp_path / "a", tmp_path / "state.jsonl"
    archive = coldtier.open_archive(str(root))
    total = fill(archive)
    first = archive.verify(state=state)
    assert (first.objects, first.skipped, first.ok) == (total, 0, True)
    victim = every_object(archive)[7]
    flip_a_byte(root / victim.key)  # same key, same size: only a read can see it
    again = archive.verify(state=state)
    assert again == VerifyReport(objects=0, events=0, skipped=total)  # nothing read, so not seen
    due = archive.verify(state=state, recheck_after=timedelta(microseconds=1))
    assert due.objects == total
    assert [p.key for p in due.problems] == [victim.key]
    # The damaged object is no longer "verified": the next run checks it, and only it.
    after = archive.verify(state=state)
    assert (after.objects, after.skipped, [p.key for p in after.problems]) == (1, total - 1, [victim.key])


def test_state_of_another_archive_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.jsonl"
    one = coldtier.open_archive(str(tmp_path / "one"))
    fill(one, ("acme",), 1)
    one.verify(state=state)
    other = coldtier.open_archive(str(tmp_path / "other"))
    with pytest.raises(InvalidRequest, match="belongs to"):
        other.verify(state=state)
    with pytest.raises(InvalidRequest, match="needs a state file"):
        one.verify(recheck_after=3)


def test_state_survives_a_torn_last_line(tmp_path: Path) -> None:
    root, state = tmp_path / "a", tmp_path / "state.jsonl"
    archive = coldtier.open_archive(str(root))
    total = fill(archive, ("acme",), 4)
    archive.verify(state=state)
    lines = state.read_bytes().splitlines()
    state.write_bytes(b"\n".join(lines[:-1]) + b"\n" + lines[-1][: len(lines[-1]) // 2])  # killed mid-write
    rerun = archive.verify(state=state)
    assert (rerun.objects, rerun.skipped) == (1, total - 1)


def test_sample_checks_a_share_and_counts_the_rest(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path))
    total = fill(archive, ("acme", "globex"), 20)
    sampled = archive.verify(sample=0.3)
    assert sampled.objects + sampled.skipped == total
    assert 0 < sampled.objects < total  # fails with probability 0.7**40 + 0.3**40 (< 1e-6)
    assert archive.verify(sample=1) == VerifyReport(objects=total, events=5 * total)
    with pytest.raises(InvalidRequest, match="sample"):
        archive.verify(sample=0)
    states = [tmp_path.parent / f"{tmp_path.name}-seed-{n}.jsonl" for n in range(3)]
    drawn = [
        archive.verify(sample=0.3, seed=seed, state=path)
        for seed, path in zip((5, 5, 6), states, strict=True)
    ]
    assert drawn[0] == drawn[1]  # the same seed: the same objects
    # Different seeds draw alike by chance with probability 0.58**40.
    assert _state_keys(states[0]) == _state_keys(states[1]) != _state_keys(states[2])
    with pytest.raises(InvalidRequest, match="seed must be an integer"):
        archive.verify(sample=0.3, seed="5")  # type: ignore[arg-type]


# -- one unreadable object ---------------------------------------------------------


def test_one_unreadable_object_is_one_problem_and_the_rest_are_checked(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path), workers=4)
    total = fill(archive)
    victim = every_object(archive)[3]
    (tmp_path / victim.key).write_bytes(b"not parquet at all")
    report = archive.verify()
    assert report.objects == total
    assert report.events == 5 * (total - 1)
    assert [p.key for p in report.problems] == [victim.key]
    assert archive.verify_object(victim).problems == report.problems


# -- the CLI -----------------------------------------------------------------------


def test_cli_shards_and_state(tmp_path: Path) -> None:
    root = tmp_path / "a"
    total = fill(coldtier.open_archive(str(root)))
    state = str(tmp_path / "s1")
    first = coldtier_cli("verify", str(root), "--shard", "1/2", "--state", state, "--json")
    second = coldtier_cli("verify", str(root), "--shard", "2/2", "--json")
    assert (first.code, second.code) == (0, 0), first.err + second.err
    assert first.json()["objects"] + second.json()["objects"] == total
    assert (first.json()["shard"], first.json()["skipped"]) == ("1/2", 0)
    rerun = coldtier_cli("verify", str(root), "--shard", "1/2", "--state", state, "--recheck-after", "30")
    assert rerun.code == 0, rerun.err
    skipped = first.json()["objects"]
    assert rerun.out.rstrip().endswith(f": shard 1/2: 0 objects, 0 events ({skipped} objects skipped): OK")
