"""gcsfs with bounded time: one retry loop of its own per request, a deadline per attempt, refusals by status.

See :mod:`coldtier.backends._deadline` for the bound and why each piece is needed.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson
from gcsfs.core import GCSFileSystem
from gcsfs.retry import is_retriable, validate_response

from ..store import backoff
from ._deadline import Limits, is_timeout

__all__ = ["BoundedGCSFileSystem", "GCSRequestError", "aiohttp_timeout", "message"]


class GCSRequestError(OSError):
    """GCS answered a request with an error status (kept in :attr:`status`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GCS answered HTTP {status}: {message}")
        self.status = status


def aiohttp_timeout(limits: Limits) -> aiohttp.ClientTimeout:
    """Per attempt: ``timeout`` to connect and per read; no total (large transfers stay possible)."""
    return aiohttp.ClientTimeout(total=None, sock_connect=limits.timeout, sock_read=limits.timeout)


class BoundedGCSFileSystem(GCSFileSystem):  # type: ignore[misc]
    """gcsfs whose every request is tried ``max_attempts`` times, each attempt within its deadline.

    gcsfs wraps ``_request`` in ``retry_request`` (6 tries, backoff up to
    ~31 s in all, fixed when gcsfs is imported); this ``_request`` is one
    loop of its own around a single request, as gcsfs makes it, and reports a
    refusal (401/403) by its status (gcsfs's own is a bare ``OSError``).
    """

    def __init__(
        self, *args: Any, limits: Limits | None = None, max_get_bytes: int = 0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)  # keywords, so a pickled filesystem keeps them
        self.limits = limits or Limits()
        #: Bytes a GET may bring (the archive's ``max_object_bytes``): widens its deadline.
        self.max_get_bytes = max_get_bytes

    async def _request(
        self,
        method: str,
        path: str,
        *args: Any,
        headers: Any = None,
        json: Any = None,
        data: Any = None,
        cache_type: Any = None,
        cache_source: Any = None,
        **kwargs: Any,
    ) -> Any:
        nbytes = len(data) if isinstance(data, (bytes, bytearray, memoryview)) else 0
        if method.upper() == "GET":
            nbytes = max(nbytes, self.max_get_bytes)
        await self._set_session()  # outside the deadline: not the store being slow

        async def once() -> Any:
            if hasattr(data, "seek"):
                data.seek(0)
            async with self.session.request(
                method=method,
                url=self._format_path(path, args),
                params=self._get_params(kwargs),
                json=json,
                headers=self._get_headers(headers, cache_type=cache_type, cache_source=cache_source),
                data=data,
                timeout=self.requests_timeout,
            ) as r:
                contents = await r.read()
                if r.status in (401, 403):
                    raise GCSRequestError(r.status, message(contents))
                validate_response(r.status, contents, path, args)
                return r.status, r.headers, r.request_info, contents

        for delay in itertools.chain(backoff(self.limits.attempts, base=0.2, cap=20.0), [None]):
            try:
                return await self.limits.within(once(), self.limits.attempt_bound(nbytes))
            except GCSRequestError:
                raise
            except Exception as exc:
                if delay is None or not (is_timeout(exc) or is_retriable(exc)):
                    raise
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


def message(answer: bytes) -> str:
    try:
        text = str(orjson.loads(answer)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = answer.decode("utf-8", "replace").strip() or "(no body)"
    return text[:200]
