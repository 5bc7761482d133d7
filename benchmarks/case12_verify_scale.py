"""Case 12: verify of many objects (2,000 objects, 1.07 GB; --quick: 300) locally and on moto, in MB/s.

Baselines measured in the same run over the same bytes: ``sha256sum``-style
hashing (read each file / GET each object, SHA-256 it; one thread, and two),
the physical limit of any verify here.  coldtier's verify does much more per
byte (Parquet decode, the logical digest of every column, the byte digest),
so the ratio says what that costs.  Then the same verify with 1 and 2
threads in one process, and on a ``LocalCluster`` of 1 and 2 worker
processes (``coldtier.dask.verify``, one thread per worker).  On S3 the
objects are uploaded with boto3 (not through coldtier: faster to set up;
verify then has no stored byte digest to compare, only the logical one).
``COLDTIER_BENCH_VERIFY_OBJECTS`` sets the number of objects,
``COLDTIER_BENCH_VERIFY_MOTO_OBJECTS`` how many of them go to moto (the
server runs in this process, so its CPU is in the column).

CPU seconds are this process's (the cluster's workers are other processes:
their CPU is not in the column).  The machine is shared: see the load.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

import coldtier

from ._common import Row, scratch

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = 18_000  # about 0.53 MB per object with zstd: 2,000 objects are 1.07 GB


def objects_table() -> pa.Table:
    from coldtier.testing._data import make_table

    return make_table(ROWS)


def fill(archive: coldtier.Archive, count: int) -> None:
    base = objects_table()
    stamps = base.column("timestamp").cast(pa.int64()).to_numpy()
    for i in range(count):
        start = FIRST + timedelta(hours=i)
        start_us = int((start - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        shifted = pa.array(stamps - stamps[0] + start_us, pa.timestamp("us"))
        table = base.set_column(4, "timestamp", shifted)
        archive.archive("acme" if i % 2 else "globex", start, start + timedelta(minutes=59), table)


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def sha256_files(paths: list[Path], threads: int) -> None:
    def one(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, paths))


def run(quick: bool = False) -> list[Row]:
    import boto3
    import distributed
    from moto.server import ThreadedMotoServer

    import coldtier.dask

    count = int(os.environ.get("COLDTIER_BENCH_VERIFY_OBJECTS") or (300 if quick else 2_000))
    # moto keeps every object in this process's memory and serves it slowly: fewer, when asked
    on_moto = min(count, int(os.environ.get("COLDTIER_BENCH_VERIFY_MOTO_OBJECTS") or count))
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    rows: list[Row] = []
    with scratch("verify-scale") as root:
        archive = coldtier.open_archive(str(root))
        setup, _ = timed(lambda: fill(archive, count))
        paths = sorted(p for p in root.rglob("*.parquet"))
        total = sum(p.stat().st_size for p in paths)
        mb = total / 1e6
        print(f"  {len(paths)} objects, {mb:.0f} MB, written in {setup:.0f} s", flush=True)

        def row(what: str, wall: float, cpu: float, base: float, note: str = "") -> None:
            rows.append(Row("7", what, mb / wall, mb / base, unit="MB/s", note=f"{cpu:.1f} CPU s{note}"))
            print(f"    {what}: {mb / wall:.0f} MB/s ({wall:.1f} s wall, {cpu:.1f} s CPU)", flush=True)

        hash1, _ = timed(lambda: sha256_files(paths, 1))
        hash2, _ = timed(lambda: sha256_files(paths, 2))
        print(
            f"    sha256 of the files: {mb / hash1:.0f} MB/s (1 thread), {mb / hash2:.0f} MB/s (2)",
            flush=True,
        )
        for workers in (1, 2):
            local = coldtier.open_archive(str(root), workers=workers)
            wall, cpu = timed(lambda local=local: _check(local.verify(), count))
            row(f"local verify, {workers} thread(s) (baseline: sha256, 1 thread)", wall, cpu, hash1)
        for n in (1, 2):
            with (
                distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                coldtier.dask.verify(str(root), client, tenant="acme")  # warm the workers
                wall, cpu = timed(
                    lambda client=client: _check(coldtier.dask.verify(str(root), client), count)
                )
            row(
                f"local, coldtier.dask {n} worker process(es) (baseline: sha256, {n} thread(s))",
                wall,
                cpu,
                hash1 if n == 1 else hash2,
                note=" in this process only",
            )

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            endpoint = f"http://{host}:{port}"
            os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            s3.create_bucket(Bucket="bench")
            keys = [p.relative_to(root).as_posix() for p in paths[:on_moto]]
            moto_mb = sum(p.stat().st_size for p in paths[:on_moto]) / 1e6
            print(f"  moto: {len(keys)} objects, {moto_mb:.0f} MB", flush=True)

            def upload(key: str) -> None:
                s3.put_object(Bucket="bench", Key=f"cold/{key}", Body=(root / key).read_bytes())

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(upload, keys))
            url = f"s3://bench/cold?endpoint_url={endpoint}&region=us-east-1"

            def get_and_hash(threads: int) -> None:
                def one(key: str) -> str:
                    body = s3.get_object(Bucket="bench", Key=f"cold/{key}")["Body"].read()
                    return hashlib.sha256(body).hexdigest()

                with ThreadPoolExecutor(threads) as pool:
                    list(pool.map(one, keys))

            base4, _ = timed(lambda: get_and_hash(4))
            mb = moto_mb
            print(f"    GET + sha256 from moto: {mb / base4:.0f} MB/s (4 threads)", flush=True)
            for workers in (1, 4):
                remote = coldtier.open_archive(url, workers=workers)
                wall, cpu = timed(lambda remote=remote: _check(remote.verify(), on_moto))
                row(
                    f"moto verify, {workers} thread(s) (baseline: GET + sha256, 4 threads)",
                    wall,
                    cpu,
                    base4,
                    note=", with the moto server's",
                )
            with (
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                coldtier.dask.verify(url, client, tenant="acme")
                wall, cpu = timed(lambda client=client: _check(coldtier.dask.verify(url, client), on_moto))
            row(
                "moto, coldtier.dask 2 workers x 2 threads (baseline: GET + sha256, 4 threads)",
                wall,
                cpu,
                base4,
                note=" in this process only",
            )
        finally:
            server.stop()
    return rows


def _check(report: coldtier.VerifyReport, count: int) -> None:
    assert report.ok and report.objects == count, report
