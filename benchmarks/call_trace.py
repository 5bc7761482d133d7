"""Python calls and module switches of one ``archive()`` of a 50-event table (``sys.setprofile``, all threads).

Run as ``python -m benchmarks.call_trace``: prints calls in total, calls into
coldtier, and how often the call chain crosses from one module to another
(a count of how many floors a call climbs through), after one warm-up call.
"""

from __future__ import annotations

import sys
import tempfile
import threading
from collections import Counter
from types import FrameType
from typing import Any

import coldtier
from coldtier.testing._data import make_table


def main() -> None:
    table = make_table(50)
    start = table.column("timestamp")[0].as_py()
    end = table.column("timestamp")[49].as_py()
    from datetime import UTC

    start, end = start.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    with tempfile.TemporaryDirectory() as root:
        archive = coldtier.open_archive(root)
        archive.archive("acme", start, end, make_table(50, seed=99))  # warm-up
        calls: Counter[str] = Counter()
        switches = 0
        last: list[str] = [""]

        def profile(frame: FrameType, event: str, arg: Any) -> None:
            nonlocal switches
            if event != "call":
                return
            module = frame.f_globals.get("__name__", "?")
            calls[module] += 1
            if module.startswith("coldtier") and module != last[0]:
                switches += 1
            if module.startswith("coldtier"):
                last[0] = module

        threading.setprofile(profile)  # the engine's worker threads too
        sys.setprofile(profile)
        archive.archive("acme", start, end, table)
        sys.setprofile(None)
        threading.setprofile(None)  # type: ignore[arg-type]
    ours = {m: n for m, n in calls.items() if m.startswith("coldtier")}
    print(
        f"python calls: {sum(calls.values())}, in coldtier: {sum(ours.values())}, "
        f"coldtier module switches: {switches}"
    )
    for module, n in sorted(ours.items(), key=lambda kv: -kv[1]):
        print(f"  {n:5d}  {module}")


if __name__ == "__main__":
    main()
