"""Case 8: 1,000 tenants x one call of 200 events, from 4 threads sharing one ``Archive``; local and S3 (moto).

A retention pass over many tenants, parallelised the obvious way.  Every call
must succeed and every tenant's object be there afterwards.

Baselines: the bare routes of case 7 from 4 threads (one boto3 client shared,
as boto3 allows).  Locally each tenant's first object creates its directories;
the baseline makes them durable the same way (``mkdir`` + fsync of the parent),
since a careful hand-written route must too.
"""

from __future__ import annotations

import importlib
import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import coldtier

from ._common import (
    S3_CREDENTIALS,
    Row,
    boto_client,
    cpu_note,
    empty_prefix,
    interleave,
    median,
    moto_server,
    scratch,
)
from .case1_arrow_local import exact_options, write_table_durably
from .case7_small_batches import parquet_bytes

TENANTS = 1_000
EVENTS = 200
THREADS = 4
START = datetime(2024, 3, 1, tzinfo=UTC)
END = START + timedelta(days=1) - timedelta(microseconds=1)


def work() -> list[tuple[str, object]]:
    from coldtier.testing._data import make_table

    step = 86_400_000_000 // EVENTS
    first = int((START - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    return [(f"t{i:04d}", make_table(EVENTS, start_us=first, step_us=step, seed=i)) for i in range(TENANTS)]


def durable_dirs(path: str) -> None:
    """``mkdir -p`` that fsyncs each parent whose entry it adds (what coldtier's local store does)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    durable_dirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run(quick: bool = False) -> list[Row]:
    batches = work()
    reps = 3
    rows = []

    def fan_out(fn: object) -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            list(pool.map(fn, batches))  # type: ignore[arg-type]

    def local_archive() -> None:
        with scratch("tenants") as d:
            archive = coldtier.open_archive(str(d))
            fan_out(lambda job: archive.archive(job[0], START, END, job[1]))
            assert len(archive.tenants()) == TENANTS

    def local_bare() -> None:
        with scratch("tenants-bare") as d:

            def one(job: tuple[str, object]) -> None:
                directory = str(d / job[0] / "2024-03")
                durable_dirs(directory)
                write_table_durably(job[1], f"{directory}/x.parquet", **exact_options())  # type: ignore[arg-type]

            fan_out(one)

    times = interleave({"coldtier": local_archive, "bare": local_bare}, reps)
    c, b = median(times["coldtier"]), median(times["bare"])
    rows.append(
        Row(
            "8",
            f"{TENANTS} tenants x {EVENTS} events, {THREADS} threads, one Archive → local; vs the bare route",
            c,
            b,
            target="≤ 1.10",
            passed=c / b <= 1.10,
            note=cpu_note("coldtier", "bare") + "; every tenant stored, no error",
            samples=times,
        )
    )
    try:
        importlib.import_module("coldtier.backends.s3")  # only checked for
    except ImportError as exc:
        rows.append(Row("8", "tenants → S3", None, None, note=f"skipped: no S3 backend ({exc})"))
        return rows
    with moto_server() as endpoint:
        admin = boto_client(endpoint)
        admin.create_bucket(Bucket="bench")
        counter = itertools.count()

        def s3_archive() -> None:
            prefix = f"coldtier{next(counter)}"
            url = f"s3://bench/{prefix}?endpoint_url={endpoint}&region=us-east-1"
            archive = coldtier.open_archive(url, **S3_CREDENTIALS)
            fan_out(lambda job: archive.archive(job[0], START, END, job[1]))
            assert len(archive.tenants()) == TENANTS
            empty_prefix(admin, "bench", prefix)

        def s3_bare() -> None:
            prefix = f"bare{next(counter)}"
            client = boto_client(endpoint)

            def one(job: tuple[str, object]) -> None:
                client.put_object(
                    Bucket="bench", Key=f"{prefix}/{job[0]}/x.parquet", Body=parquet_bytes(job[1]), IfNoneMatch="*"
                )

            fan_out(one)
            client.close()
            empty_prefix(admin, "bench", prefix)

        times = interleave({"coldtier-s3": s3_archive, "bare-s3": s3_bare}, reps)
        admin.close()
    c, b = median(times["coldtier-s3"]), median(times["bare-s3"])
    rows.append(
        Row(
            "8",
            f"{TENANTS} tenants x {EVENTS} events, {THREADS} threads, one Archive → S3 (moto); vs the bare route",
            c,
            b,
            target="≤ 1.10",
            passed=c / b <= 1.10,
            note="client " + cpu_note("coldtier-s3", "bare-s3") + "; every tenant stored, no error",
            samples=times,
        )
    )
    return rows
