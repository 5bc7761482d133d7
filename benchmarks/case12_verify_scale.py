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
moto runs in a child process (``_common.moto_server``): its own GIL, so the
benchmark's threads do not starve it, competing for the cores as a store
would.  ``COLDTIER_BENCH_VERIFY_OBJECTS`` sets the number of objects (all of
them go to moto too), ``COLDTIER_BENCH_VERIFY_MOTO_OBJECTS`` fewer for moto,
``COLDTIER_BENCH_VERIFY_LOCAL=0`` skips the local rows (the objects are
still written locally first, then uploaded), and
``COLDTIER_BENCH_VERIFY_MOTO_THREADS`` (default ``1,4``; empty: none) the
thread counts of the in-process moto verify rows.  The cluster rows run with
and without ``cross_check`` (the checks across objects, which bring every
event id back to this process).

CPU seconds are this process's (not moto's, not the cluster's workers').
The machine is shared: each row notes the 1-minute load average as it ended.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

import coldtier

from ._common import Row, scratch

FIRST = datetime(2024, 1, 1, tzinfo=UTC)
ROWS = 22_000  # about 0.53 MB per object with zstd: 2,000 objects are about 1.07 GB


def objects_table() -> pa.Table:
    from coldtier.testing._data import make_table

    return make_table(ROWS)


def fill(archive: coldtier.Archive, count: int) -> None:
    """``count`` hourly objects of one table shifted in time, each with its own event ids.

    (The same ids in every object would be distinct events reusing ids,
    which verify reports as a problem.)
    """
    base = objects_table()
    stamps = base.column("timestamp").cast(pa.int64()).to_numpy()
    tails = pc.utf8_slice_codeunits(base.column("event_id"), 8)
    for i in range(count):
        start = FIRST + timedelta(hours=i)
        start_us = int((start - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
        shifted = pa.array(stamps - stamps[0] + start_us, pa.timestamp("us"))
        ids = pc.binary_join_element_wise(pa.scalar(f"{i:08x}"), tails, "")  # still UUID text
        table = base.set_column(4, "timestamp", shifted).set_column(0, "event_id", ids)
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
    import distributed

    import coldtier.dask

    from ._common import S3_CREDENTIALS, boto_client, moto_server

    count = int(os.environ.get("COLDTIER_BENCH_VERIFY_OBJECTS") or (300 if quick else 2_000))
    on_moto = min(count, int(os.environ.get("COLDTIER_BENCH_VERIFY_MOTO_OBJECTS") or count))
    local_rows = os.environ.get("COLDTIER_BENCH_VERIFY_LOCAL", "1") != "0"
    threads = os.environ.get("COLDTIER_BENCH_VERIFY_MOTO_THREADS", "1,4")
    moto_threads = [int(n) for n in threads.split(",") if n.strip()]
    rows: list[Row] = []
    with scratch("verify-scale") as root:
        archive = coldtier.open_archive(str(root))
        setup, _ = timed(lambda: fill(archive, count))
        paths = sorted(p for p in root.rglob("*.parquet"))
        total = sum(p.stat().st_size for p in paths)
        mb = total / 1e6
        print(f"  {len(paths)} objects, {mb:.0f} MB, written in {setup:.0f} s", flush=True)

        def row(what: str, wall: float, cpu: float, base: float, note: str = "") -> None:
            load = os.getloadavg()[0]
            rows.append(
                Row(
                    "12",
                    what,
                    mb / wall,
                    mb / base,
                    unit="MB/s",
                    note=f"{cpu:.1f} CPU s{note}; load {load:.1f}",
                )
            )
            print(
                f"    {what}: {mb / wall:.1f} MB/s ({wall:.1f} s wall, {cpu:.1f} s CPU, load {load:.1f})",
                flush=True,
            )

        hash1, _ = timed(lambda: sha256_files(paths, 1))
        hash2, _ = timed(lambda: sha256_files(paths, 2))
        print(
            f"    sha256 of the files: {mb / hash1:.0f} MB/s (1 thread), {mb / hash2:.0f} MB/s (2)",
            flush=True,
        )
        for workers in (1, 2) if local_rows else ():
            local = coldtier.open_archive(str(root), workers=workers)
            wall, cpu = timed(lambda local=local: _check(local.verify(), count))
            row(f"local verify, {workers} thread(s) (baseline: sha256, 1 thread)", wall, cpu, hash1)
        for n in (1, 2) if local_rows else ():
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

        with moto_server() as endpoint:
            # The cluster's workers take credentials from the environment; moto accepts any.
            os.environ.setdefault("AWS_ACCESS_KEY_ID", S3_CREDENTIALS["key"])
            os.environ.setdefault("AWS_SECRET_ACCESS_KEY", S3_CREDENTIALS["secret"])
            s3 = boto_client(endpoint)
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
            for workers in moto_threads:
                remote = coldtier.open_archive(url, workers=workers)
                wall, cpu = timed(lambda remote=remote: _check(remote.verify(), on_moto))
                row(
                    f"moto verify, {workers} thread(s) (baseline: GET + sha256, 4 threads)",
                    wall,
                    cpu,
                    base4,
                )
            with (
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=2, processes=True, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                coldtier.dask.verify(url, client, tenant="acme")
                for cross_check in (True, False):
                    wall, cpu = timed(
                        lambda client=client, cross_check=cross_check: _check(
                            coldtier.dask.verify(url, client, cross_check=cross_check), on_moto
                        )
                    )
                    row(
                        f"moto, coldtier.dask 2 workers x 2 threads, cross_check={cross_check}"
                        " (baseline: GET + sha256, 4 threads)",
                        wall,
                        cpu,
                        base4,
                        note=" in this process only",
                    )
    return rows


def _check(report: coldtier.VerifyReport, count: int) -> None:
    assert report.ok and report.objects == count, report
