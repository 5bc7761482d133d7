"""How long one request to an object store may take: the ``timeout`` and ``max_attempts`` options.

Every request a remote backend makes (a PUT or upload, a HEAD, a GET, one
LIST page, a DELETE) is bounded twice:

1. **By the HTTP client** (the precise, usual case).  Each attempt may wait
   ``timeout`` seconds to connect and ``timeout`` seconds for each read of the
   answer; a request is tried at most ``max_attempts`` times in all, with
   jittered exponential backoff between attempts (botocore's for S3/R2,
   coldtier's own for GCS).  Only one retry loop runs per request: s3fs's and
   gcsfs's own loops, which multiplied the attempts, are switched off.
2. **By a hard deadline** around each request, for what the client cannot
   time out: aiohttp waits for ``100 Continue`` forever and has no write
   timeout, so a server that accepts a connection and stops reading would
   hold a PUT indefinitely.  The deadline is :meth:`Limits.bound`::

       bound = max_attempts * (2 * timeout + body_bytes / MIN_RATE) + backoff(max_attempts)
       backoff(n) = sum(min(2 ** i, 20) for i in range(n - 1))   # 0, 1, 3, 7, 15 s for n = 1..5

   ``body_bytes`` is what the request sends (a PUT) or may receive (a GET:
   the object's size, or ``max_object_bytes`` when unknown); ``MIN_RATE`` is
   1 MiB/s, the slowest transfer treated as alive.

Against a server that accepts connections and never answers, a request
therefore fails after ``max_attempts * timeout`` seconds plus backoff (the
client's read timeout), and never later than ``bound``.  Defaults:
``timeout=15``, ``max_attempts=3``: a silent server is detected in about 48 s,
and no request without a large body outlives ``bound`` = 93 s.

A timeout becomes :class:`StoreTimeout` naming the request and what timed
out, e.g. ``PUT of acme/2024-03/archive...parquet timed out after 4.3 s (no
answer within timeout=2 s, max_attempts=2; bound 9 s)``; the engine adds the
store and the operation (``storing ... in s3://bucket/prefix failed: ...``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from ._specs import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT  # asyncio-free, for the options reference

__all__ = [
    "DEFAULT_ATTEMPTS",
    "DEFAULT_TIMEOUT",
    "MIN_RATE",
    "DeadlineExceeded",
    "Limits",
    "StoreTimeout",
    "guarded",
    "is_timeout",
]

T = TypeVar("T")

#: Bytes per second below which a transfer counts as stalled (only the hard deadline uses it).
MIN_RATE = 2**20
_MAX_BACKOFF = 20.0


@dataclass(frozen=True, slots=True)
class Limits:
    """``timeout`` (seconds, to connect and per read) and ``max_attempts`` (per request, first included)."""

    timeout: float = DEFAULT_TIMEOUT
    attempts: int = DEFAULT_ATTEMPTS

    def backoff(self, attempt: int) -> float:
        """The most the pause after failed attempt ``attempt`` (1-based) may last."""
        return min(2.0 ** (attempt - 1), _MAX_BACKOFF)

    def bound(self, nbytes: int = 0) -> float:
        """Seconds one request (all its attempts) may take at most; see the module docstring."""
        per_attempt = 2 * self.timeout + nbytes / MIN_RATE
        return self.attempts * per_attempt + sum(self.backoff(i) for i in range(1, self.attempts))

    def attempt_bound(self, nbytes: int = 0) -> float:
        """Seconds one attempt may take at most (for a retry loop of coldtier's own)."""
        return 2 * self.timeout + nbytes / MIN_RATE

    def describe(self) -> str:
        return f"timeout={self.timeout:g} s, max_attempts={self.attempts}"

    async def within(self, awaitable: Awaitable[T], seconds: float) -> T:
        """``awaitable``, cancelled after ``seconds``: then :class:`DeadlineExceeded`."""
        task = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({task}, timeout=seconds)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            raise DeadlineExceeded(seconds)
        return task.result()

    def message(self, what: str, began: float, exc: BaseException, nbytes: int = 0) -> str:
        """``"<what> timed out after 4.3 s (...)"`` for a timeout ``exc`` of a request begun at ``began``."""
        elapsed = time.monotonic() - began
        if isinstance(exc, DeadlineExceeded) or _cause(exc, DeadlineExceeded):
            why = f"still unfinished at the hard deadline of {self.bound(nbytes):.0f} s; {self.describe()}"
        else:
            why = f"no answer within {self.describe()}: {_detail(exc)}; bound {self.bound(nbytes):.0f} s"
        return f"{what} timed out after {elapsed:.1f} s ({why})"


class DeadlineExceeded(TimeoutError):
    """A request outlived its hard deadline and was cancelled."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"cancelled at the hard deadline of {seconds:.0f} s")
        self.seconds = seconds


class StoreTimeout(TimeoutError):
    """A request to the store timed out; the message names the request, its limits and the bound."""


def guarded(limits: Limits, what: str, call: Callable[[], T], *, nbytes: int = 0) -> T:
    """``call()``, a timeout of any client library turned into :class:`StoreTimeout` naming the request.

    ``what`` is e.g. ``"PUT of <key>"``; other errors pass unchanged (the
    engine translates them, asking the store's ``classify``).
    """
    began = time.monotonic()
    try:
        return call()
    except StoreTimeout:
        raise
    except Exception as exc:
        if not is_timeout(exc):
            raise
        raise StoreTimeout(limits.message(what, began, exc, nbytes)) from exc


def is_timeout(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or what caused it) is a timeout of any client library we use."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, TimeoutError) or any("Timeout" in k.__name__ for k in type(exc).__mro__):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _cause(exc: BaseException | None, kind: type[BaseException]) -> bool:
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def _detail(exc: BaseException) -> str:
    """The most telling text in ``exc``'s chain (fsspec's FSTimeoutError carries none)."""
    found: BaseException | None = exc
    for _ in range(8):
        if found is None or str(found).strip():
            break
        found = found.__cause__ or found.__context__
    text = str(found or exc).strip() or type(exc).__name__
    return text if len(text) < 160 else text[:160] + "…"
