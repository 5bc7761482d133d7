"""A hostile local root: what another user of a shared volume can plant under the archive directory.

A tenant or month directory replaced by a symlink to elsewhere, a symlinked
object, a FIFO or a device node where an object should be, a directory
where a file should be.  The local backend walks every path below the root
through ``O_NOFOLLOW`` directory descriptors and refuses what is not its own
(see ``coldtier/backends/local.py``), so for each case:

* ``archive`` raises ``ArchiveWriteError`` naming the entry, and nothing is
  written outside the root (the planted target is byte-for-byte unchanged);
* ``read`` raises ``ArchiveReadError`` naming it (never the events behind the
  link, never silently fewer); ``verify`` reports exactly the planted entry
  as a problem of its path (plus, where a receipt's objects are behind it,
  those objects as missing), never "ok", and verifies everything else: the
  other tenant and the tenant's other month are checked and their events
  counted;
* nothing hangs (each call runs under a 20 s bound; FIFOs are opened
  non-blocking and ``fstat``-ed before a byte is read).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import coldtier
from coldtier.testing._data import make_table
from tests._reliability import tally

BOUND = 20.0
AREA = "hostile local root (symlinks, FIFOs, devices)"


def bounded(call: Callable[[], Any]) -> Any:
    """``call()`` in a thread; fails the test if it takes longer than :data:`BOUND` (a hang)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"call still running after {BOUND} s (a hang)"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` and the SHA-256 of its bytes (or its kind)."""
    found = {}
    for path in sorted(directory.rglob("*")):
        mode = path.lstat().st_mode
        rel = str(path.relative_to(directory))
        found[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else oct(mode)
    return found


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Any]:
    """An archive root holding one stored batch of ``acme``, an outside directory, and a second batch."""
    root, outside = tmp_path / "archive", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    table = make_table(400, seed=5)
    ts = table.column("timestamp")
    window = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(str(root))
    receipt = archive.archive("acme", *window, table)
    (key,) = receipt.keys
    other = make_table(300, seed=6, start_us=1_709_251_200_000_000 + 10_000_000)
    ots = other.column("timestamp")
    other_window = ots[0].as_py().replace(tzinfo=UTC), ots[-1].as_py().replace(tzinfo=UTC)
    april = make_table(100, seed=7, start_us=APRIL_US)  # acme's other month
    archive.archive("acme", *_window_of(april), april)
    beta = make_table(50, seed=8)  # another tenant, same month
    archive.archive("beta", *_window_of(beta), beta)
    return {
        "root": root,
        "outside": outside,
        "archive": archive,
        "table": table,
        "window": window,
        "key": key,
        "other": other,
        "other_window": other_window,
    }


APRIL_US = 1_711_929_600_000_000  # 2024-04-01T00:00:00Z
APRIL_EVENTS, BETA_EVENTS = 100, 50
APRIL_START = datetime.fromtimestamp(APRIL_US / 1e6, UTC)


def _window_of(table: Any) -> tuple[Any, Any]:
    ts = table.column("timestamp")
    return ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)


def _move_out(world: dict[str, Any], rel: str) -> Path:
    """Move ``root/rel`` outside the root and leave a symlink to it in its place."""
    source = world["root"] / rel
    target = world["outside"] / source.name
    shutil.move(str(source), str(target))
    source.symlink_to(target)
    return target


def _refused(
    world: dict[str, Any],
    rel: str,
    kind: str,
    *,
    problems: list[tuple[str, str]],
    objects: int,
    events: int,
    directory: bool = False,
) -> int:
    """archive (this batch, another), read, events and verify with ``rel`` planted; the clear errors raised."""
    archive, name = world["archive"], rel.rsplit("/", 1)[-1]
    before = snapshot(world["outside"])
    errors = 0
    with pytest.raises(coldtier.ArchiveWriteError) as written:
        bounded(lambda: archive.archive("acme", *world["window"], world["table"]))
    assert name in str(written.value) and kind in str(written.value), written.value
    errors += 1
    if directory:  # the path to any object of acme's month crosses the link: refused too
        with pytest.raises(coldtier.ArchiveWriteError):
            bounded(lambda: archive.archive("acme", *world["other_window"], world["other"]))
        errors += 1
    else:  # another object of the same directory is written beside it, inside the root
        receipt = bounded(lambda: archive.archive("acme", *world["other_window"], world["other"]))
        assert all((world["root"] / key).is_file() for key in receipt.keys)
    assert snapshot(world["outside"]) == before, "archive wrote outside the root"
    with pytest.raises(coldtier.ArchiveReadError) as read:
        bounded(lambda: archive.read("acme", *world["window"]))
    assert name in str(read.value) and kind in str(read.value), read.value
    errors += 1
    with pytest.raises(coldtier.ArchiveReadError):
        bounded(lambda: list(archive.events("acme", *world["window"])))
    errors += 1
    # verify reports the entry (never follows or opens it) and checks everything else
    report = bounded(lambda: archive.verify())
    assert not report.ok
    got = [p.key for p in report.problems]
    assert got == [key for key, _ in problems], report.problems
    for found, (_, fragment) in zip(report.problems, problems, strict=True):
        assert fragment in found.message, report.problems
    assert (report.objects, report.events) == (objects, events), report
    errors += 1
    beta = bounded(lambda: archive.verify("beta"))
    assert beta.ok and (beta.objects, beta.events) == (1, BETA_EVENTS), beta
    assert bounded(lambda: archive.read("beta")).num_rows == BETA_EVENTS
    assert snapshot(world["outside"]) == before, "a read or verify changed the outside"
    return errors


CASES_NOTE = (
    "tenant dir -> symlink, month dir -> symlink, object -> symlink, FIFO, character device and "
    "directory in an object's place, a file in a month's and a tenant's place, a symlink beside the "
    "tenants; each: archive refused and nothing written outside, read/events refused naming it, "
    "verify reports exactly it as a problem and verifies the other tenant and month (counted)"
)


def _record(errors: int) -> None:
    tally(AREA, "local", "cases: " + CASES_NOTE, trials=1, inputs=1, errors_raised=errors)


LINK, SPECIAL = "a symbolic link (not followed), where", "(not opened), where an object should be"
#: The batch archived beside a planted object, acme's April and beta: verified, counted.
BESIDE = (3, 300 + APRIL_EVENTS + BETA_EVENTS)


def test_tenant_directory_symlinked_outside(world: dict[str, Any]) -> None:
    _move_out(world, "acme")
    found = [("acme", f"{LINK} a tenant directory should be")]
    _record(
        _refused(
            world, "acme", "symbolic link", problems=found, objects=1, events=BETA_EVENTS, directory=True
        )
    )
    alone = bounded(lambda: world["archive"].verify("acme"))  # its own listing is refused: a problem too
    assert alone.problems[0] == coldtier.Problem(
        "acme", "a symbolic link (not followed), where a directory should be"
    )
    # acme's ledger is still checked: its recorded objects (March's, April's) are not in the root
    assert [p.message.split(":")[0] for p in alone.problems[1:]] == ["missing", "missing"], alone.problems
    assert (alone.objects, alone.events) == (0, 0)


def test_month_directory_symlinked_outside(world: dict[str, Any]) -> None:
    month = world["key"].split("/")[1]
    _move_out(world, f"acme/{month}")
    found = [(f"acme/{month}", f"{LINK} a month directory should be"), (world["key"], "missing: receipt")]
    events = APRIL_EVENTS + BETA_EVENTS  # the month's object is outside: recorded, so reported missing
    _record(
        _refused(
            world, f"acme/{month}", "symbolic link", problems=found, objects=2, events=events, directory=True
        )
    )


def test_object_symlinked_outside(world: dict[str, Any]) -> None:
    _move_out(world, world["key"])  # the link points at a whole, valid object: still refused, never counted
    found = [(world["key"], f"{LINK} an object should be")]
    _record(
        _refused(world, world["key"], "symbolic link", problems=found, objects=BESIDE[0], events=BESIDE[1])
    )
    assert bounded(lambda: world["archive"].read("acme", APRIL_START)).num_rows == APRIL_EVENTS


def test_fifo_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    os.mkfifo(path)
    found = [(world["key"], f"a FIFO {SPECIAL}")]
    _record(_refused(world, world["key"], "FIFO", problems=found, objects=BESIDE[0], events=BESIDE[1]))


def test_device_node_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: a read would never end
    found = [(world["key"], f"a character device {SPECIAL}")]
    _record(
        _refused(world, world["key"], "character device", problems=found, objects=BESIDE[0], events=BESIDE[1])
    )


def test_directory_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    path.mkdir()
    (path / "inner.parquet").write_bytes(b"not an object")
    found = [(world["key"], "a directory, where an object should be")]
    _record(_refused(world, world["key"], "a directory", problems=found, objects=BESIDE[0], events=BESIDE[1]))


def test_file_in_place_of_a_month_and_of_a_tenant_directory(world: dict[str, Any]) -> None:
    archive, root = world["archive"], world["root"]
    (april_key,) = [o.key for o in archive.objects("acme", APRIL_START)]
    shutil.rmtree(root / "acme/2024-04")
    (root / "acme/2024-04").write_bytes(b"planted")
    report = bounded(lambda: archive.verify())
    assert [(p.key, p.message.split(":")[0]) for p in report.problems] == [
        ("acme/2024-04", "a file, where a month directory should be"),
        (april_key, "missing"),  # its receipt records it
    ], report.problems
    assert (report.objects, report.events) == (2, 400 + BETA_EVENTS), report
    with pytest.raises(coldtier.ArchiveReadError, match="acme/2024-04: a file"):
        bounded(lambda: archive.read("acme"))
    assert bounded(lambda: archive.read("acme", *world["window"])).num_rows == 400  # March alone: no April
    (beta_key,) = [o.key for o in archive.objects("beta")]
    shutil.rmtree(root / "beta")
    (root / "beta").write_bytes(b"planted")
    alone = bounded(lambda: archive.verify("beta"))
    assert [(p.key, p.message.split(":")[0]) for p in alone.problems] == [
        ("beta", "a regular file, where a directory should be"),
        (beta_key, "missing"),
    ], alone.problems
    with pytest.raises(coldtier.ArchiveReadError, match="beta"):
        bounded(lambda: archive.read("beta"))
    _record(3)


def test_other_tenants_stay_readable_but_the_top_listing_names_the_link(world: dict[str, Any]) -> None:
    """A link beside the tenants: `tenants()` raises naming it; verify reports it and checks every tenant."""
    archive = world["archive"]
    (world["root"] / "evil").symlink_to(world["outside"])
    assert archive.read("acme", *world["window"]).num_rows == 400
    assert archive.verify("beta").problems == ()
    with pytest.raises(coldtier.ArchiveReadError, match="evil"):
        archive.tenants()
    report = bounded(lambda: archive.verify())
    assert [(p.key, p.message) for p in report.problems] == [
        ("evil", f"{LINK} a tenant directory should be")
    ], report.problems
    assert (report.objects, report.events) == (3, 400 + APRIL_EVENTS + BETA_EVENTS), report
    _record(2)


def test_link_in_the_ledger_is_reported_and_the_objects_still_verified(world: dict[str, Any]) -> None:
    """A receipt month of the ledger replaced by a link: a problem of the link; every object still checked."""
    archive, root = world["archive"], world["root"]
    ledger = root / "_coldtier~ledger" / "acme" / "2024-03"
    assert ledger.is_dir()
    _move_out(world, "_coldtier~ledger/acme/2024-03")
    report = bounded(lambda: archive.verify())
    assert [(p.key, p.message) for p in report.problems] == [
        ("_coldtier~ledger/acme/2024-03", "a symbolic link (not followed)")
    ], report.problems
    assert (report.objects, report.events) == (3, 400 + APRIL_EVENTS + BETA_EVENTS), report
    _record(1)
