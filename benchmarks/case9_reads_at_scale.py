"""Case 9: reading a month (30 daily objects x 100k events) and a year (365 x 10k) of one tenant, local and S3.

Baseline: DuckDB over the same objects — ``read_parquet`` of the tenant's
files with the same time filter, each event id once (``QUALIFY row_number()
OVER (PARTITION BY event_id ORDER BY timestamp) = 1``) and the same order,
into an Arrow table, in a fresh connection each time.  On S3 DuckDB reads
through the same kind of client coldtier uses (an ``s3fs`` filesystem
registered with ``register_filesystem``; no httpfs extension here).
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

import coldtier

from ._common import S3_CREDENTIALS, Row, boto_client, cpu_note, interleave, median, moto_server, scratch

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
SHAPES = {"month": (30, 100_000), "year": (365, 10_000)}
QUERY = (
    "SELECT * FROM read_parquet({files}) WHERE timestamp BETWEEN $lo AND $hi "
    "QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY timestamp) = 1 "
    "ORDER BY timestamp, event_id"
)


def day_table(day: int, per_day: int) -> pa.Table:
    from coldtier.testing._data import make_table

    start_us = int((FIRST + timedelta(days=day) - datetime(1970, 1, 1, tzinfo=UTC)) / US)
    return make_table(per_day, start_us=start_us, step_us=86_400_000_000 // per_day, seed=day)


def fill(archive: coldtier.Archive, days: int, per_day: int) -> None:
    for day in range(days):
        start = FIRST + timedelta(days=day)
        archive.archive("acme", start, start + timedelta(days=1) - US, day_table(day, per_day))


def measure(
    label: str, shape: str, open_archive: Any, files: str, connect: Any, days: int, per_day: int, reps: int
) -> Row:
    import duckdb

    lo, hi = FIRST, FIRST + timedelta(days=days) - US
    params = {"lo": lo.replace(tzinfo=None), "hi": hi.replace(tzinfo=None)}
    total = days * per_day

    def with_coldtier() -> None:
        assert open_archive().read("acme", lo, hi).num_rows == total

    def with_duckdb() -> None:
        with duckdb.connect() as con:
            connect(con)
            table = con.sql(QUERY.format(files=files), params=params).to_arrow_table()
        assert table.num_rows == total, table.num_rows

    names = {f"coldtier-{label}-{shape}": with_coldtier, f"duckdb-{label}-{shape}": with_duckdb}
    times = interleave(names, reps)
    c, b = (median(times[n]) for n in names)
    return Row(
        "9",
        f"read a {shape} ({days} x {per_day // 1000}k events) → {label}; vs DuckDB read_parquet + QUALIFY dedupe",
        c,
        b,
        target="≤ 0.8",
        passed=c / b <= 0.8,
        note=cpu_note(*names),
        samples=times,
    )


def run(quick: bool = False) -> list[Row]:
    reps = 3 if quick else 5
    rows = []
    for shape, (days, per_day) in SHAPES.items():
        with scratch(f"read-{shape}") as root:
            fill(coldtier.open_archive(str(root)), days, per_day)
            files = f"'{root}/acme/*/*.parquet'"
            rows.append(
                measure(
                    "local", shape, lambda r=root: coldtier.open_archive(str(r)), files, lambda c: None, days, per_day, reps
                )
            )
    try:
        importlib.import_module("coldtier.backends.s3")
        s3fs = importlib.import_module("s3fs")
    except ImportError as exc:
        rows.append(Row("9", "reads → S3", None, None, note=f"skipped: no S3 backend ({exc})"))
        return rows
    with moto_server() as endpoint:
        admin = boto_client(endpoint)
        admin.create_bucket(Bucket="bench")
        for shape, (days, per_day) in SHAPES.items():
            url = f"s3://bench/{shape}?endpoint_url={endpoint}&region=us-east-1"
            fill(coldtier.open_archive(url, **S3_CREDENTIALS), days, per_day)
            keys = [
                o["Key"]
                for page in admin.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=f"{shape}/acme/")
                for o in page.get("Contents", [])
            ]
            files = "[" + ", ".join(f"'s3://bench/{k}'" for k in keys) + "]"

            def connect(con: Any, endpoint: str = endpoint) -> None:
                fs = s3fs.S3FileSystem(
                    endpoint_url=endpoint,
                    key=S3_CREDENTIALS["key"],
                    secret=S3_CREDENTIALS["secret"],
                    client_kwargs={"region_name": "us-east-1"},
                    skip_instance_cache=True,
                )
                con.register_filesystem(fs)

            rows.append(
                measure(
                    "S3 (moto)",
                    shape,
                    lambda u=url: coldtier.open_archive(u, **S3_CREDENTIALS),
                    files,
                    connect,
                    days,
                    per_day,
                    reps,
                )
            )
        admin.close()
    return rows
