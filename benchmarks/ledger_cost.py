"""One-off: what the ledger's receipt adds to many small calls (DESIGN.md §10).

``PYTHONPATH=src python -m benchmarks.ledger_cost [--calls 300] [--events 100] [--reps 3] [--s3]``

A retention pass over many tenants makes many calls of a few hundred events;
each call now ends with one small create-only PUT (its receipt).  This times
``--calls`` archive calls of ``--events`` events each (Arrow tables, one
object per call) with ``ledger=True`` and ``ledger=False``, interleaved,
on a local directory (and with ``--s3`` on a moto server in a child process,
as case 3 does), and prints wall and process-CPU seconds, the ratio, and the
load average.  Not a unit test and not one of the ``python -m benchmarks``
cases.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, timedelta
from itertools import count

import coldtier
from coldtier.testing._data import make_table

from ._common import CPU, interleave, median, scratch

CREDENTIALS = {"key": "AKIABENCHMARK", "secret": "bench-secret"}


def batches(calls: int, events: int) -> list[tuple[object, object, object]]:
    """``calls`` tables of ``events`` rows, an hour apart, each with its window."""
    hour_us = 3_600_000_000
    out = []
    for i in range(calls):
        table = make_table(events, start_us=1_709_251_200_000_000 + i * hour_us, step_us=1_000_000, seed=i)
        ts = table.column("timestamp")
        start = ts[0].as_py().replace(tzinfo=UTC)
        end = ts[len(ts) - 1].as_py().replace(tzinfo=UTC) + timedelta(microseconds=0)
        out.append((start, end, table))
    return out


def run_local(data: list[tuple[object, object, object]], reps: int) -> dict[str, list[float]]:
    def calls(ledger: bool) -> Callable[[], None]:
        def go() -> None:
            with scratch("ledger") as d:
                archive = coldtier.open_archive(str(d), ledger=ledger)
                for start, end, table in data:
                    archive.archive("acme", start, end, table)  # type: ignore[arg-type]

        return go

    return interleave({"ledger on": calls(True), "ledger off": calls(False)}, reps)


def run_s3(data: list[tuple[object, object, object]], reps: int) -> dict[str, list[float]]:
    import boto3

    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.case3_arrow_s3", "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        endpoint = server.stdout.readline().strip()
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS["key"],
            aws_secret_access_key=CREDENTIALS["secret"],
        )
        client.create_bucket(Bucket="bench")
        prefixes = count()

        def calls(ledger: bool) -> Callable[[], None]:
            def go() -> None:
                url = f"s3://bench/run{next(prefixes)}?endpoint_url={endpoint}&region=us-east-1"
                archive = coldtier.open_archive(url, ledger=ledger, **CREDENTIALS)
                for start, end, table in data:
                    archive.archive("acme", start, end, table)  # type: ignore[arg-type]

            return go

        return interleave({"ledger on": calls(True), "ledger off": calls(False)}, reps)
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def report(where: str, times: dict[str, list[float]], calls: int) -> None:
    on, off = median(times["ledger on"]), median(times["ledger off"])
    cpu_on, cpu_off = median(CPU["ledger on"]), median(CPU["ledger off"])
    print(
        f"{where}: {calls} calls, ledger on {on:.2f} s wall / {cpu_on:.2f} s CPU, "
        f"off {off:.2f} s / {cpu_off:.2f} s CPU; ratio {on / off:.2f} wall, {cpu_on / cpu_off:.2f} CPU; "
        f"+{(on - off) / calls * 1000:.2f} ms per call; load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--events", type=int, default=100)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--s3", action="store_true", help="also on a moto server (needs the s3 extra)")
    args = parser.parse_args()
    data = batches(args.calls, args.events)
    report("local", run_local(data, args.reps), args.calls)
    if args.s3:
        report("S3 (moto)", run_s3(data, args.reps), args.calls)


if __name__ == "__main__":
    main()
