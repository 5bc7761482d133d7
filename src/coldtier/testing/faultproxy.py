"""A loopback HTTP/1.1 fault proxy for tests: real faults at the wire.

It sits between a client (s3fs, gcsfs, the CLI) and an emulator (moto,
fake-gcs-server) and, per matching request, can:

* ``drop``     forward the request, let the server act on it, then close the
               client's connection without a response (a lost response);
* ``status``   answer ``status`` itself without forwarding (5xx/429 bursts);
* ``reset``    read part of the request body, then reset the connection
               without forwarding (a cut upload);
* ``delay``    wait ``delay`` seconds before forwarding (slow responses);
* ``throttle`` forward the request body at ``rate`` bytes per second; if the
               client goes away before the body is through (a killed
               process), the upstream connection is reset mid-body, as a
               real upload of a larger object would be cut;
* ``truncate`` forward, then send the response's head and only the first
               ``keep`` fraction of its body and reset the connection (a
               response cut mid-body: a GET, a listing page); with
               ``relength=True`` the ``Content-Length`` is that of the cut
               body and the connection is kept (a middlebox or server that
               hands out a short body as if it were whole);
* modifiers on forwarded requests: ``strip_header`` (e.g. ``If-None-Match``),
  ``strip_query`` (e.g. ``ifGenerationMatch``) and ``set_query`` (add or
  replace parameters, e.g. ``{"max-keys": "3"}`` to page a listing);
* ``hook``: called (in the proxy's thread, before the rule acts) each time
  the rule matches, e.g. to delete the object a GET is about to fetch.

Rules match on method and a regex searched in the request target (and,
with ``probability`` below 1, on a random share of those requests), apply
``times`` times (``None``: forever), first match wins.  Every request is
logged in :attr:`FaultProxy.log`.  Usage::

    with FaultProxy("http://127.0.0.1:5000") as proxy:
        proxy.add(Rule(method="PUT", action="status", status=503, times=2))
        ... use proxy.url as the endpoint ...
        assert [r.method for r in proxy.log] == [...]
"""

from __future__ import annotations

import asyncio
import random
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

__all__ = ["FaultProxy", "Logged", "Rule"]


@dataclass
class Rule:
    action: str  # drop | status | reset | delay | throttle | truncate | pass
    method: str | None = None
    path: str | None = None  # regex searched in the request target (path + query)
    times: int | None = 1  # None: forever
    status: int = 503
    body: bytes = b""
    delay: float = 0.0
    rate: int = 0  # bytes per second for throttle
    strip_header: str | None = None
    strip_query: str | None = None
    set_query: dict[str, str] | None = None
    keep: float = 0.5  # fraction of the response body truncate sends
    relength: bool = False  # truncate: declare the cut length and keep the connection
    hook: Callable[[], object] | None = None
    probability: float = 1.0  # the share of matching requests the rule takes (drawn per request)
    applied: int = 0

    def matches(self, method: str, target: str) -> bool:
        if self.times is not None and self.applied >= self.times:
            return False
        if self.method is not None and self.method != method:
            return False
        if self.path is not None and re.search(self.path, target) is None:
            return False
        return self.probability >= 1 or random.random() < self.probability


@dataclass
class Logged:
    method: str
    target: str
    headers: dict[str, str] = field(default_factory=dict)
    action: str = "pass"
    status: int | None = None


_REASONS = {429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


class FaultProxy:
    """A threaded asyncio proxy on 127.0.0.1 (ephemeral port) in front of ``upstream``."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rules: list[Rule] = []
        self.log: list[Logged] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._client, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            # Connections accepted while shutting down start tasks of their own: repeat.
            for _ in range(5):
                tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
                if not tasks:
                    break
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            # Closed transports release their sockets on the next loop iterations.
            await asyncio.sleep(0.05)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.log.clear()

    def requests(self, method: str | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if method is None or r.method == method]

    def _match(self, method: str, target: str) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, target):
                    rule.applied += 1
                    return rule
        return None

    # -- the proxy -----------------------------------------------------------

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio keeps only weak references to tasks: once the client's side is
        # lost, a task waiting on the upstream would be collected mid-request.
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        except asyncio.CancelledError:
            pass  # proxy shutting down
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
        if not head:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = [tuple(line.split(":", 1)) for line in lines[1:] if ":" in line]
        lower = {k.strip().lower(): v.strip() for k, v in headers}
        rule = self._match(method, target)
        entry = Logged(
            method, target, {k.strip(): v.strip() for k, v in headers}, rule.action if rule else "pass"
        )
        with self._lock:
            self.log.append(entry)

        if lower.get("expect", "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if rule is not None and rule.action == "reset":
            length = int(lower.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(max(1, length // 2))
            _abort(writer)
            return False
        body = await _read_body(reader, lower)
        if rule is not None and rule.action == "status":
            entry.status = rule.status
            payload = (
                rule.body or b"<Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
            )
            writer.write(
                f"HTTP/1.1 {rule.status} {_REASONS.get(rule.status, 'Error')}\r\n"
                f"Content-Length: {len(payload)}\r\nContent-Type: application/xml\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
            return True
        if rule is not None and rule.hook is not None:
            rule.hook()
        if rule is not None and rule.action == "delay":
            await asyncio.sleep(rule.delay)

        if rule is not None and (rule.strip_query or rule.set_query):
            parts = urlsplit(target)
            replaced = set(rule.set_query or {}) | {rule.strip_query}
            query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in replaced]
            query += list((rule.set_query or {}).items())
            target = parts.path + (f"?{urlencode(query)}" if query else "")
        drop = {"connection", "keep-alive", "proxy-connection", "expect"}
        if rule is not None and rule.strip_header:
            drop.add(rule.strip_header.lower())
        out = [f"{method} {target} {version}"]
        out += [f"{k}:{v}" for k, v in headers if k.strip().lower() not in drop]
        out.append("Connection: close")
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        try:
            up_writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1"))
            if rule is not None and rule.action == "throttle" and rule.rate > 0:
                step = max(1, rule.rate // 20)
                for offset in range(0, len(body), step):
                    if reader.at_eof() or reader.exception() is not None:  # client gone: cut mid-body
                        _abort(up_writer)
                        return False
                    up_writer.write(body[offset : offset + step])
                    await up_writer.drain()
                    await asyncio.sleep(step / rule.rate)
            else:
                up_writer.write(body)
            await up_writer.drain()
            response = await up_reader.read()  # upstream closes: Connection: close
        finally:
            up_writer.close()
        while response.startswith(b"HTTP/1.1 1"):  # skip interim 1xx responses
            response = response[response.find(b"\r\n\r\n") + 4 :]
        status_line = response.split(b"\r\n", 1)[0].split(b" ")
        entry.status = int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else None
        if rule is not None and rule.action == "drop":
            _abort(writer)
            return False
        # Re-frame the upstream response for a keep-alive client.
        head_end = response.find(b"\r\n\r\n")
        resp_head, resp_body = response[:head_end], response[head_end + 4 :]
        resp_lines = resp_head.decode("latin-1").split("\r\n")
        resp_headers = [tuple(line.split(":", 1)) for line in resp_lines[1:] if ":" in line]
        chunked = any(
            k.strip().lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in resp_headers
        )
        if chunked:
            resp_body = _dechunk(resp_body)
        kept = [
            f"{k}:{v}"
            for k, v in resp_headers
            if k.strip().lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive")
        ]
        no_body = method == "HEAD" or entry.status in (204, 304)
        declared = next((v.strip() for k, v in resp_headers if k.strip().lower() == "content-length"), None)
        cut = rule is not None and rule.action == "truncate" and not no_body
        sent = resp_body[: int(len(resp_body) * rule.keep)] if cut and rule is not None else resp_body
        length = len(sent) if cut and rule is not None and rule.relength else len(resp_body)
        kept.append(f"Content-Length: {declared if no_body and declared is not None else length}")
        writer.write(("\r\n".join([resp_lines[0], *kept]) + "\r\n\r\n").encode("latin-1"))
        if not no_body:
            writer.write(sent)
        await writer.drain()
        if cut and rule is not None and not rule.relength:
            _abort(writer)
            return False
        return lower.get("connection", "").lower() != "close"


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raw = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            chunk = await reader.readexactly(size + 2)
            raw += size_line + chunk
            if size == 0:
                return raw
    length = int(headers.get("content-length", "0") or 0)
    return await reader.readexactly(length) if length else b""


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        line, _, rest = data.partition(b"\r\n")
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        data = rest[size + 2 :]
    return out


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST, as a dropped connection looks on the wire."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
