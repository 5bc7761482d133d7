"""Shared pieces of the reliability suite: storage checks and the figures file.

Every reliability test counts what it did (trials, faults injected, inputs
tried, events checked) and what it found (events lost, partial objects seen)
with :func:`tally`.  The counts go to ``.reliability/last-run.json`` (or the
file named by ``COLDTIER_RELIABILITY_JSON``); ``python -m tests.reliability_report``
turns them into the table in ``RELIABILITY.md``.  Each (area, backend) row is
replaced by the run that last exercised it, so running one file refreshes only
its rows.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from coldtier import SCHEMA
from coldtier._digest import logical_digest

__all__ = [
    "FIGURES_PATH",
    "FINAL_KEY_RE",
    "COUNTERS",
    "StoreCheck",
    "check_store",
    "tally",
    "timed",
]

FIGURES_PATH = Path(
    os.environ.get("COLDTIER_RELIABILITY_JSON")
    or Path(__file__).resolve().parents[1] / ".reliability" / "last-run.json"
)
#: The counters a row may carry, in table order.
COUNTERS = (
    "trials",
    "faults",
    "inputs",
    "events_checked",
    "errors_raised",
    "events_lost",
    "partial_objects",
    "seconds",
)
#: A final object key: ``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet``.
FINAL_KEY_RE = re.compile(
    r"(?:.*/)?(?P<tenant>[A-Za-z0-9._-]+)/\d{4}-\d\d/archive\.(?P=tenant)\."
    r"\d{4}-\d\d-\d\dT\d{6}Z-\d{4}-\d\d-\d\dT\d{6}Z\.(?P<digest>[0-9a-f]{16})\.parquet"
)
_RUN = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "pid": os.getpid()}
_lock = threading.Lock()
_figures: dict[tuple[str, str], dict[str, float]] = {}
_notes: dict[tuple[str, str], str] = {}


def tally(area: str, backend: str, note: str | None = None, **counts: float) -> None:
    """Add ``counts`` to the row ``(area, backend)`` of this run and save the file."""
    unknown = set(counts) - set(COUNTERS)
    assert not unknown, f"unknown counters {unknown}"
    with _lock:
        row = _figures.setdefault((area, backend), dict.fromkeys(COUNTERS, 0))
        for name, value in counts.items():
            row[name] += value
        if note:
            _notes[(area, backend)] = note
        _save()


@contextlib.contextmanager
def timed(area: str, backend: str) -> Iterator[None]:
    """Add the wall-clock time of the block to the row's ``seconds``."""
    began = time.monotonic()
    try:
        yield
    finally:
        tally(area, backend, seconds=round(time.monotonic() - began, 2))


def _save() -> None:
    try:
        old = json.loads(FIGURES_PATH.read_text())
    except (OSError, ValueError):
        old = {}
    rows = {(r["area"], r["backend"]): r for r in old.get("rows", []) if isinstance(r, dict)}
    for (area, backend), counts in _figures.items():
        rows[(area, backend)] = {
            "area": area,
            "backend": backend,
            "run": _RUN["started"],
            "note": _notes.get((area, backend), rows.get((area, backend), {}).get("note", "")),
            **{k: round(v, 2) if isinstance(v, float) else v for k, v in counts.items()},
        }
    FIGURES_PATH.parent.mkdir(parents=True, exist_ok=True)
    temp = FIGURES_PATH.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text(
        json.dumps({"rows": sorted(rows.values(), key=lambda r: (r["area"], r["backend"]))}, indent=1)
    )
    os.replace(temp, FIGURES_PATH)


class Backdoor(Protocol):
    def list_keys(self) -> list[str]: ...

    def get(self, key: str) -> bytes: ...


@dataclass
class StoreCheck:
    """What is physically stored, seen through a backdoor."""

    final: list[str] = field(default_factory=list)  # keys that look like archive objects
    partial: list[str] = field(default_factory=list)  # final keys whose bytes do not hash to the name
    other: list[str] = field(default_factory=list)  # anything else (temp files, canaries)

    @property
    def temp(self) -> list[str]:
        return [k for k in self.other if "/.~coldtier." in f"/{k}"]


def check_store(backdoor: Backdoor, ignore_prefix: str = "_coldtier~") -> StoreCheck:
    """Check every object under a final key against the digest in its name.

    Format 2: the object must decode (pyarrow, outside coldtier's read path)
    and its events must have the logical digest its name starts with.
    """
    check = StoreCheck()
    for key in backdoor.list_keys():
        if key.startswith(ignore_prefix):
            check.other.append(key)
            continue
        m = FINAL_KEY_RE.fullmatch(key)
        if m is None:
            check.other.append(key)
            continue
        check.final.append(key)
        if _events_digest(backdoor.get(key)) != m["digest"]:
            check.partial.append(key)
    return check


def _events_digest(data: bytes) -> str | None:
    """The first 16 digits of the logical digest of an object's events; None if it does not decode."""
    try:
        table = pq.read_table(pa.BufferReader(data), use_threads=False)
        return logical_digest(table.select(list(SCHEMA.names)).cast(SCHEMA))[:16]
    except (pa.ArrowException, OSError, ValueError):
        return None
