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
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

# The storage checks are the shipped test kit's, so that these files and its suites judge alike.
from coldtier.testing._checks import FINAL_KEY_RE, StoreCheck, check_store

__all__ = [
    "FIGURES_PATH",
    "FINAL_KEY_RE",
    "COUNTERS",
    "Figures",
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


class Figures:
    """Mixin for a test class of a shipped suite: its ``record`` calls go to this run's figures."""

    backend_name: ClassVar[str]

    def record(self, area: str, note: str | None = None, **counts: float) -> None:
        tally(area, self.backend_name, note, **counts)
