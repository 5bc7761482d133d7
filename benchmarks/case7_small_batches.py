"""Case 7: many small calls — 300 ``archive()`` calls of 100 events each, to local and to S3 (moto).

The most common workload: a retention pass makes many calls of a few hundred
events, so a call's fixed cost counts.  One ``Archive`` is opened per run and
reused for every call, as a service would.

Baselines, per call, the same 100-event tables:

* local: ``pq.write_table`` with coldtier's writer properties to a temp file,
  fsync, rename, fsync of the directory (case 1's route);
* S3: ``pq.write_table`` to bytes, one conditional PUT (``IfNoneMatch="*"``)
  with a plain boto3 client made once per run.
"""

from __future__ import annotations

import importlib
import io
import itertools
import os
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

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

CALLS = 300
EVENTS = 100
FIRST_US = 1_709_251_200_000_000  # 2024-03-01
HOUR_US = 3_600_000_000
US = timedelta(microseconds=1)


def batches(calls: int, events: int) -> list[tuple[datetime, datetime, pa.Table]]:
    """``calls`` tables of ``events`` rows, one hour of March 2024 each, with their windows."""
    from coldtier.testing._data import make_table

    out = []
    for i in range(calls):
        start_us = FIRST_US + i * HOUR_US
        table = make_table(events, start_us=start_us, step_us=HOUR_US // events, seed=i)
        start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=start_us)
        out.append((start, start + timedelta(hours=1) - US, table))
    return out


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, **exact_options())  # type: ignore[arg-type]
    return sink.getvalue()


def run(quick: bool = False) -> list[Row]:
    work = batches(CALLS, EVENTS)
    reps = 3 if quick else 5
    rows = []

    def local_archive() -> None:
        with scratch("small") as d:
            archive = coldtier.open_archive(str(d))
            for start, end, table in work:
                assert archive.archive("acme", start, end, table).created

    def local_bare() -> None:
        with scratch("small-bare") as d:
            directory = d / "acme" / "2024-03"
            os.makedirs(directory)
            for i, (_, _, table) in enumerate(work):
                write_table_durably(table, str(directory / f"{i}.parquet"), **exact_options())

    times = interleave({"coldtier": local_archive, "bare": local_bare}, reps)
    c, b = median(times["coldtier"]), median(times["bare"])
    rows.append(
        Row(
            "7",
            f"{CALLS} calls x {EVENTS} events → local, one Archive; vs write_table + fsync + rename + dir fsync",
            c,
            b,
            target="≤ 1.25",
            passed=c / b <= 1.25,
            note=f"{c / CALLS * 1000:.1f} vs {b / CALLS * 1000:.1f} ms/call; " + cpu_note("coldtier", "bare"),
            samples=times,
        )
    )

    try:
        importlib.import_module("coldtier.backends.s3")  # only checked for
    except ImportError as exc:
        rows.append(Row("7", "small calls → S3", None, None, note=f"skipped: no S3 backend ({exc})"))
        return rows
    with moto_server() as endpoint:
        admin = boto_client(endpoint)
        admin.create_bucket(Bucket="bench")
        counter = itertools.count()

        def s3_archive() -> None:
            prefix = f"coldtier{next(counter)}"
            url = f"s3://bench/{prefix}?endpoint_url={endpoint}&region=us-east-1"
            archive = coldtier.open_archive(url, **S3_CREDENTIALS)
            for start, end, table in work:
                assert archive.archive("acme", start, end, table).created
            empty_prefix(admin, "bench", prefix)

        def s3_bare() -> None:
            prefix = f"bare{next(counter)}"
            client = boto_client(endpoint)
            for i, (_, _, table) in enumerate(work):
                client.put_object(
                    Bucket="bench", Key=f"{prefix}/acme/{i}.parquet", Body=parquet_bytes(table), IfNoneMatch="*"
                )
            client.close()
            empty_prefix(admin, "bench", prefix)

        times = interleave({"coldtier-s3": s3_archive, "bare-s3": s3_bare}, reps)
        admin.close()
    c, b = median(times["coldtier-s3"]), median(times["bare-s3"])
    rows.append(
        Row(
            "7",
            f"{CALLS} calls x {EVENTS} events → S3 (moto), one Archive; vs write_table to bytes + 1 conditional PUT",
            c,
            b,
            target="≤ 1.10",
            passed=c / b <= 1.10,
            note=f"{c / CALLS * 1000:.1f} vs {b / CALLS * 1000:.1f} ms/call; client "
            + cpu_note("coldtier-s3", "bare-s3"),
            samples=times,
        )
    )
    return rows
