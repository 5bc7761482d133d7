"""Progress bars on a terminal: labelled steps, MiB throughout, a final line of time and rate."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm import tqdm

from ._common import MIB, mib

_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {n:.2f}/{total:.2f} MiB [{elapsed}<{remaining}, {rate_fmt}]"


def _columns() -> int:
    try:
        return os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError):
        return 0


class Bar:
    """A tqdm bar on stderr counting bytes (shown in MiB); silent when disabled.

    Call it as a ``progress(done_bytes, total_bytes)`` callback, or
    :meth:`advance` it.  ``step=(1, 2)`` labels it "step 1/2".
    """

    def __init__(self, desc: str, *, enabled: bool, step: tuple[int, int] | None = None) -> None:
        self._bar: Any = None
        self.label = desc if step is None else f"step {step[0]}/{step[1]} {desc}"
        if enabled:
            self._bar = tqdm(
                desc=self.label,
                total=0,
                unit="MiB",
                bar_format=_FORMAT,
                file=sys.stderr,
                leave=True,
                # A terminal that reports no size (some ptys) would hide the bar.
                **({} if _columns() else {"ncols": 80, "nrows": 24}),
            )

    @property
    def enabled(self) -> bool:
        return self._bar is not None

    def __call__(self, done: int, total: int) -> None:
        bar = self._bar
        if bar is None:
            return
        if bar.total != total / MIB:
            bar.total = total / MIB
            bar.refresh()
        bar.update(done / MIB - bar.n)

    def advance(self, amount: int) -> None:
        if self._bar is not None:
            self._bar.update(amount / MIB)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


class Timer:
    """Elapsed time and throughput of a command, as one final line on stderr."""

    def __init__(self, *, enabled: bool) -> None:
        self.enabled = enabled
        self._start = time.monotonic()

    def done(self, what: str, nbytes: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self._start, 1e-6)
        rate = nbytes / MIB / elapsed
        sys.stderr.write(f"coldtier: {what}: {mib(nbytes)} in {elapsed:.1f} s ({rate:.2f} MiB/s)\n")
