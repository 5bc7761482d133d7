"""s3fs with bounded time: one retry loop (botocore's), no ``Expect: 100-continue``, a deadline per request.

See :mod:`coldtier.backends._deadline` for the bound and why each piece is needed.
"""

from __future__ import annotations

from typing import Any

from s3fs import S3FileSystem

from ._deadline import Limits

__all__ = ["BoundedS3FileSystem", "botocore_config"]


def botocore_config(limits: Limits) -> dict[str, Any]:
    """botocore ``Config`` keywords (s3fs ``config_kwargs``): the only retry loop, and its timeouts."""
    return {
        "retries": {"mode": "standard", "total_max_attempts": limits.attempts},
        "connect_timeout": limits.timeout,
        "read_timeout": limits.timeout,
    }


def _no_expect(request: Any, **_: Any) -> None:
    """botocore ``before-send`` hook: send a PUT's body at once, not after ``100 Continue``.

    botocore adds ``Expect: 100-continue`` to every PutObject; aiohttp then
    waits for ``100 Continue`` with no timeout at all, so a server that
    accepts the connection and never answers would hold the PUT forever.
    The cost: a refused create (412) is answered after the body, not before.
    ``Expect`` is not signed, so removing it here is safe.
    """
    request.headers.pop("Expect", None)


class BoundedS3FileSystem(S3FileSystem):  # type: ignore[misc]
    """s3fs with one retry loop (botocore's), no ``Expect: 100-continue``, a deadline per request."""

    #: s3fs's own loop (``_error_wrapper``, default 5 tries) multiplied botocore's attempts: off.
    retries = 1

    def __init__(self, *args: Any, limits: Limits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # a keyword, so a pickled filesystem keeps its limits
        self.limits = limits or Limits()

    async def set_session(self, *args: Any, **kwargs: Any) -> Any:
        client = await super().set_session(*args, **kwargs)
        client.meta.events.register("before-send.s3.PutObject", _no_expect, unique_id="coldtier-no-expect")
        return client

    async def _call_s3(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        # Every request s3fs makes (each LIST page, HEAD, GET, DELETE) comes through here.  The
        # client is made first, outside the deadline: building it is not the store being slow.
        await self.set_session()
        return await self.limits.within(super()._call_s3(method, *args, **kwargs), self.limits.bound())
