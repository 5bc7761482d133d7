"""Timing, machine description and the result row shared by every case."""

from __future__ import annotations

import gc
import importlib
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

__all__ = [
    "Row",
    "boto_client",
    "cpu_note",
    "empty_prefix",
    "interleave",
    "machine",
    "moto_server",
    "sample_table",
    "scratch",
]

#: Scratch space for archives (``COLDTIER_BENCH_DIR`` or the temp directory);
#: put it on a real disk, not a tmpfs, so fsync costs what it costs in production.
SCRATCH = Path(os.environ.get("COLDTIER_BENCH_DIR") or Path(tempfile.gettempdir()) / "coldtier-bench")


@dataclass
class Row:
    """One line of the result table."""

    case: str
    what: str
    coldtier: float | None  # seconds (or bytes/event, or MiB: see ``unit``)
    baseline: float | None
    unit: str = "s"
    target: str = ""
    passed: bool | None = None
    note: str = ""
    load: str = ""  # 1-minute load average as the case started
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.coldtier is None or not self.baseline:
            return None
        return self.coldtier / self.baseline


@contextmanager
def scratch(name: str) -> Iterator[Path]:
    """A fresh directory under :data:`SCRATCH`, removed afterwards."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=SCRATCH))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


#: CPU seconds (this process, all threads) of every run timed by :func:`interleave`, by name.
CPU: dict[str, list[float]] = {}


def interleave(
    runs: dict[str, Callable[[], object]], reps: int, *, warmup: bool = True
) -> dict[str, list[float]]:
    """Time each callable ``reps`` times, round-robin, rotating who goes first.

    Every run starts from a collected heap, so one side's garbage is not
    charged to the other.  One untimed warm-up round first (imports, caches,
    allocator pools).  Wall seconds are returned; the process's CPU seconds
    land in :data:`CPU` (a load-independent view: on a busy machine the
    wall-clock gain from a second core shrinks, the CPU cost does not).
    """
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        CPU[name] = []
    for rep in range(-1 if warmup else 0, reps):
        order = names[rep % len(names) :] + names[: rep % len(names)] if rep >= 0 else names
        for name in order:
            gc.collect()
            cpu = time.process_time()
            start = time.perf_counter()
            runs[name]()
            elapsed = time.perf_counter() - start
            if rep >= 0:
                times[name].append(elapsed)
                CPU[name].append(time.process_time() - cpu)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


@cache
def sample_table(count: int) -> pa.Table:
    """``coldtier.testing._data.make_table(count)``, built once per run."""
    from coldtier.testing._data import make_table

    return make_table(count)


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    import duckdb
    import orjson

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    try:
        disk = subprocess.run(
            ["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", str(SCRATCH.parent)],
            capture_output=True,
            text=True,
            check=False,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        disk = "unknown"
    accelerators = []
    for name in ("numpy", "msgspec"):  # optional fast paths of the write-side checks
        try:
            module = importlib.import_module(name)
            accelerators.append(f"{name} {getattr(module, '__version__', '?')}")
        except ImportError:
            accelerators.append(f"no {name}")
    return {
        "cpus": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "pyarrow": pa.__version__,
        "duckdb": duckdb.__version__,
        "orjson": orjson.__version__,
        "os": platform.platform(),
        "disk": disk,
        "load": load,
        "accelerators": ", ".join(accelerators),
    }


@contextmanager
def moto_server() -> Iterator[str]:
    """moto's S3 server in a child process (its own GIL, competing for the cores as a store would); its URL.

    Started with ``python -m benchmarks.case3_arrow_s3 --serve``; stopped by
    closing its stdin.
    """
    import sys

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.case3_arrow_s3", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        yield server.stdout.readline().strip()
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the server's signal to stop
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()


#: What the benchmarks pass as S3 credentials; moto accepts any.
S3_CREDENTIALS = {"key": "AKIABENCHMARK", "secret": "bench-secret"}


def boto_client(endpoint: str) -> Any:
    """A plain boto3 S3 client on ``endpoint``: the baselines' route to the store."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_CREDENTIALS["key"],
        aws_secret_access_key=S3_CREDENTIALS["secret"],
    )


def empty_prefix(client: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix`` (between runs, untimed)."""
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    for page in pages:
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def cpu_note(*names: str) -> str:
    """``CPU a s vs b s``: median process CPU of the runs named, as :func:`interleave` kept them."""
    return "CPU " + " vs ".join(f"{median(CPU[n]):.2f} s" for n in names)
