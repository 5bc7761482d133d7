"""moto and the fault proxy in a process of their own, for the soak test.

    python -m tests.soak_server

Starts ``ThreadedMotoServer`` and a :class:`coldtier.testing.FaultProxy` in
front of it with the soak's fault rules (a share of the requests fail),
prints ``ready MOTO_URL PROXY_URL`` and serves until its stdin closes; then
prints ``faults N`` (the requests a rule acted on) and exits.  Kept out of
the test process so that the writers' and readers' threads there do not
starve the emulator and the proxy of the GIL (which would turn into
timeouts that measure the rig, not coldtier).
"""

from __future__ import annotations

import logging
import os
import sys

from moto.server import ThreadedMotoServer

from coldtier.testing import FaultProxy, Rule


def rules() -> list[Rule]:
    return [
        Rule(action="status", status=503, probability=0.03, times=None),
        Rule(action="drop", method="PUT", probability=0.02, times=None),
        Rule(action="reset", method="PUT", probability=0.02, times=None),
        Rule(action="truncate", method="GET", path=r"\.parquet$", probability=0.02, times=None),
    ]


def main() -> int:
    logging.disable(logging.INFO)  # werkzeug logs every request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    moto_url = f"http://{host}:{port}"
    with FaultProxy(moto_url) as proxy:
        made = (
            [proxy.add(rule) for rule in rules()]
            if os.environ.get("COLDTIER_SOAK_FAULTS", "1") != "0"
            else []
        )
        print(f"ready {moto_url} {proxy.url}", flush=True)
        sys.stdin.read()
        print(f"faults {sum(rule.applied for rule in made)}", flush=True)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
