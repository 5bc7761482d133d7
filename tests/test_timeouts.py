"""Time is bounded: every operation on every remote backend ends within the bound of its options.

The bound (``coldtier.backends._deadline``): one request with ``timeout=T`` and
``max_attempts=A`` takes at most ``A * (2T + bytes / MIN_RATE) + backoff(A)``
seconds, and a server that accepts connections and never answers is given up
on after about ``A * T`` plus backoff.  Here:

* a **silent server** (accepts TCP connections, never reads or answers) for
  S3, R2 and GCS and each operation — archive, probe, objects, read, verify,
  tenants — must raise a coldtier error naming the store and the request that
  timed out, within the bound (plus a generous margin), and no sooner than
  its attempts take;
* the same server holding a **large PUT/upload body** unread: aiohttp has no
  write timeout, only the hard deadline ends it;
* the **fault proxy's stall** (a response held back) in front of moto and
  fake-gcs-server, request by request: the GET of ``read``, the GET of
  ``verify`` (a finding, not an exception), the HEAD that confirms an existing
  object, the PUT/upload, and a LIST; nothing is stored by a stalled write.

Each call runs in a daemon thread joined with a cap, so a regression fails
the test instead of hanging the suite.  Default options (``timeout=15``,
``max_attempts=3``: about 48 s against a silent server) are checked through
the configuration they produce, not by waiting; ``benchmarks/silent_server.py``
measures them.
"""

from __future__ import annotations

import base64
import gc
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import coldtier
from coldtier import ArchiveReadError, ArchiveWriteError, ColdTierError
from coldtier.backends._deadline import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, Limits
from coldtier.testing import FaultProxy, Rule, make_events, window_of
from tests._moto import CREDENTIALS, BotoBackdoor, archive_url

TIMEOUT, ATTEMPTS = 1, 2
EVENTS = make_events("acme", 50)
GCS_UPLOAD = r"^/upload/storage/v1/b/[^/]+/o\?"
STALL = 600.0  # seconds the proxy holds a response: "forever" for these tests


class SilentServer:
    """127.0.0.1, ephemeral port: accepts connections and holds them open, never reading or writing."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self._sock.settimeout(0.1)  # so the accepting thread sees close() promptly
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._held: list[socket.socket] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._closed.set()
        self._thread.join(5)
        self._sock.close()
        for conn in self._held:
            conn.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


def _silent_archive(backend: str, url: str, **options: Any) -> coldtier.Archive:
    if backend == "s3":
        return coldtier.open_archive(
            f"s3://bucket/p?endpoint_url={url}&region=us-east-1", **CREDENTIALS, **options
        )
    if backend == "r2":
        return coldtier.open_archive(f"r2://bucket/p?endpoint_url={url}", **CREDENTIALS, **options)
    return coldtier.open_archive(f"gs://bucket/p?endpoint_url={url}", **options)


def _timed(call: Callable[[], Any], cap: float) -> tuple[float, Any, BaseException | None]:
    """Run ``call`` in a daemon thread: (seconds, result, error); fails the test if it outlives ``cap``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = call()
        except BaseException as exc:  # handed to the test
            box["error"] = exc

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(cap)
    elapsed = time.monotonic() - began
    if thread.is_alive():
        pytest.fail(f"still running after {elapsed:.0f} s (bound with margin {cap:.0f} s)")
    return elapsed, box.get("result"), box.get("error")


def _margin(bound: float) -> float:
    return bound * 1.5 + 5


OPS: dict[str, tuple[Callable[[coldtier.Archive], Any], type[ColdTierError], int, int]] = {
    # operation: (call, error, requests that may each run to the bound, max_attempts used here).
    # probe's best-effort DELETE of its canary runs after the failed PUT; read, verify and
    # tenants fail on the same LIST request as objects (and probe on the same PUT as archive),
    # so one attempt (half the time) suffices for them.
    "archive": (lambda a: a.archive("acme", *window_of(EVENTS), EVENTS), ArchiveWriteError, 1, ATTEMPTS),
    "probe": (lambda a: a.probe(), ArchiveWriteError, 2, 1),
    "objects": (lambda a: a.objects("acme"), ArchiveReadError, 1, ATTEMPTS),
    "read": (lambda a: a.read("acme"), ArchiveReadError, 1, 1),
    "verify": (lambda a: a.verify(), ArchiveReadError, 1, 1),
    "tenants": (lambda a: a.tenants(), ArchiveReadError, 1, 1),
}
CASES = [(b, op) for b in ("s3", "gcs") for op in OPS] + [
    ("r2", "archive"),
    ("r2", "probe"),
    ("r2", "objects"),
]


@pytest.mark.parametrize(("backend", "op"), CASES)
def test_a_silent_server_fails_every_operation_within_the_bound(
    silent: SilentServer, backend: str, op: str
) -> None:
    call, error, requests, attempts = OPS[op]
    attempts = 1 if backend == "r2" else attempts  # r2 is s3's code path with other settings
    archive = _silent_archive(backend, silent.url, timeout=TIMEOUT, max_attempts=attempts)
    bound = requests * Limits(TIMEOUT, attempts).bound(64 * 2**10)
    elapsed, _, exc = _timed(lambda: call(archive), _margin(bound))
    assert isinstance(exc, error), repr(exc)
    message = str(exc)
    assert f" in {archive.description()} failed: " in message, message  # the store, then the request
    assert "timed out after" in message and f"timeout={TIMEOUT} s, max_attempts={attempts}" in message, (
        message
    )
    what = {"archive": "PUT of acme/", "probe": "PUT of _coldtier~probe/"}.get(op, "LIST of ")
    if backend == "gcs":
        what = what.replace("PUT", "upload")
    assert what in message, message
    if error is ArchiveWriteError:
        assert "keep the originals" in message
    assert elapsed <= _margin(bound), f"{elapsed:.1f} s, bound {bound:.0f} s"
    # Every attempt waited its read timeout: max_attempts is honoured, not cut short.
    assert elapsed >= 0.9 * TIMEOUT * attempts, f"{elapsed:.1f} s: fewer than {attempts} attempts?"


def _big_events(mib: int) -> list[coldtier.Event]:
    start = EVENTS[0].timestamp
    return [
        coldtier.Event(
            id=uuid.uuid4(),
            event_type="blob",
            entity_id=f"e{i}",
            tenant_id="acme",
            payload={"blob": base64.b64encode(os.urandom(2**20)).decode()},
            timestamp=start + timedelta(seconds=i),
        )
        for i in range(mib)
    ]


# aiohttp warns that a large bytes body "might lock the event loop" (the GCS upload sends bytes).
@pytest.mark.filterwarnings("ignore:Sending a large body directly with raw bytes")
@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_a_body_the_server_never_reads_ends_at_the_hard_deadline(
    silent: SilentServer, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ~27 MiB: far more than the loopback buffers hold, so the client blocks writing the body,
    # where neither aiohttp's read timeout nor botocore's applies.  A fast MIN_RATE keeps it short.
    monkeypatch.setattr("coldtier.backends._deadline.MIN_RATE", 64 * 2**20)
    events = _big_events(20)
    archive = _silent_archive(
        backend, silent.url, timeout=TIMEOUT, max_attempts=1, max_object_bytes=64 * 2**20, compression="none"
    )
    bound = Limits(TIMEOUT, 1).bound(64 * 2**20)
    elapsed, _, exc = _timed(lambda: archive.archive("acme", *window_of(events), events), _margin(bound) + 10)
    assert isinstance(exc, ArchiveWriteError), repr(exc)
    assert "hard deadline" in str(exc) and "keep the originals" in str(exc), str(exc)
    assert elapsed <= _margin(bound) + 10, f"{elapsed:.1f} s, bound {bound:.0f} s (+ encoding)"


# -- the fault proxy's stall, request by request, on real emulators ------------------------------


class Stalled:
    """A seeded archive behind a fault proxy; :meth:`stall` holds matching responses back."""

    def __init__(
        self, backend: str, proxy: FaultProxy, open_: Callable[..., coldtier.Archive], keys: Any
    ) -> None:
        self.backend, self.proxy, self.open, self.keys = backend, proxy, open_, keys

    def stall(self, method: str, path: str | None = None) -> None:
        self.proxy.add(Rule(action="delay", method=method, path=path, delay=STALL, times=None))

    def bounded(self, **options: Any) -> coldtier.Archive:
        return self.open(timeout=TIMEOUT, max_attempts=1, **options)


@pytest.fixture(params=["s3", "gcs"])
def stalled(request: pytest.FixtureRequest) -> Iterator[Stalled]:
    if request.param == "s3":
        moto_url = request.getfixturevalue("moto_url")
        bucket = request.getfixturevalue("fresh_bucket")
        backdoor: Any = BotoBackdoor(request.getfixturevalue("s3_client"), bucket, "w")
        upstream = moto_url

        def url_for(endpoint: str) -> str:
            return archive_url("s3", bucket, "w", endpoint)

        creds: dict[str, Any] = CREDENTIALS
    else:
        from tests._fakegcs import HTTPBackdoor

        server = request.getfixturevalue("fake_gcs")
        bucket = request.getfixturevalue("gcs_bucket")
        backdoor = HTTPBackdoor(server, bucket, "w")
        upstream = server.url

        def url_for(endpoint: str) -> str:
            return f"gs://{bucket}/w?endpoint_url={endpoint}"

        creds = {}
    with FaultProxy(upstream) as proxy:
        yield Stalled(
            request.param,
            proxy,
            lambda **o: coldtier.open_archive(url_for(proxy.url), **creds, **o),
            backdoor,
        )


GET_OBJECT = {"s3": r"\.parquet(\?|$)", "gcs": r"\.parquet\?alt=media"}  # objects, not the ledger's receipts


def test_a_stalled_get_fails_read_within_the_bound(stalled: Stalled) -> None:
    receipt = stalled.open().archive("acme", *window_of(EVENTS), EVENTS)
    stalled.stall("GET", GET_OBJECT[stalled.backend])
    archive = stalled.bounded()
    bound = 3 * Limits(TIMEOUT, 1).bound(archive.store._get_bytes)  # type: ignore[attr-defined]
    elapsed, _, exc = _timed(lambda: archive.read("acme"), _margin(bound))
    assert isinstance(exc, ArchiveReadError), repr(exc)
    assert f"GET of {receipt.keys[0]} timed out" in str(exc), str(exc)
    assert elapsed < 5 * TIMEOUT + 5, f"{elapsed:.1f} s: the read timeout, not the deadline, should end it"


def test_a_stalled_get_is_a_verify_finding_within_the_bound(stalled: Stalled) -> None:
    receipt = stalled.open().archive("acme", *window_of(EVENTS), EVENTS)
    stalled.stall("GET", GET_OBJECT[stalled.backend])
    archive = stalled.bounded()
    elapsed, report, exc = _timed(lambda: archive.verify(), 60)
    assert exc is None, repr(exc)
    assert not report.ok and [p.key for p in report.problems] == list(receipt.keys)
    assert "timed out" in report.problems[0].message, report.problems
    assert elapsed < 5 * TIMEOUT + 5, f"{elapsed:.1f} s"


def test_a_stalled_write_fails_archive_within_the_bound_and_stores_nothing(stalled: Stalled) -> None:
    if stalled.backend == "s3":
        stalled.stall("PUT")
    else:
        stalled.stall("POST", GCS_UPLOAD)
    archive = stalled.bounded()
    bound = Limits(TIMEOUT, 1).bound(64 * 2**10)
    elapsed, _, exc = _timed(lambda: archive.archive("acme", *window_of(EVENTS), EVENTS), _margin(bound))
    assert isinstance(exc, ArchiveWriteError), repr(exc)
    assert "timed out" in str(exc) and "keep the originals" in str(exc), str(exc)
    assert elapsed <= _margin(bound)
    assert stalled.keys.list_keys() == []  # the proxy held the request: nothing reached the store


def test_a_stalled_confirmation_is_a_write_error_within_the_bound(stalled: Stalled) -> None:
    stalled.open().archive("acme", *window_of(EVENTS), EVENTS)  # the object exists: a retry must confirm it
    if stalled.backend == "s3":
        stalled.stall("HEAD")
    else:  # the object's metadata: a GET without alt=media
        stalled.stall("GET", r"/o/[^?]*\.parquet(\?(?!.*alt=media)|$)")
    archive = stalled.bounded()
    bound = 2 * Limits(TIMEOUT, 1).bound(64 * 2**10)  # the refused create, then the confirmation
    elapsed, _, exc = _timed(lambda: archive.archive("acme", *window_of(EVENTS), EVENTS), _margin(bound))
    assert isinstance(exc, ArchiveWriteError), repr(exc)
    assert "could not be confirmed" in str(exc) and "timed out" in str(exc), str(exc)
    assert elapsed <= _margin(bound)


# -- defaults: checked through the configuration they produce --------------------------------------


def test_default_bound_is_well_under_two_minutes() -> None:
    limits = Limits()
    assert (limits.timeout, limits.attempts) == (DEFAULT_TIMEOUT, DEFAULT_ATTEMPTS) == (15, 3)
    assert limits.bound() == 3 * 30 + 1 + 2 == 93
    # Against a silent server: every attempt waits its read timeout, plus backoff.
    assert DEFAULT_ATTEMPTS * DEFAULT_TIMEOUT + sum(limits.backoff(i) for i in (1, 2)) == 48
    assert Limits(2, 1).bound() == 4 and Limits(1, 2).bound() == 5


@pytest.mark.parametrize("backend", ["s3", "r2"])
def test_s3_options_reach_botocore_and_s3fs_retries_are_off(backend: str) -> None:
    for options, (timeout, attempts) in (({}, (15, 3)), ({"timeout": 4, "max_attempts": 2}, (4, 2))):
        archive = _silent_archive(backend, "http://127.0.0.1:9", **options)
        fs = archive.store._fs  # type: ignore[attr-defined]
        config = fs.config_kwargs
        assert config["connect_timeout"] == config["read_timeout"] == timeout
        assert config["retries"] == {"mode": "standard", "total_max_attempts": attempts}
        assert fs.retries == 1  # s3fs's own loop would multiply the attempts by 5
        assert (fs.limits.timeout, fs.limits.attempts) == (timeout, attempts)


def test_gcs_options_reach_aiohttp_and_gcsfs_retries_are_replaced() -> None:
    for options, (timeout, attempts) in (({}, (15, 3)), ({"timeout": 4, "max_attempts": 2}, (4, 2))):
        archive = _silent_archive("gcs", "http://127.0.0.1:9", **options)
        fs = archive.store._fs  # type: ignore[attr-defined]
        assert fs.requests_timeout.sock_read == fs.requests_timeout.sock_connect == timeout
        assert fs.requests_timeout.total is None
        assert (fs.limits.timeout, fs.limits.attempts) == (timeout, attempts)
        assert archive.store._timeout.sock_read == timeout  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()
