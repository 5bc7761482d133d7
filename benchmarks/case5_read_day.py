"""Case 5: read one day back from 365 daily objects, vs DuckDB over the same files.

The archive holds one object per day for a year (2,000 events each).  coldtier
reads ``read(tenant, day_start, day_end)``; DuckDB runs ``read_parquet`` over
a glob of the same local files with the same filter on ``timestamp``, into an
Arrow table, in a fresh connection each time (no metadata cache carried over).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

import coldtier

from ._common import Row, interleave, median, scratch
from .case4_stream_memory import batches

DAYS = 365
PER_DAY = 2_000
FIRST = datetime(2024, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def day_table(day: int) -> pa.Table:
    table = pa.Table.from_batches(list(batches(PER_DAY, seed=day)))
    start_us = int((FIRST + timedelta(days=day) - datetime(1970, 1, 1, tzinfo=UTC)) / US)
    step = 86_400_000_000 // PER_DAY
    stamps = pa.array([start_us + i * step for i in range(PER_DAY)], pa.timestamp("us"))
    return table.set_column(4, "timestamp", stamps)


def run(quick: bool = False) -> list[Row]:
    import duckdb

    reps = 5 if quick else 9
    with scratch("read") as root:
        archive = coldtier.open_archive(str(root))
        for day in range(DAYS):
            start = FIRST + timedelta(days=day)
            archive.archive("acme", start, start + timedelta(days=1) - US, day_table(day))
        assert len(archive.objects("acme")) == DAYS
        day_start = FIRST + timedelta(days=200)
        day_end = day_start + timedelta(days=1) - US
        glob = f"{root}/acme/*/*.parquet"
        query = f"SELECT * FROM read_parquet('{glob}') WHERE timestamp BETWEEN $lo AND $hi"
        params = {"lo": day_start.replace(tzinfo=None), "hi": day_end.replace(tzinfo=None)}

        def with_coldtier() -> None:
            table = coldtier.open_archive(str(root)).read("acme", day_start, day_end)
            assert table.num_rows == PER_DAY, table.num_rows

        def with_duckdb() -> None:
            with duckdb.connect() as con:
                table = con.sql(query, params=params).to_arrow_table()
            assert table.num_rows == PER_DAY, table.num_rows

        times = interleave({"coldtier": with_coldtier, "duckdb": with_duckdb}, reps)
    c, b = median(times["coldtier"]), median(times["duckdb"])
    return [
        Row(
            "5",
            f"one day ({PER_DAY} events) out of {DAYS} daily objects, vs DuckDB read_parquet(glob) + filter",
            c,
            b,
            target="target ≤ 0.5",
            passed=c / b <= 0.5,
            samples=times,
        )
    ]
