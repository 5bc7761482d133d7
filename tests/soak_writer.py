"""A writer process for the soak test: archive small batches in a loop, print each acknowledgement.

    python -m tests.soak_writer URL WRITER_ID SECONDS

Options for ``open_archive`` come as JSON in ``COLDTIER_WRITER_OPTIONS``.
Every call archives a batch made by ``make_table(EVENTS, start_us=..., seed=...)``
(so the test can rebuild its event ids) for one of ``TENANTS`` tenants in a
window of its own; one call in ten repeats an earlier batch of this writer.
Every call first prints ``try {...}`` (writer and call); an acknowledged call
then prints ``ack {...}``, a failed one ``err {...}``; the process may be
SIGKILLed at any point (a line half-written is not an ack); SIGTERM ends it
after its current call.  A call tried but
never acknowledged is the caller's to retry (it kept its data): the soak test
retries each one after the run, as the event store's next pass would.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from datetime import UTC, datetime

import coldtier
from coldtier.testing._data import make_table

EVENTS = 40
TENANTS = 12
BASE_US = 1_709_251_200_000_000  # 2024-03-01
WINDOW_US = 10_000_000  # 10 s a call; calls of a writer follow each other, writers 10 000 windows apart


def batch(writer: int, call: int) -> tuple[str, int, int]:
    """Tenant, start (µs) and seed of ``writer``'s ``call``-th batch."""
    rng = random.Random(writer * 1_000_003 + call)
    return (
        f"t{rng.randrange(TENANTS)}",
        BASE_US + (writer * 10_000 + call) * WINDOW_US,
        writer * 1_000_003 + call,
    )


def archive_one(archive: coldtier.Archive, writer: int, call: int) -> dict[str, object]:
    tenant, start_us, seed = batch(writer, call)
    table = make_table(EVENTS, start_us=start_us, seed=seed)
    start = datetime.fromtimestamp(start_us / 1e6, UTC)
    end = datetime.fromtimestamp((start_us + (EVENTS - 1) * 1_000) / 1e6, UTC)
    receipt = archive.archive(tenant, start, end, table)
    return {"writer": writer, "call": call, "keys": list(receipt.keys), "created": receipt.created}


def main(argv: list[str]) -> int:
    url, writer, seconds = argv[0], int(argv[1]), float(argv[2])
    archive = coldtier.open_archive(url, **json.loads(os.environ.get("COLDTIER_WRITER_OPTIONS", "{}")))
    rng = random.Random(writer)
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))  # stop after this call
    print("ready", flush=True)
    deadline = time.monotonic() + seconds
    call = 0
    while time.monotonic() < deadline and not stopping:
        number = rng.randrange(call) if call and rng.random() < 0.1 else call
        print("try " + json.dumps({"writer": writer, "call": number}), flush=True)
        began = time.monotonic()
        try:
            ack = archive_one(archive, writer, number)
        except coldtier.ColdTierError as exc:
            print(
                "err " + json.dumps({"type": type(exc).__name__, "seconds": time.monotonic() - began}),
                flush=True,
            )
        else:
            print("ack " + json.dumps({**ack, "seconds": time.monotonic() - began}), flush=True)
        call += number == call
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
