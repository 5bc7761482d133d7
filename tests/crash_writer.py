"""A writer process for the crash and race tests: archive one batch, report it.

    python -m tests.crash_writer URL TABLE.arrow TENANT [--go FILE]

Options for ``open_archive`` (credentials included) come as JSON in the
environment variable ``COLDTIER_WRITER_OPTIONS``, never on the command line.
The batch is an Arrow IPC file (memory-mapped, so start-up is fast); the
window is its first and last timestamp.  The process prints ``ready`` once
everything is loaded, waits for ``--go FILE`` to exist if given (a barrier
across processes), archives, and prints ``done`` and the receipt as JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC

import pyarrow as pa

import coldtier


def main(argv: list[str]) -> int:
    url, table_path, tenant = argv[:3]
    go = argv[argv.index("--go") + 1] if "--go" in argv else None
    options = json.loads(os.environ.get("COLDTIER_WRITER_OPTIONS", "{}"))
    with pa.memory_map(table_path) as source:
        table = pa.ipc.open_file(source).read_all()
    ts = table.column("timestamp")
    start, end = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(url, **options)
    print("ready", flush=True)
    if go is not None:
        while not os.path.exists(go):
            time.sleep(0.002)
    began = time.monotonic()
    receipt = archive.archive(tenant, start, end, table)
    result = {
        "keys": list(receipt.keys),
        "events": receipt.events,
        "created": receipt.created,
        "seconds": time.monotonic() - began,
    }
    print("done " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
