"""A repack process for the kill trials: ``python crash_repack.py URL OPTIONS_JSON TARGET_BYTES``.

Prints ``ready`` once coldtier is imported and the archive open, then repacks
tenant ``acme`` with no grace period (merged objects, receipt, deletes),
printing a line after each step (a source read, an object written, the
receipt, each delete), so the parent can kill it at a chosen step.
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta

import coldtier


def main() -> None:
    url, options, target = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
    archive = coldtier.open_archive(url, **options)
    print("ready", flush=True)
    archive.repack("acme", target_bytes=target, grace=timedelta(0), progress=lambda what: print(what, flush=True))
    print("done", flush=True)


if __name__ == "__main__":
    main()
