"""A hostile local root: what another user of a shared volume can plant under the archive directory.

A tenant or month directory replaced by a symlink to elsewhere, a symlinked
object, a FIFO or a device node where an object should be, a directory
where a file should be.  The local backend walks every path below the root
through ``O_NOFOLLOW`` directory descriptors and refuses what is not its own
(see ``coldtier/backends/local.py``), so for each case:

* ``archive`` raises ``ArchiveWriteError`` naming the entry, and nothing is
  written outside the root (the planted target is byte-for-byte unchanged);
* ``read`` raises ``ArchiveReadError`` naming it (never the events behind the
  link, never silently fewer), and ``verify`` reports it — as a problem of
  the object, or by raising on the listing — never "ok";
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
from datetime import UTC
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


def _move_out(world: dict[str, Any], rel: str) -> Path:
    """Move ``root/rel`` outside the root and leave a symlink to it in its place."""
    source = world["root"] / rel
    target = world["outside"] / source.name
    shutil.move(str(source), str(target))
    source.symlink_to(target)
    return target


def _refused(
    world: dict[str, Any], rel: str, kind: str, *, verify_lists: bool, directory: bool = False
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
    if verify_lists:  # the listing meets the entry: verify cannot list, and says why
        with pytest.raises(coldtier.ArchiveReadError) as verified:
            bounded(lambda: archive.verify())
        assert name in str(verified.value), verified.value
    else:  # the object is listed: verify reports it
        report = bounded(lambda: archive.verify())
        assert [p.key for p in report.problems] == [world["key"]], report.problems
        assert kind in report.problems[0].message, report.problems
    errors += 1
    assert snapshot(world["outside"]) == before, "a read or verify changed the outside"
    return errors


CASES_NOTE = (
    "tenant dir -> symlink, month dir -> symlink, object -> symlink, FIFO, character device and "
    "directory in an object's place, symlinked root's tenant on the top listing; "
    "each: archive refused and nothing written outside, read/events refused naming it, verify reports it"
)


def _record(errors: int) -> None:
    tally(AREA, "local", "cases: " + CASES_NOTE, trials=1, inputs=1, errors_raised=errors)


def test_tenant_directory_symlinked_outside(world: dict[str, Any]) -> None:
    _move_out(world, "acme")
    _record(_refused(world, "acme", "symbolic link", verify_lists=True, directory=True))


def test_month_directory_symlinked_outside(world: dict[str, Any]) -> None:
    month = world["key"].split("/")[1]
    _move_out(world, f"acme/{month}")
    _record(_refused(world, f"acme/{month}", "symbolic link", verify_lists=True, directory=True))


def test_object_symlinked_outside(world: dict[str, Any]) -> None:
    _move_out(world, world["key"])  # the link points at a whole, valid object: still refused
    _record(_refused(world, world["key"], "symbolic link", verify_lists=True))


def test_fifo_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    os.mkfifo(path)
    _record(_refused(world, world["key"], "FIFO", verify_lists=False))


def test_device_node_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: a read would never end
    _record(_refused(world, world["key"], "character device", verify_lists=False))


def test_directory_in_place_of_an_object(world: dict[str, Any]) -> None:
    path = world["root"] / world["key"]
    path.unlink()
    path.mkdir()
    (path / "inner.parquet").write_bytes(b"not an object")
    _record(_refused(world, world["key"], "a directory", verify_lists=False))


def test_other_tenants_stay_readable_but_the_top_listing_names_the_link(world: dict[str, Any]) -> None:
    """A planted link under one tenant stops only what has to list it: that tenant and the whole-archive calls."""
    archive = world["archive"]
    archive.archive("beta", *world["other_window"], world["other"].slice(0, 50))
    (world["root"] / "evil").symlink_to(world["outside"])
    assert archive.read("acme", *world["window"]).num_rows == 400
    assert archive.verify("beta").problems == ()
    with pytest.raises(coldtier.ArchiveReadError, match="evil"):
        archive.tenants()
    with pytest.raises(coldtier.ArchiveReadError, match="evil"):
        archive.verify()
    _record(2)
