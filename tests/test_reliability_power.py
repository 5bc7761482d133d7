"""Power loss on the local backend, proved from the writer's system calls.

A SIGKILL keeps the page cache; a power cut loses whatever was not fsynced.
A writer process (``tests/crash_writer.py``) archives one batch of 12 objects
in two months into a root that does not exist yet, under ``strace -f``.
From the trace:

* the ordering checks: each object's data is fsynced before it is linked
  under its final name; its directory is fsynced after the link and before
  ``archive()`` returns; every directory created on the way (the root
  included) is fsynced into its parent before ``archive()`` returns;
* ALICE/CrashMonkey-style crash states: at every crash point (after each
  recorded operation under the root) the states POSIX allows are built — a
  directory entry added or removed after the directory's last fsync may be
  lost, bytes written after a file's last fsync may be lost or read as zeros
  — as the worst case (everything unsynced lost) and random subsets.  Each
  is materialised in a fresh directory, where every object under a final
  name must hash to its name, ``verify`` must be clean, after ``archive()``
  returned every object of its receipt must be there, and a retry must
  store every event exactly once.

A control replays the same trace without the directory fsyncs (objects lost
after ``archive()`` returned) and without the data fsyncs (partial objects
under final names), so the model is shown to catch what it is for.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import pyarrow as pa
import pytest
from fsspec.implementations.local import LocalFileSystem

import coldtier
from coldtier.testing import FsspecBackdoor
from coldtier.testing._data import make_table
from tests._reliability import check_store, tally, timed

ROOT = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace") or "/usr/bin/strace"
ROWS = 3_000
OBJECT_EVENTS = 250  # 12 objects
#: 1.5 s before 2024-03-01: the batch spans February and March (two month directories).
START_US = 1_709_251_200_000_000 - 1_500_000
SYSCALLS = (
    "open,openat,creat,write,pwrite64,writev,fsync,fdatasync,link,linkat,rename,renameat,renameat2,"
    "unlink,unlinkat,mkdir,mkdirat,rmdir,truncate,ftruncate,symlink,symlinkat"
)
#: Random POSIX-allowed states per crash point, besides the worst case.
RANDOM_STATES = 1
#: Every state is judged (final names whole, verify clean, acknowledged objects kept);
#: every RETRY_EVERY-th, and every state after archive() returned, is also retried.
RETRY_EVERY = int(os.environ.get("COLDTIER_POWER_RETRY_EVERY", "5"))
pytestmark = pytest.mark.crash
AREA = "power loss: crash states from the writer's syscalls"

_LINE = re.compile(r"^(\d+) +(\w+)\((.*)\) += (-?\d+)(?:<(.*?)>)?")
_FD = re.compile(r"(?:AT_FDCWD|-?\d+)<([^>]*)>")
_STR = re.compile(r'"((?:[^"\\]|\\.)*)"')


# -- the trace ----------------------------------------------------------------


@dataclass
class Op:
    """One recorded operation under the traced base directory, in completion order."""

    kind: str  # mkdir create write fsync_file fsync_dir link unlink returned
    parent: str = ""  # directory of an entry operation
    name: str = ""
    inode: str = ""  # a file: the path it was created under
    nbytes: int = 0
    seq: int = 0  # line of the call's start in the trace


@dataclass
class Trace:
    ops: list[Op] = field(default_factory=list)
    final_of: dict[str, str] = field(default_factory=dict)  # inode -> path of its final link


def _merge_unfinished(lines: list[str]) -> list[tuple[int, str]]:
    """Join ``<unfinished ...>`` / ``<... resumed>`` halves; each call at its completion, with its start line."""
    pending: dict[str, tuple[int, str]] = {}
    out: list[tuple[int, str]] = []
    for number, line in enumerate(lines):
        pid = line.split(" ", 1)[0]
        if line.endswith("<unfinished ...>"):
            pending[pid] = (number, line[: -len("<unfinished ...>")].rstrip())
            continue
        m = re.match(r"^(\d+) +<\.\.\. \w+ resumed>(.*)$", line)
        if m:
            start, head = pending.pop(pid, (number, ""))
            out.append((start, head + m[2]))
            continue
        out.append((number, line))
    return out


def parse(text: str, base: str) -> Trace:
    """The operations under ``base``, in the order they completed."""
    trace = Trace()
    live: dict[str, str] = {}  # path -> inode of files under base
    dirs: set[str] = set()
    under = base.rstrip("/") + "/"

    def at(fd_path: str, name: str) -> str:
        return name if name.startswith("/") else os.path.normpath(os.path.join(fd_path, name))

    for seq, line in _merge_unfinished(text.splitlines()):
        m = _LINE.match(line)
        if m is None:
            continue
        call, args, result = m[2], m[3], int(m[4])
        fds, strs = _FD.findall(args), _STR.findall(args)
        if call == "write" and args.startswith("1<") and strs and strs[0].startswith("done"):
            trace.ops.append(Op("returned", seq=seq))
            continue
        if result < 0:
            continue
        if call in ("mkdir", "mkdirat"):
            path = at(fds[0], strs[0]) if call == "mkdirat" else strs[0]
            if path.startswith(under):
                dirs.add(path)
                trace.ops.append(Op("mkdir", os.path.dirname(path), os.path.basename(path), seq=seq))
        elif call in ("open", "openat", "creat"):
            path = at(fds[0], strs[0]) if call == "openat" else strs[0]
            if path.startswith(under) and ("O_CREAT" in args or call == "creat") and path not in live:
                live[path] = path
                trace.ops.append(Op("create", os.path.dirname(path), os.path.basename(path), path, seq=seq))
        elif call in ("write", "pwrite64", "writev"):
            path = fds[0] if fds else ""
            if path in live:
                trace.ops.append(Op("write", inode=live[path], nbytes=result, seq=seq))
            elif path.startswith(under):
                raise AssertionError(f"write to {path} not created in the trace: {line}")
        elif call in ("fsync", "fdatasync"):
            path = fds[0] if fds else ""
            if path in live:
                trace.ops.append(Op("fsync_file", inode=live[path], seq=seq))
            elif path in dirs or path == base or (path.startswith(under) and os.path.isdir(path)):
                trace.ops.append(Op("fsync_dir", parent=path, seq=seq))
        elif call in ("link", "linkat"):
            src, dst = (at(fds[0], strs[0]), at(fds[1], strs[1])) if call == "linkat" else strs[:2]
            if dst.startswith(under):
                inode = live[src]
                live[dst] = inode
                trace.final_of.setdefault(inode, dst)
                trace.ops.append(Op("link", os.path.dirname(dst), os.path.basename(dst), inode, seq=seq))
        elif call in ("unlink", "unlinkat"):
            path = at(fds[0], strs[0]) if call == "unlinkat" else strs[0]
            if path.startswith(under):
                live.pop(path, None)
                trace.ops.append(Op("unlink", os.path.dirname(path), os.path.basename(path), seq=seq))
        elif call.startswith("rename") or call in ("rmdir", "symlink", "symlinkat", "truncate", "ftruncate"):  # noqa: SIM102
            if any(p.startswith(under) for p in [*fds, *strs]):
                raise AssertionError(f"the model does not cover {call} under the root: {line}")
    return trace


# -- the ordering the trace must show ------------------------------------------


def ordering_problems(trace: Trace, root: str) -> list[str]:
    """Every breach of: data fsynced before the link; directory (and new parents) fsynced before return."""
    ops = trace.ops
    returned = next((i for i, op in enumerate(ops) if op.kind == "returned"), None)
    if returned is None:
        return ["archive() never returned"]
    problems = []
    for i, op in enumerate(ops[:returned]):
        if op.kind == "link" and op.name.startswith("archive."):
            last_write = max(
                (j for j in range(i) if ops[j].kind == "write" and ops[j].inode == op.inode), default=-1
            )
            synced = any(
                ops[j].kind == "fsync_file" and ops[j].inode == op.inode and ops[j].seq < op.seq
                for j in range(last_write + 1, i)
            )
            if not synced:
                problems.append(f"{op.name}: linked before its data was fsynced")
        synced_in = any(o.kind == "fsync_dir" and o.parent == op.parent for o in ops[i + 1 : returned])
        if op.kind in ("link", "mkdir") and not synced_in:
            what = "entry" if op.kind == "link" else "new directory"
            problems.append(f"{op.parent}/{op.name}: {what} not fsynced into its directory before return")
    if not any(op.kind == "mkdir" and os.path.join(op.parent, op.name) == root for op in ops):
        problems.append(f"{root} was not created by the writer (the test means it to be)")
    return problems


# -- crash states ----------------------------------------------------------------


@dataclass
class State:
    point: int
    variant: str
    entries: dict[str, dict[str, tuple[str, str]]]  # dir -> name -> ("dir", path) | ("file", inode)
    lengths: dict[str, tuple[int, int, bool]]  # inode -> (bytes kept, bytes synced, zeros past synced)
    returned: bool


def crash_state(
    trace: Trace, point: int, variant: str, rng: random.Random, *, drop: frozenset[str] = frozenset()
) -> State:
    """The disk after a power cut following ``ops[:point]``: synced operations kept, the others per ``variant``.

    ``variant``: ``"worst"`` (everything unsynced lost) or ``"random"`` (each
    unsynced entry operation kept or lost, unsynced bytes cut at a random length).
    ``drop`` removes kinds of operation (``fsync_dir``, ``fsync_file``) for the control.
    """
    ops = [op for op in trace.ops[:point] if op.kind not in drop]
    last_dir_sync: dict[str, int] = {}
    written: dict[str, int] = {}
    synced: dict[str, int] = {}
    for i, op in enumerate(ops):
        if op.kind == "fsync_dir":
            last_dir_sync[op.parent] = i
        elif op.kind == "write":
            written[op.inode] = written.get(op.inode, 0) + op.nbytes
        elif op.kind == "fsync_file":
            synced[op.inode] = written.get(op.inode, 0)
    entries: dict[str, dict[str, tuple[str, str]]] = {}
    for i, op in enumerate(ops):
        if op.kind not in ("mkdir", "create", "link", "unlink"):
            continue
        durable = i < last_dir_sync.get(op.parent, -1)
        if not durable and (variant == "worst" or rng.random() < 0.5):
            continue  # this entry operation did not reach the disk
        names = entries.setdefault(op.parent, {})
        if op.kind == "mkdir":
            names[op.name] = ("dir", os.path.join(op.parent, op.name))
        elif op.kind in ("create", "link"):
            names[op.name] = ("file", op.inode)
        else:
            names.pop(op.name, None)
    lengths = {}
    for inode, total in written.items():
        kept = synced.get(inode, 0)
        if variant == "random" and total > kept:
            kept = rng.randint(kept, total)
        lengths[inode] = (kept, synced.get(inode, 0), variant == "random" and rng.random() < 0.5)
    returned = any(op.kind == "returned" for op in trace.ops[:point])
    return State(point, variant, entries, lengths, returned)


def materialise(state: State, base: str, target: Path, content: dict[str, bytes]) -> None:
    """Build the state's tree under ``target`` (which stands for ``base``)."""

    def build(directory: str, into: Path) -> None:
        for name, (kind, what) in state.entries.get(directory, {}).items():
            if kind == "dir":
                (into / name).mkdir()
                build(what, into / name)
            else:
                kept, synced, zeros = state.lengths.get(what, (0, 0, False))
                data = content[what][:kept]
                if zeros:
                    data = data[:synced] + bytes(len(data) - synced)
                (into / name).write_bytes(data)

    target.mkdir()
    build(base, target)


# -- the test -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One traced archive call: its trace, receipt, batch and the stored bytes of every inode."""
    assert os.path.exists(STRACE), "strace is needed (Debian: apt-get install strace; .ci/run installs it)"
    work = tmp_path_factory.mktemp("power")
    table = make_table(ROWS, start_us=START_US, seed=17)
    batch = work / "batch.arrow"
    with pa.OSFile(str(batch), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    base = (work / "disk").resolve()
    base.mkdir()
    root = base / "archive"  # does not exist yet: the writer creates it
    trace_file = work / "trace.txt"
    env = {**os.environ, "COLDTIER_WRITER_OPTIONS": json.dumps({"object_events": OBJECT_EVENTS})}
    argv = [STRACE, "-f", "-qq", "-yy", "-s", "8", "-e", f"trace={SYSCALLS}", "-o", str(trace_file)]
    argv += [sys.executable, "-m", "tests.crash_writer", str(root), str(batch), "acme"]
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = [line for line in proc.stdout.splitlines() if line.startswith("done ")]
    receipt = json.loads(done[-1][5:])
    trace = parse(trace_file.read_text(), str(base))
    content = {}
    for op in trace.ops:
        if op.kind == "create":
            final = trace.final_of.get(op.inode)
            size = sum(o.nbytes for o in trace.ops if o.kind == "write" and o.inode == op.inode)
            content[op.inode] = Path(final).read_bytes() if final else random.Random(op.inode).randbytes(size)
    return {
        "trace": trace,
        "receipt": receipt,
        "table": table,
        "base": str(base),
        "root": str(root),
        "content": content,
    }


def test_writer_syscalls_order_data_link_and_directory_fsyncs(traced: dict[str, object]) -> None:
    trace = traced["trace"]
    assert isinstance(trace, Trace)
    objects = [op for op in trace.ops if op.kind == "link" and op.name.startswith("archive.")]
    links = [op for op in objects if op.name.endswith(".parquet")]  # not the ledger's receipt
    receipt = traced["receipt"]
    assert isinstance(receipt, dict)
    assert sorted(
        os.path.relpath(os.path.join(op.parent, op.name), str(traced["root"])) for op in links
    ) == sorted(receipt["keys"])
    assert len(links) == ROWS // OBJECT_EVENTS
    assert {op.parent for op in links} == {f"{traced['root']}/acme/2024-02", f"{traced['root']}/acme/2024-03"}
    assert ordering_problems(trace, str(traced["root"])) == []
    tally(
        "power loss: syscall ordering (strace)",
        "local",
        "objects of one archive call checked: data fsync before link, directory fsync before return, "
        "new directories (root included) fsynced into their parents",
        trials=1,
        inputs=len(links),
        events_checked=ROWS,
    )


def _check_state(
    state: State, traced: dict[str, object], target: Path, *, retry: bool
) -> tuple[int, int, int]:
    """Materialise, judge, and (if ``retry``) retry; (events lost, partial objects, events checked)."""
    base, root = str(traced["base"]), Path(str(traced["root"]))
    content = traced["content"]
    table = traced["table"]
    receipt = traced["receipt"]
    assert isinstance(content, dict) and isinstance(table, pa.Table) and isinstance(receipt, dict)
    materialise(state, base, target, content)
    here = target / root.relative_to(base)
    where = f"crash point {state.point} ({state.variant})"
    lost = partial = 0
    if here.is_dir():
        check = check_store(FsspecBackdoor(LocalFileSystem(), here.as_posix()))
        partial += len(check.partial)
        assert not check.partial, f"{where}: partial objects under final names {check.partial}"
        assert not set(check.other) - set(check.temp), f"{where}: unexpected files {check.other}"
        if state.returned:
            missing = set(receipt["keys"]) - set(check.final)
            lost += len(missing) * OBJECT_EVENTS
            assert not missing, f"{where}: acknowledged objects lost by a power cut: {sorted(missing)}"
        report = coldtier.open_archive(str(here)).verify()
        assert report.problems == (), f"{where}: {report.problems}"
    else:
        assert not state.returned, f"{where}: the root itself was lost after archive() returned"
    if not retry:
        return lost, partial, 0
    ts = table.column("timestamp")
    start, end = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(str(here), object_events=OBJECT_EVENTS)
    retry = archive.archive("acme", start, end, table)
    assert sorted(retry.keys) == sorted(receipt["keys"]), where
    got = archive.read("acme", start, end).column("event_id").to_pylist()
    lost += len(set(table.column("event_id").to_pylist()) - set(got))
    assert len(got) == len(set(got)) == ROWS, f"{where}: {len(got)} events read, {len(set(got))} distinct"
    assert sorted(got) == sorted(table.column("event_id").to_pylist()), where
    assert archive.verify().problems == (), where
    final = check_store(FsspecBackdoor(LocalFileSystem(), here.as_posix()))
    assert sorted(final.final) == sorted(receipt["keys"]) and not final.partial, where
    return lost, partial, len(got)


def test_every_posix_crash_state_verifies_clean_and_a_retry_stores_each_event_once(
    traced: dict[str, object], tmp_path: Path
) -> None:
    trace = traced["trace"]
    assert isinstance(trace, Trace)
    rng = random.Random(1717)
    points = range(1, len(trace.ops) + 1)
    checked = lost = partial = events = retried = 0
    with timed(AREA, "local"):
        for point in points:
            for variant in ["worst"] + ["random"] * RANDOM_STATES:
                state = crash_state(trace, point, variant, rng)
                retry = checked % RETRY_EVERY == 0 or state.returned
                state_lost, state_partial, state_events = _check_state(
                    state, traced, tmp_path / f"s{checked}", retry=retry
                )
                retried += retry
                lost, partial, events = lost + state_lost, partial + state_partial, events + state_events
                checked += 1
                shutil.rmtree(tmp_path / f"s{checked - 1}")
    after_return = sum(1 for op in trace.ops if op.kind == "returned")
    tally(
        AREA,
        "local",
        f"{checked} crash states at {len(points)} crash points (every operation under the root of one "
        f"{ROWS // OBJECT_EVENTS}-object archive call; worst case and {RANDOM_STATES} random subset each): "
        f"verify clean, no partial object, acknowledged objects kept; {retried} of them retried: each event "
        "stored once",
        trials=checked,
        faults=checked,
        events_checked=events,
        events_lost=lost,
        partial_objects=partial,
    )
    assert checked >= 2 * 40 and after_return == 1


def test_the_model_catches_missing_fsyncs(traced: dict[str, object], tmp_path: Path) -> None:
    """Control: the same trace without directory fsyncs loses objects, without data fsyncs leaves partial ones."""
    trace = traced["trace"]
    assert isinstance(trace, Trace)
    base, root = str(traced["base"]), Path(str(traced["root"]))
    receipt = traced["receipt"]
    assert isinstance(receipt, dict)
    end = len(trace.ops)
    rng = random.Random(0)
    no_dir_sync = crash_state(trace, end, "worst", rng, drop=frozenset({"fsync_dir"}))
    materialise(no_dir_sync, base, tmp_path / "a", traced["content"])  # type: ignore[arg-type]
    kept = tmp_path / "a" / root.relative_to(base)
    stored = check_store(FsspecBackdoor(LocalFileSystem(), kept.as_posix())).final if kept.is_dir() else []
    assert set(receipt["keys"]) - set(stored), "without directory fsyncs the model should lose objects"
    no_data_sync = crash_state(trace, end, "random", random.Random(3), drop=frozenset({"fsync_file"}))
    no_data_sync.entries = crash_state(trace, end, "worst", rng).entries  # the entries as synced
    materialise(no_data_sync, base, tmp_path / "b", traced["content"])  # type: ignore[arg-type]
    check = check_store(
        FsspecBackdoor(LocalFileSystem(), (tmp_path / "b" / root.relative_to(base)).as_posix())
    )
    assert check.partial, "without data fsyncs the model should leave partial objects under final names"
    tally(AREA, "local", inputs=2)
