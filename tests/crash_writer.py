"""A writer process for the crash, race and disk-fault tests: archive one batch, report it.

    python -m tests.crash_writer URL TABLE.arrow TENANT [--go FILE]
        [--fsize BYTES [--die-on-xfsz]] [--as-user UID]

Options for ``open_archive`` (credentials included) come as JSON in the
environment variable ``COLDTIER_WRITER_OPTIONS``, never on the command line.
The batch is an Arrow IPC file (memory-mapped, so start-up is fast); the
window is its first and last timestamp.  The process prints ``ready`` once
everything is loaded, waits for ``--go FILE`` to exist if given (a barrier
across processes), archives, and prints ``done`` and the receipt as JSON, or
``error`` and the coldtier error as JSON (exit status 3).

``--fsize`` caps the size of any file this process writes (``RLIMIT_FSIZE``):
a write past it fails with ``EFBIG``, as on a full disk; with
``--die-on-xfsz`` the kernel kills the process instead (``SIGXFSZ``), in the
middle of writing the file.  ``--as-user`` drops root privileges (to that
uid and gid) once everything is loaded, so file modes apply to the writer.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys
import time
from datetime import UTC

import pyarrow as pa

import coldtier
from coldtier.testing._data import make_table


def main(argv: list[str]) -> int:
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # a hung writer can be asked where
    url, table_path, tenant = argv[:3]
    go = argv[argv.index("--go") + 1] if "--go" in argv else None
    options = json.loads(os.environ.get("COLDTIER_WRITER_OPTIONS", "{}"))
    with pa.memory_map(table_path) as source:
        table = pa.ipc.open_file(source).read_all()
    ts = table.column("timestamp")
    start, end = ts[0].as_py().replace(tzinfo=UTC), ts[-1].as_py().replace(tzinfo=UTC)
    archive = coldtier.open_archive(url, **options)
    if "--as-user" in argv:
        # Drop root's power to ignore file modes.  The interpreter lives where
        # an unprivileged user may not read, so load every code path first.
        warm = make_table(10)
        warm_ts = warm.column("timestamp")
        coldtier.open_archive(f"memory://warm-{os.getpid()}").archive(
            tenant, warm_ts[0].as_py().replace(tzinfo=UTC), warm_ts[-1].as_py().replace(tzinfo=UTC), warm
        )
        uid = int(argv[argv.index("--as-user") + 1])
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if "--fsize" in argv:
        limit = int(argv[argv.index("--fsize") + 1])
        # CPython ignores SIGXFSZ at start-up (so writes fail with EFBIG); restore the kill.
        if "--die-on-xfsz" in argv:
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    print("ready", flush=True)
    if go is not None:
        while not os.path.exists(go):
            time.sleep(0.002)
    began = time.monotonic()
    try:
        receipt = archive.archive(tenant, start, end, table)
    except coldtier.ColdTierError as exc:
        print("error " + json.dumps({"type": type(exc).__name__, "message": str(exc)}), flush=True)
        return 3
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
