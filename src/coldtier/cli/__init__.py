"""The ``coldtier`` command: archive, list, read back, verify and probe from a shell.

::

    coldtier backends [--json]
    coldtier archive [URL] FILE [--tenant T] [--start S] [--end E] [--json]
    coldtier ls      [URL] [--tenant T] [--start S] [--end E | --day D] [--json]
    coldtier read    [URL] --tenant T [--start S] [--end E | --day D] [--format jsonl|parquet|table] [-o OUT]
    coldtier verify  [URL] [--tenant T] [--shard I/N] [--state FILE [--recheck-after DAYS]] [--sample P] [--json]
    coldtier probe   [URL] [--json]
    coldtier shred   [URL] --tenant T --encryption KEYS --yes [--json]
    coldtier keys    rotate --encryption KEYS --to NEW_KEYS | providers

``URL`` may be left out when ``COLDTIER_URL`` is set.  Backend options go in
the URL's query string or as repeated ``--opt name=value`` (credentials only
in ``--opt`` or the environment).  Exit codes: 0 ok, 1 problems found or the
operation failed, 2 usage or input error.  Every failure is one line on
stderr, whatever a library logs (``-v``/``-vv`` show log records,
``COLDTIER_DEBUG=1`` the traceback).  Progress bars go to stderr, only when
stdout and stderr are both a terminal.

Built on the public API only (``coldtier``, ``coldtier.jsonl``), one module
per concern: ``_common`` (URL, options, times, output), ``_progress``,
``_input`` (the file ``archive`` reads), ``_archive_cmd``, ``_read``,
``_commands`` (backends, ls, verify, probe), ``_keys_cmd`` (shred, keys,
``--encryption``, ``--new-key``), ``_main`` (group, logging, exit
codes).  Needs the ``cli`` extra: ``pip install 'coldtier[cli]'``.
"""

from __future__ import annotations

import sys

try:
    import click  # noqa: F401 - checked here so that a missing extra is one line
    import tqdm  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    sys.stderr.write(f"coldtier: error: the command line needs {exc.name}: pip install 'coldtier[cli]'\n")
    raise SystemExit(2) from None

from ._main import cli, main, run

__all__ = ["cli", "main", "run"]
