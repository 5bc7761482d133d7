"""Upgrades and setting changes between a call and its retry settle to one object (issue 11, item 7).

Object identity is logical (DESIGN §2.3, §3, §4): the key's digest is that of
the events, not of the Parquet bytes, so the same batch gets the same key
whatever wrote it.  Each test here writes the same batch twice with writers
that produce *different bytes* -- another ``compression``,
``compression_level`` or ``row_group_events``, or another pyarrow major
version in a second interpreter -- and expects exactly one stored object, the
second receipt ``created=False`` with the same keys, one copy of every event
on read and a clean ``verify``.  Guard tests show the two writers really do
produce different bytes, so none of this can pass trivially.

The older pyarrow lives in a second virtual environment, ``.venv-pyarrow-old``
in the repository root, built once (about a minute) and reused while its
requirements are unchanged.  If it cannot be built the tests fail and say why;
they never skip.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

import coldtier
from coldtier.testing import make_events, window_of

TENANT = "acme"
COUNT = 1000
SEED = 11
SPLIT = {"object_events": 300}  # 1000 events -> parts of 300, 300, 300 and 100
SPLIT_PARTS = 4

REPO = Path(__file__).resolve().parents[1]
OLD_VENV = REPO / ".venv-pyarrow-old"
OLD_PYARROW = "18.*"  # the project's floor (pyproject: pyarrow>=18), the oldest major we support
OLD_PYARROW_MAJOR = 18


# ---------------------------------------------------------------------------
# Where objects are stored, seen without going through coldtier


@dataclass(frozen=True)
class Place:
    """An archive URL and a way to list its objects (key -> bytes) behind coldtier's back."""

    url: str
    objects: Callable[[], dict[str, bytes]]


def _is_object(name: str) -> bool:
    return name.startswith("archive.") and name.endswith(".parquet")


def _local(root: Path) -> Place:
    root.mkdir(parents=True)  # an archive's root exists, as a bucket does

    def objects() -> dict[str, bytes]:
        return {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file() and _is_object(path.name)
        }

    return Place(str(root), objects)


def _memory() -> Place:
    name = f"upgrade-{uuid.uuid4().hex}"
    fs = MemoryFileSystem(skip_instance_cache=True)

    def objects() -> dict[str, bytes]:
        try:
            found = fs.find(f"/{name}")
        except FileNotFoundError:
            return {}
        return {p[len(name) + 2 :]: fs.cat_file(p) for p in sorted(found) if _is_object(p.rsplit("/", 1)[-1])}

    return Place(f"memory://{name}", objects)


def _place(layout: str, tmp_path: Path, name: str) -> Place:
    return _memory() if layout == "memory" else _local(tmp_path / name)


def _batch() -> list[coldtier.Event]:
    return make_events(TENANT, COUNT, seed=SEED)


def _events_sha256(events: list[coldtier.Event]) -> str:
    """A fingerprint of the input batch, computed the same way in both interpreters."""
    return hashlib.sha256("\n".join(map(repr, events)).encode()).hexdigest()


def _listing(objects: Mapping[str, bytes]) -> str:
    return "\n  ".join(["", *(f"{key} ({len(data)} bytes)" for key, data in objects.items())])


def _assert_settled(
    place: Place,
    first: coldtier.Receipt,
    second: coldtier.Receipt,
    before: dict[str, bytes],
    first_read: pa.Table,
    parts: int,
) -> None:
    """One copy of the batch after two calls: the stored objects, the receipt, read and verify."""
    after = place.objects()
    assert list(after) == list(before), (
        f"the second call stored another copy: before it{_listing(before)}\nafter it{_listing(after)}"
    )
    assert after == before, "an existing object's bytes changed: create-only writes never overwrite"
    assert second.keys == first.keys
    assert second.created is False, f"the repeat claims it created objects: {second}"
    assert second.events == COUNT
    archive = coldtier.open_archive(place.url)
    table = archive.read(TENANT)
    assert table.num_rows == COUNT
    ids = table.column("event_id").to_pylist()
    assert len(set(ids)) == COUNT
    assert sorted(ids) == sorted(str(e.id) for e in _batch())
    assert table.equals(first_read), "the second call changed what read() returns"
    report = archive.verify()
    assert report.ok, report.problems
    assert (report.objects, report.events) == (parts, COUNT)


# ---------------------------------------------------------------------------
# 1 and 3: a change of writer settings between a call and its retry


def _writer_facts(data: bytes) -> dict[str, Any]:
    """What the Parquet footer says about how an object was written."""
    meta = pq.read_metadata(pa.BufferReader(data))
    groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
    return {
        "codecs": sorted({g.column(c).compression for g in groups for c in range(g.num_columns)}),
        "row_groups": len(groups),
        "max_row_group_rows": max(g.num_rows for g in groups),
        "created_by": meta.created_by,
    }


@dataclass(frozen=True)
class Change:
    """Writer settings of the first call (``a``) and of its retry (``b``), and what each leaves in the footer."""

    id: str
    a: Mapping[str, Any]
    b: Mapping[str, Any]
    a_facts: Mapping[str, Any]
    b_facts: Mapping[str, Any]


CHANGES = [
    Change(
        "zstd-to-snappy",
        {"compression": "zstd"},
        {"compression": "snappy"},
        {"codecs": ["ZSTD"]},
        {"codecs": ["SNAPPY"]},
    ),
    Change(
        "zstd-to-gzip",
        {"compression": "zstd"},
        {"compression": "gzip"},
        {"codecs": ["ZSTD"]},
        {"codecs": ["GZIP"]},
    ),
    Change(
        "zstd-to-none",
        {"compression": "zstd"},
        {"compression": "none"},
        {"codecs": ["ZSTD"]},
        {"codecs": ["UNCOMPRESSED"]},
    ),
    Change(
        "zstd-level-1-to-19",
        {"compression": "zstd", "compression_level": 1},
        {"compression": "zstd", "compression_level": 19},
        {"codecs": ["ZSTD"]},
        {"codecs": ["ZSTD"]},
    ),
    Change(
        "row-groups-131072-to-100",
        {"row_group_events": 131_072},
        {"row_group_events": 100},
        {"row_groups": 1},
        {"max_row_group_rows": 100},
    ),
]
change_param = pytest.mark.parametrize("change", CHANGES, ids=[c.id for c in CHANGES])
LAYOUTS = ["file", "memory", "file-split"]


@change_param
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_settings_change_between_a_call_and_its_retry_stores_one_copy(
    layout: str, change: Change, tmp_path: Path
) -> None:
    split = SPLIT if layout.endswith("-split") else {}
    parts = SPLIT_PARTS if split else 1
    place = _place(layout, tmp_path, "archive")
    events = _batch()
    start, end = window_of(events)

    first = coldtier.open_archive(place.url, **split, **change.a).archive(TENANT, start, end, events)
    assert first.created is True and first.events == COUNT
    assert len(first.keys) == parts
    before = place.objects()
    assert sorted(before) == sorted(first.keys)
    first_read = coldtier.open_archive(place.url).read(TENANT)

    # The retry: the same tenant, window and events through a new archive with other writer settings.
    second = coldtier.open_archive(place.url, **split, **change.b).archive(TENANT, start, end, events)
    _assert_settled(place, first, second, before, first_read, parts)


@change_param
@pytest.mark.parametrize("layout", ["file", "file-split"])
def test_the_settings_really_change_the_bytes_but_not_the_keys(
    layout: str, change: Change, tmp_path: Path
) -> None:
    """The same batch with settings A and with settings B, each alone in its own archive."""
    split = SPLIT if layout.endswith("-split") else {}
    events = _batch()
    start, end = window_of(events)
    written: dict[str, tuple[coldtier.Receipt, dict[str, bytes]]] = {}
    for name, options in (("a", change.a), ("b", change.b)):
        place = _local(tmp_path / name)
        receipt = coldtier.open_archive(place.url, **split, **options).archive(TENANT, start, end, events)
        written[name] = receipt, place.objects()
    (receipt_a, objects_a), (receipt_b, objects_b) = written["a"], written["b"]
    parts = SPLIT_PARTS if split else 1
    assert len(objects_a) == len(objects_b) == parts

    # The settings took effect: the footers say so, and the objects of A and B are different bytes --
    # all of them, except, under a row_group_events change, a part no longer than B's row groups
    # (the split's last part of 100 events: one row group either way).
    for objects, wanted in ((objects_a, change.a_facts), (objects_b, change.b_facts)):
        for data in objects.values():
            facts = _writer_facts(data)
            assert {k: facts[k] for k in wanted} == dict(wanted)
    small = change.b.get("row_group_events", 0)
    for data in set(objects_a.values()) & set(objects_b.values()):
        rows = pq.read_metadata(pa.BufferReader(data)).num_rows
        assert rows <= small, f"settings A and B wrote identical bytes for an object of {rows} events"
    assert len(set(objects_a.values()) - set(objects_b.values())) >= (parts - 1 if small else parts)

    # ... and yet the objects are the same objects: same keys, same events.
    assert receipt_a.keys == receipt_b.keys, "the key depends on the writer settings, not only on the events"
    assert sorted(objects_a) == sorted(objects_b)


# ---------------------------------------------------------------------------
# 2: another pyarrow major version, in a second interpreter

# Run by the older interpreter: archive the batch into a root, read it back, verify, and say what it saw.
_OLD_SCRIPT = r"""
import hashlib, json, sys
import pyarrow, coldtier
from coldtier.testing import make_events, window_of

job = json.loads(sys.argv[1])
events = make_events(job["tenant"], job["count"], seed=job["seed"])
archive = coldtier.open_archive(job["root"], **job["options"])
receipt = archive.archive(job["tenant"], *window_of(events), events)
report = archive.verify()
print(json.dumps({
    "pyarrow": pyarrow.__version__,
    "coldtier": coldtier.__file__,
    "events_sha256": hashlib.sha256("\n".join(map(repr, events)).encode()).hexdigest(),
    "keys": list(receipt.keys),
    "created": receipt.created,
    "events": receipt.events,
    "read_rows": archive.read(job["tenant"]).num_rows,
    "verify_ok": report.ok,
    "problems": [str(p) for p in report.problems],
}))
"""


def _old_requirements() -> list[str]:
    """coldtier's base dependencies from pyproject.toml, with pyarrow pinned to the older major."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    others = [d for d in project["dependencies"] if not re.match(r"pyarrow\b", d.strip())]
    return [f"pyarrow=={OLD_PYARROW}", *others, "pytest>=8"]  # coldtier.testing imports pytest


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def _run(cmd: list[str], what: str, *, timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{what} failed: {exc}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {done.returncode}): {' '.join(map(str, cmd))}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}",
            pytrace=False,
        )
    return done


@dataclass(frozen=True)
class OldPython:
    executable: Path
    pyarrow: str


def _probe(python: Path) -> str | None:
    """The older interpreter's pyarrow version, if it imports pyarrow and this repository's coldtier."""
    if not python.exists():
        return None
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import coldtier, pyarrow, pytest; print(pyarrow.__version__, coldtier.__file__)",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_clean_env(PYTHONPATH=str(REPO / "src")),
    )
    if done.returncode != 0:
        return None
    version, where = done.stdout.split()
    return version if Path(where).resolve().is_relative_to(REPO / "src") else None


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """One builder of the shared venv at a time (parallel sessions or workers)."""
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def old_python(request: pytest.FixtureRequest) -> OldPython:
    """An interpreter with pyarrow 18 and this repository's coldtier, built once and reused."""
    wanted = {"requirements": _old_requirements(), "python": sys.version, "repo": str(REPO)}
    ready = OLD_VENV / ".coldtier-ready.json"
    python = OLD_VENV / "bin" / "python"
    with _exclusive(REPO / ".venv-pyarrow-old.lock"):
        version = None
        if ready.exists() and json.loads(ready.read_text()) == wanted:
            version = _probe(python)
        if version is None:
            began = time.monotonic()
            shutil.rmtree(OLD_VENV, ignore_errors=True)
            env = _clean_env()
            _run(
                [sys.executable, "-m", "venv", str(OLD_VENV)],
                "creating the older-pyarrow venv",
                timeout=300,
                env=env,
            )
            pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--quiet"]
            _run(
                [*pip, *wanted["requirements"]],
                f"installing {wanted['requirements']} into {OLD_VENV}",
                timeout=1200,
                env=env,
            )
            _run(
                [*pip, "--no-deps", "-e", str(REPO)],
                f"installing coldtier from {REPO} into {OLD_VENV}",
                timeout=600,
                env=env,
            )
            version = _probe(python)
            if version is None:
                pytest.fail(
                    f"{OLD_VENV} was built but cannot import pyarrow and {REPO / 'src'}/coldtier",
                    pytrace=False,
                )
            ready.write_text(json.dumps(wanted))
            capture = request.config.pluginmanager.getplugin("capturemanager")
            with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
                print(
                    f"\n[test_upgrade] built {OLD_VENV.name} (pyarrow {version}) "
                    f"in {time.monotonic() - began:.1f} s"
                )
    if int(version.split(".")[0]) != OLD_PYARROW_MAJOR:
        pytest.fail(f"{OLD_VENV} has pyarrow {version}, not {OLD_PYARROW}", pytrace=False)
    if version.split(".")[0] == pa.__version__.split(".")[0]:
        pytest.fail(
            f"this interpreter's pyarrow {pa.__version__} is the same major as the old one ({version}): "
            "the upgrade test would prove nothing",
            pytrace=False,
        )
    return OldPython(python, version)


def _archive_under_old(old: OldPython, root: Path, options: Mapping[str, Any]) -> dict[str, Any]:
    job = {"tenant": TENANT, "count": COUNT, "seed": SEED, "root": str(root), "options": dict(options)}
    done = _run(
        [str(old.executable), "-c", _OLD_SCRIPT, json.dumps(job)],
        f"archiving under pyarrow {old.pyarrow}",
        timeout=300,
        env=_clean_env(PYTHONPATH=str(REPO / "src")),
        cwd=str(root),
    )
    seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    # Same batch, other library: the input is identical and the interpreter really is the old one.
    assert seen["events_sha256"] == _events_sha256(_batch()), "the two interpreters built different batches"
    assert seen["pyarrow"] == old.pyarrow
    assert int(seen["pyarrow"].split(".")[0]) < int(pa.__version__.split(".")[0])
    assert Path(seen["coldtier"]).resolve().is_relative_to(REPO / "src")
    return seen


split_param = pytest.mark.parametrize("options", [{}, SPLIT], ids=["one-object", "split"])


@split_param
def test_the_older_pyarrow_really_writes_other_bytes_with_the_same_keys(
    old_python: OldPython, options: Mapping[str, Any], tmp_path: Path
) -> None:
    old_place, new_place = _local(tmp_path / "old"), _local(tmp_path / "new")
    old = _archive_under_old(old_python, Path(old_place.url), options)
    new = coldtier.open_archive(new_place.url, **options).archive(TENANT, *window_of(_batch()), _batch())
    old_objects, new_objects = old_place.objects(), new_place.objects()
    assert len(old_objects) == len(new_objects) == (SPLIT_PARTS if options else 1)
    assert {_writer_facts(d)["created_by"] for d in old_objects.values()} == {
        f"parquet-cpp-arrow version {old_python.pyarrow}"
    }
    assert {_writer_facts(d)["created_by"] for d in new_objects.values()} == {
        f"parquet-cpp-arrow version {pa.__version__}"
    }
    assert set(old_objects.values()).isdisjoint(new_objects.values()), (
        "both pyarrow versions wrote the same bytes"
    )
    assert tuple(old["keys"]) == new.keys, "the key depends on the pyarrow version, not only on the events"


@split_param
def test_a_batch_archived_under_an_older_pyarrow_settles_after_the_upgrade(
    old_python: OldPython, options: Mapping[str, Any], tmp_path: Path
) -> None:
    place = _local(tmp_path / "archive")
    parts = SPLIT_PARTS if options else 1
    old = _archive_under_old(old_python, Path(place.url), options)
    assert old["created"] is True and old["verify_ok"] and old["read_rows"] == COUNT
    before = place.objects()
    assert sorted(before) == sorted(old["keys"]) and len(before) == parts
    first = coldtier.Receipt(keys=tuple(old["keys"]), events=old["events"], bytes=0, created=True)
    first_read = coldtier.open_archive(place.url).read(TENANT)

    events = _batch()
    second = coldtier.open_archive(place.url, **options).archive(TENANT, *window_of(events), events)
    _assert_settled(place, first, second, before, first_read, parts)


@split_param
def test_a_batch_archived_under_the_current_pyarrow_settles_under_an_older_one(
    old_python: OldPython, options: Mapping[str, Any], tmp_path: Path
) -> None:
    """The reverse order: a rollback, or an older worker retrying a newer one's call."""
    place = _local(tmp_path / "archive")
    parts = SPLIT_PARTS if options else 1
    events = _batch()
    first = coldtier.open_archive(place.url, **options).archive(TENANT, *window_of(events), events)
    assert first.created is True and len(first.keys) == parts
    before = place.objects()
    first_read = coldtier.open_archive(place.url).read(TENANT)

    old = _archive_under_old(old_python, Path(place.url), options)
    # What the older interpreter saw of the archive, after its own call.
    assert old["read_rows"] == COUNT, f"pyarrow {old_python.pyarrow} reads {old['read_rows']} events"
    assert old["verify_ok"], old["problems"]
    second = coldtier.Receipt(keys=tuple(old["keys"]), events=old["events"], bytes=0, created=old["created"])
    _assert_settled(place, first, second, before, first_read, parts)
