"""Case 3: 1,000,000 events as an Arrow table → S3 (moto server on loopback).

Baseline: ``pq.write_table`` to bytes (same codec and options) +
``s3fs.pipe_file``.  moto (``ThreadedMotoServer`` on 127.0.0.1, an ephemeral
port) runs in a child process started here, so its request handling competes
for the two cores but not for this process's GIL, as a remote store would not.
"""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from coldtier._engine.settings import Settings

from ._common import CPU, Row, interleave, median, sample_table
from .case1_arrow_local import EVENTS, bare_options

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)
CREDENTIALS = {"key": "AKIABENCHMARK", "secret": "bench-secret"}


def run(quick: bool = False) -> list[Row]:
    try:
        import boto3
        import moto.server
        import s3fs

        import coldtier.backends.s3
    except ImportError as exc:
        return [
            Row(
                "3",
                "1M events → S3 (moto)",
                None,
                None,
                target="floor ≤ 1.15, target ≤ 0.85",
                note=f"skipped: no S3 backend ({exc})",
            )
        ]
    del moto, coldtier.backends.s3  # only checked for
    table = sample_table(EVENTS)
    reps = 3 if quick else 5
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
        fs = s3fs.S3FileSystem(
            endpoint_url=endpoint,
            key=CREDENTIALS["key"],
            secret=CREDENTIALS["secret"],
            client_kwargs={"region_name": "us-east-1"},
            skip_instance_cache=True,
            use_listings_cache=False,
        )
        counter = itertools.count()

        def empty(prefix: str) -> None:
            listed = client.list_objects_v2(Bucket="bench", Prefix=prefix).get("Contents", [])
            for obj in listed:
                client.delete_object(Bucket="bench", Key=obj["Key"])

        def bare() -> None:
            prefix = f"bare{next(counter)}"
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **bare_options())  # type: ignore[arg-type]
            fs.pipe_file(f"bench/{prefix}/x.parquet", sink.getvalue().to_pybytes())
            empty(prefix)

        def archive(**options: object) -> None:
            prefix = f"coldtier{next(counter)}"
            url = f"s3://bench/{prefix}?endpoint_url={endpoint}&region=us-east-1"
            archive = coldtier.open_archive(url, **CREDENTIALS, **options)
            assert archive.archive("acme", START, END, table).events == EVENTS
            empty(prefix)

        times = interleave({"bare": bare, "workers=1": lambda: archive(workers=1), "defaults": archive}, reps)
        client.close()
    finally:
        assert server.stdin is not None
        server.stdin.close()  # the server's signal to stop
        server.wait(timeout=30)
        if server.stdout is not None:
            server.stdout.close()
    base = median(times["bare"])
    rows = []
    for name, what, limit, label in (
        ("workers=1", "1M events, Arrow → S3 (moto), workers=1", 1.15, "floor ≤ 1.15"),
        (
            "defaults",
            f"1M events, Arrow → S3 (moto), defaults (workers={Settings().workers})",
            0.85,
            "target ≤ 0.85",
        ),
    ):
        t = median(times[name])
        rows.append(
            Row(
                "3",
                what,
                t,
                base,
                target=label,
                passed=t / base <= limit,
                note=f"client CPU {median(CPU[name]):.2f} s vs {median(CPU['bare']):.2f} s",
                samples={name: times[name], "bare": times["bare"]},
            )
        )
    return rows


def serve() -> None:
    """Run moto until stdin closes; print its endpoint first."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    print(f"http://{host}:{port}", flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__" and sys.argv[1:] == ["--serve"]:
    serve()
