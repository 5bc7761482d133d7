"""Time to error of every operation against a silent server (accepts TCP, never answers).

    PYTHONPATH=src python benchmarks/silent_server.py [--cap 150] [--query 'timeout=2&max_attempts=1']
        [--backends s3,r2,gcs] [--ops archive,probe,objects,read,verify,tenants]

Each (backend, operation) runs in its own daemon thread against its own
archive, one after the other; a run still going after ``--cap`` seconds is
reported as ``> cap`` (and left running).  Prints one line per case: seconds, and the error's type and text.
"""

from __future__ import annotations

import argparse
import os
import socket
import threading
import time
from typing import Any

import coldtier
from coldtier.testing import make_events, window_of


class SilentServer:
    """127.0.0.1, ephemeral port: accepts connections and holds them, never reading or writing."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


CREDS = {"key": "AKIASILENTSERVER", "secret": "silent-secret"}


def open_(backend: str, url: str, query: str) -> coldtier.Archive:
    q = f"&{query}" if query else ""
    if backend == "s3":
        return coldtier.open_archive(f"s3://bucket/p?endpoint_url={url}&region=us-east-1{q}", **CREDS)
    if backend == "r2":
        return coldtier.open_archive(f"r2://bucket/p?endpoint_url={url}{q}", **CREDS)
    return coldtier.open_archive(f"gs://bucket/p?endpoint_url={url}{q}")


def run(backend: str, op: str, url: str, query: str) -> Any:
    events = make_events("acme", 50)
    archive = open_(backend, url, query)
    if op == "archive":
        return archive.archive("acme", *window_of(events), events)
    if op == "probe":
        return archive.probe()
    if op == "objects":
        return archive.objects("acme")
    if op == "read":
        return archive.read("acme")
    if op == "verify":
        return archive.verify()
    if op == "tenants":
        return archive.tenants()
    raise ValueError(op)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cap", type=float, default=150)
    parser.add_argument("--query", default="")
    parser.add_argument("--backends", default="s3,r2,gcs")
    parser.add_argument("--ops", default="archive,probe,objects,read,verify,tenants")
    args = parser.parse_args()
    server = SilentServer()
    results: dict[tuple[str, str], str] = {}

    def case(backend: str, op: str) -> None:
        began = time.monotonic()
        try:
            run(backend, op, server.url, args.query)
            outcome = "returned!"
        except Exception as exc:
            outcome = f"{type(exc).__module__}.{type(exc).__name__}: {str(exc)[:240]}"
        results[(backend, op)] = f"{time.monotonic() - began:7.1f} s  {outcome}"

    cases = [(b, o) for b in args.backends.split(",") for o in args.ops.split(",")]
    print(f"query={args.query!r} cap={args.cap}", flush=True)
    for key in cases:  # one at a time: parallel clients share fsspec's one event loop
        t = threading.Thread(target=case, args=key, daemon=True)
        t.start()
        t.join(args.cap)
        print(
            f"{key[0]:4} {key[1]:8} {results.get(key, f'  > {args.cap:.0f} s  (still running)')}", flush=True
        )
    os._exit(0)


if __name__ == "__main__":
    main()
