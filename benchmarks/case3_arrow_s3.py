"""Case 3: 1,000,000 events as an Arrow table → S3 (moto server on loopback).

Baseline: ``pq.write_table`` to bytes with coldtier's exact writer properties
(as case 1), then one conditional PUT (``IfNoneMatch="*"``) with boto3.
moto (``ThreadedMotoServer`` on 127.0.0.1, an ephemeral port) runs in a child
process started here, so its request handling competes for the two cores but
not for this process's GIL, as a remote store would not.  CPU is this
process's (the client's) only.
"""

from __future__ import annotations

import itertools
import logging
import sys
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq

from coldtier._engine.settings import Settings

from ._common import (
    S3_CREDENTIALS,
    Row,
    boto_client,
    cpu_note,
    empty_prefix,
    interleave,
    median,
    moto_server,
    sample_table,
)
from .case1_arrow_local import EVENTS, exact_options

START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)
CREDENTIALS = S3_CREDENTIALS


def run(quick: bool = False) -> list[Row]:
    try:
        import moto.server

        import coldtier.backends.s3
    except ImportError as exc:
        return [
            Row("3", "1M events → S3 (moto)", None, None, target="≤ 1.00", note=f"skipped: no S3 backend ({exc})")
        ]
    del moto, coldtier.backends.s3  # only checked for
    import coldtier

    table = sample_table(EVENTS)
    reps = 3 if quick else 5
    with moto_server() as endpoint:
        client = boto_client(endpoint)
        client.create_bucket(Bucket="bench")
        counter = itertools.count()

        def bare() -> None:
            prefix = f"bare{next(counter)}"
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink, **exact_options())  # type: ignore[arg-type]
            client.put_object(
                Bucket="bench", Key=f"{prefix}/x.parquet", Body=sink.getvalue().to_pybytes(), IfNoneMatch="*"
            )
            empty_prefix(client, "bench", prefix)

        def archive(**options: object) -> None:
            prefix = f"coldtier{next(counter)}"
            url = f"s3://bench/{prefix}?endpoint_url={endpoint}&region=us-east-1"
            archive = coldtier.open_archive(url, **CREDENTIALS, **options)
            assert archive.archive("acme", START, END, table).events == EVENTS
            empty_prefix(client, "bench", prefix)

        times = interleave({"bare": bare, "workers=1": lambda: archive(workers=1), "defaults": archive}, reps)
        client.close()
    base = median(times["bare"])
    rows = []
    for name, what, limit, label in (
        ("workers=1", "1M events, Arrow → S3 (moto), workers=1", 1.20, "floor ≤ 1.20"),
        ("defaults", f"1M events, Arrow → S3 (moto), defaults (workers={Settings().workers})", 1.00, "≤ 1.00"),
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
                note="client " + cpu_note(name, "bare") + " (baseline: same properties, to bytes + 1 PUT)",
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
