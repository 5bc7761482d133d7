"""Google Cloud Storage: ``gs://bucket/prefix`` (also ``gcs://``), on gcsfs.

Every object is written by ONE request — a JSON API ``uploadType=multipart``
upload with ``ifGenerationMatch=0`` — so GCS commits it whole or not at all and
refuses (412) when the name already exists.  Resumable uploads (gcsfs's
``open("xb")``) are not used: emulators ignore the precondition on them.  A
single request must be re-sent whole after a failure, so objects are kept to
``max_object_bytes`` = 32 MiB by default (the engine splits larger batches).

Integrity: the upload carries the data's MD5 and CRC32C, which GCS checks
before committing (400 on mismatch); the response's hashes are compared
again, and the full SHA-256 is kept in the object metadata ``coldtier-sha256``
so a refused create is confirmed without a download.

Credentials come only from the keyword option ``token`` (anything gcsfs
accepts) or Google's default chain; an ``http://`` endpoint (an emulator) is
used anonymously unless a ``token`` is given.

Time is bounded (see :mod:`coldtier.backends._deadline`): every request — the
upload and each of gcsfs's (LIST page, object GET, metadata GET, DELETE) — is
tried at most ``max_attempts`` times, each attempt waiting at most ``timeout``
seconds to connect and per read, with a hard deadline per attempt.  gcsfs's
own loop (6 tries, about 30 s of backoff, per request; an aiohttp total
timeout not retried at all) is replaced by that one loop.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Self
from urllib.parse import quote

import aiohttp
import google_crc32c  # gcsfs -> google-cloud-storage -> google-crc32c
import orjson

from ..observe import retried
from ..store import (
    Fault,
    InvalidRequest,
    Location,
    OptionSpec,
    Stat,
    backoff,
    bucket_and_prefix,
    causes,
    kept_metadata,
    stored_metadata,
)
from ._deadline import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, Limits
from ._fsspec import FsspecStore
from ._gcsfs import BoundedGCSFileSystem, GCSRequestError, aiohttp_timeout, message
from ._specs import GCS_DEFAULT_OBJECT_BYTES, GCS_OPTIONS

__all__ = ["GCSRequestError", "GCSStore"]

#: Each object is one request, re-sent whole on failure: keep it small enough.
DEFAULT_MAX_OBJECT_BYTES = GCS_DEFAULT_OBJECT_BYTES
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class GCSStore(FsspecStore):
    """Objects in a GCS bucket: ``gs://bucket/prefix?storage_class=ARCHIVE``."""

    scheme = "gs"
    keeps_metadata = True
    reports_protection = True
    default_object_bytes = DEFAULT_MAX_OBJECT_BYTES
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = GCS_OPTIONS  # SDK-free, for the options reference
    #: Default ``max_attempts``: tries per request on 408/429/5xx, a lost connection or a timeout.
    upload_attempts: ClassVar[int] = DEFAULT_ATTEMPTS

    def __init__(
        self, fs: BoundedGCSFileSystem, bucket: str, prefix: str, scheme: str, options: Mapping[str, Any]
    ) -> None:
        root = f"{bucket}/{prefix}" if prefix else bucket
        super().__init__(fs, root, description=f"{scheme}://{root}", limits=fs.limits)
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._storage_class: str | None = options.get("storage_class")
        self._kms_key_name: str | None = options.get("kms_key_name")
        self._timeout = aiohttp_timeout(fs.limits)
        self._get_bytes = fs.max_get_bytes  # what a GET may bring: widens its deadline

    @classmethod
    def from_location(cls, location: Location) -> Self:
        options = dict(location.options)
        bucket, prefix = bucket_and_prefix(location, bucket_re=_BUCKET_RE)
        endpoint = options.pop("endpoint_url", None) or os.environ.get("STORAGE_EMULATOR_HOST") or None
        if endpoint is not None and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        token = options.pop("token", None)
        if token is None:  # gcsfs's own default would quietly fall back to anonymous
            plain_http = endpoint is not None and endpoint.startswith("http://")
            token = "anon" if plain_http else "google_default"  # gcsfs method names
        fs_options: dict[str, Any] = {"project": options.pop("project")} if "project" in options else {}
        limits = Limits(
            options.get("timeout", DEFAULT_TIMEOUT), options.get("max_attempts", cls.upload_attempts)
        )
        try:
            fs = BoundedGCSFileSystem(
                token=token,
                endpoint_url=endpoint.rstrip("/") if endpoint else None,
                skip_instance_cache=True,
                use_listings_cache=False,
                requests_timeout=aiohttp_timeout(limits),
                limits=limits,
                max_get_bytes=DEFAULT_MAX_OBJECT_BYTES,
                **fs_options,
            )
        except Exception as exc:  # noqa: BLE001 - whatever gcsfs/google.auth raise
            # Never their text: gcsfs validates a raw token with a URL that carries it.
            raise InvalidRequest(
                f"cannot set up GCS credentials ({type(exc).__name__}); pass token= (e.g. a service "
                "account file or google.auth credentials) or configure Application Default Credentials"
            ) from None
        return cls(fs, bucket, prefix, location.scheme, options)

    # -- primitives --------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        def upload() -> bool:
            return self.run(self._upload, self._prefix + key, data, {**metadata, "sha256": sha256})

        return self.bounded("upload", key, upload, nbytes=len(data))

    async def _upload(self, name: str, data: bytes, metadata: Mapping[str, str]) -> bool:
        resource: dict[str, Any] = {
            "name": name,
            "metadata": stored_metadata(metadata),
            "md5Hash": _b64(hashlib.md5(data, usedforsecurity=False).digest()),
            "crc32c": _b64(google_crc32c.value(data).to_bytes(4, "big")),
        }
        if self._storage_class:
            resource["storageClass"] = self._storage_class
        params = {"uploadType": "multipart", "ifGenerationMatch": "0"}
        if self._kms_key_name:
            params["kmsKeyName"] = self._kms_key_name
        # The boundary must not occur in the data: a random one cannot be aimed at.
        boundary = f"coldtier-{secrets.token_hex(16)}"
        body = b"".join(
            [
                f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n".encode(),
                orjson.dumps(resource),
                f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode(),
                data,
                f"\r\n--{boundary}--\r\n".encode(),
            ]
        )
        bucket = quote(self._bucket, safe="")
        url = f"{self._fs._location}/upload/storage/v1/b/{bucket}/o"
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        status, answer = await self._request("POST", url, params, headers, body)
        if status == 412:
            return False
        if status != 200:
            raise GCSRequestError(status, message(answer))
        stored = orjson.loads(answer)
        if int(stored.get("size", -1)) != len(data) or any(
            k in stored and stored[k] != resource[k] for k in ("md5Hash", "crc32c")
        ):
            # Only this exact generation (ours) is removed, never someone else's object.
            with contextlib.suppress(Exception):
                await self._request(
                    "DELETE",
                    f"{self._fs.base}b/{bucket}/o/{quote(name, safe='')}",
                    {"ifGenerationMatch": str(stored.get("generation"))},
                    {},
                    b"",
                )
            raise GCSRequestError(status, "stored object's size or hash differs from the data sent")
        return True

    async def _request(
        self, method: str, url: str, params: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, bytes]:
        """One request with bounded retries; returns the final (status, body)."""
        await self._fs._set_session()
        limits = self._fs.limits

        async def once() -> tuple[int, bytes]:
            async with self._fs.session.request(
                method,
                url,
                params=params,
                headers=self._fs._get_headers(headers),
                data=body,
                timeout=self._timeout,
            ) as response:
                return response.status, await response.read()

        for delay in itertools.chain(backoff(limits.attempts, base=0.2, cap=20.0), [None]):
            try:
                # aiohttp has no write timeout: a server that stops reading the body needs the deadline.
                status, answer = await limits.within(once(), limits.attempt_bound(len(body)))
                if delay is None or status not in _RETRY_STATUS:
                    return status, answer
            except (TimeoutError, aiohttp.ClientError):
                if delay is None:
                    raise
            retried(self)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def stat(self, key: str) -> Stat:
        info = self.bounded("metadata GET", key, lambda: self._fs.info(self.path(key)))
        meta = info.get("metadata") or {}
        retain = _when(info.get("retentionExpirationTime"))
        retain = retain or _when((info.get("retention") or {}).get("retainUntilTime"))
        if info.get("temporaryHold") or info.get("eventBasedHold"):
            retain = datetime.max.replace(tzinfo=UTC)
        return Stat(
            size=int(info["size"]),
            metadata=kept_metadata(meta),
            retain_until=retain,
            storage_class=info.get("storageClass"),
            modified=_when(info.get("timeCreated")),
        )

    def location_exists(self) -> bool:
        try:
            bucket = f"b/{quote(self._bucket, safe='')}"
            self.bounded("bucket GET", "", lambda: self.run(self._fs._call, "GET", bucket, json_out=True))
        except Exception as exc:
            if self.classify(exc) in (Fault.NOT_FOUND, Fault.NO_LOCATION):
                return False
            raise
        return True

    def classify(self, exc: BaseException) -> Fault | None:
        """By the HTTP status gcsfs or the upload saw."""
        for err in causes(exc):
            status = getattr(err, "status", None) or getattr(err, "code", None)
            if status == 412:
                return Fault.EXISTS
            if status == 404:
                return Fault.NOT_FOUND
            if status in (401, 403):
                return Fault.DENIED
            if isinstance(status, int) and status >= 500:
                return Fault.UNAVAILABLE
            if isinstance(err, aiohttp.ClientConnectionError):
                return Fault.UNAVAILABLE
        return super().classify(exc)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _when(value: object) -> datetime | None:
    """An RFC 3339 time of the JSON API (or one gcsfs already parsed), tz-aware; None if absent."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
