"""S3 and Cloudflare R2 on s3fs's botocore client.

A put is one ``PutObject`` with ``If-None-Match: *``: S3 stores the whole
object or nothing, and refuses (412) when the key exists, so nothing is ever
overwritten.  Each put carries the object's SHA-256 twice: as
``x-amz-checksum-sha256``, which the service checks against the bytes it
received, and as metadata ``coldtier-sha256``, which a ``HEAD`` returns so a
refused create is confirmed without downloading the object.  Puts go straight
to the client, so only botocore's (configured) retries apply.  botocore retries
requests, not the reading of a body: a GET whose body is cut mid-way (fewer
bytes than its ``Content-Length``, a reset) is sent again by coldtier, at most
``max_attempts`` GETs in all, within the GET's one deadline.

Time is bounded (see :mod:`coldtier.backends._deadline`): botocore's
``connect_timeout`` and ``read_timeout`` are the ``timeout`` option and its
``total_max_attempts`` is ``max_attempts``; s3fs's own retry loop (5 tries
around each of botocore's requests, and 5 more around a GET) is off; PUTs are
sent without ``Expect: 100-continue`` (aiohttp waits for the ``100 Continue``
forever and starts no read timeout meanwhile); and each request has a hard
deadline.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Self

from ..observe import refused, retried
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
    redact_secrets,
    stored_metadata,
)
from ._deadline import DEFAULT_ATTEMPTS, DEFAULT_TIMEOUT, Limits
from ._fsspec import FsspecStore
from ._s3fs import BoundedS3FileSystem, botocore_config
from ._specs import R2_OPTIONS, S3_OPTIONS

__all__ = ["R2Store", "S3Store"]

_MAX_PUT = 5 * 2**30 - 5 * 2**20  # one PUT: S3 allows 5 GiB, R2 5 GiB less 5 MiB
_CONFLICT_ATTEMPTS = 6
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_S3_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: Loggers that write request headers (the access key id, the session token) at DEBUG.
_LOGGERS = (
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.parsers",
    "aiobotocore.endpoint",
)


class S3Store(FsspecStore):
    """Objects in Amazon S3 (or an S3-compatible store): ``s3://bucket/prefix``."""

    scheme = "s3"
    keeps_metadata = True
    max_put_bytes = _MAX_PUT
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = S3_OPTIONS  # SDK-free, for the options reference
    #: Extra botocore config, and extra PutObject arguments.  S3 keeps the
    #: checksum it is told the algorithm of; Object Lock requires declaring it.
    _CONFIG: ClassVar[Mapping[str, Any]] = {}
    _PUT: ClassVar[Mapping[str, Any]] = {"ChecksumAlgorithm": "SHA256"}
    reports_protection = True
    _ARGS: ClassVar[Mapping[str, str]] = {
        "storage_class": "StorageClass",
        "sse": "ServerSideEncryption",
        "kms_key_id": "SSEKMSKeyId",
        "object_lock_mode": "ObjectLockMode",
    }

    def __init__(self, fs: BoundedS3FileSystem, bucket: str, prefix: str, options: Mapping[str, Any]) -> None:
        root = f"{bucket}/{prefix}" if prefix else bucket
        super().__init__(fs, root, description=f"{self.scheme}://{root}", limits=fs.limits)
        self._get_bytes: int = options.get("max_object_bytes") or 256 * 2**20
        self._bucket = bucket
        self._prefix = f"{prefix}/" if prefix else ""
        self._put_args = {**self._PUT, **{self._ARGS[k]: v for k, v in options.items() if k in self._ARGS}}
        self._lock_days: int | None = options.get("object_lock_days")

    @classmethod
    def from_location(cls, location: Location) -> Self:
        opts = location.options
        if ("object_lock_mode" in opts) != ("object_lock_days" in opts):
            raise InvalidRequest("object_lock_mode and object_lock_days must be given together")
        if "kms_key_id" in opts and opts.get("sse") != "aws:kms":
            raise InvalidRequest("kms_key_id needs sse=aws:kms")
        bucket, prefix = bucket_and_prefix(location, bucket_re=_S3_BUCKET_RE)
        redact_secrets(location, cls.OPTIONS, _LOGGERS)
        limits = Limits(opts.get("timeout", DEFAULT_TIMEOUT), opts.get("max_attempts", DEFAULT_ATTEMPTS))
        fs = BoundedS3FileSystem(
            key=opts.get("key"),
            secret=opts.get("secret"),
            token=opts.get("token"),
            config_kwargs={**botocore_config(limits), **cls._CONFIG},
            skip_instance_cache=True,
            use_listings_cache=False,
            limits=limits,
            **cls._connection(opts),
        )
        return cls(fs, bucket, prefix, opts)

    @classmethod
    def _connection(cls, opts: Mapping[str, Any]) -> dict[str, Any]:
        """Where and as whom to connect: S3FileSystem keywords (the AWS chain fills gaps)."""
        found = {
            "endpoint_url": opts.get("endpoint_url"),
            "client_kwargs": {"region_name": opts.get("region")},
        }
        return {**found, "profile": opts["profile"]} if "profile" in opts else found

    @property
    def locks_objects(self) -> bool:
        return "ObjectLockMode" in self._put_args

    def _call(self, what: str, method: str, **kwargs: Any) -> dict[str, Any]:
        """One S3 API call on s3fs's client (bypassing s3fs's own retry loop), within its deadline."""
        limits = self._fs.limits
        body = kwargs.get("Body")
        nbytes = len(body) if isinstance(body, bytes) else 0

        async def call() -> dict[str, Any]:
            client = await self._fs.set_session()  # outside the deadline, as in _call_s3
            result: dict[str, Any] = await limits.within(
                getattr(client, method)(**kwargs), limits.bound(nbytes)
            )
            return result

        key = kwargs.get("Key", "")[len(self._prefix) :]
        try:
            answer = self.bounded(what, key, lambda: self.run(call), nbytes=nbytes)
        except Exception as exc:
            retried(self, count=_retry_attempts(exc))
            raise
        retried(self, count=_retry_attempts(answer))
        return answer

    # -- primitives ---------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        args = {
            **self._put_args,
            "Metadata": stored_metadata({**metadata, "sha256": sha256}),
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        }
        if "ObjectLockMode" in args:
            if lock:
                args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=self._lock_days or 0)
            else:
                del args["ObjectLockMode"]
        for delay in itertools.chain(backoff(_CONFLICT_ATTEMPTS, base=0.05), [None]):
            try:
                self._call(
                    "PUT",
                    "put_object",
                    Bucket=self._bucket,
                    Key=self._prefix + key,
                    Body=data,
                    IfNoneMatch="*",
                    **args,
                )
                return True
            except Exception as exc:
                fault = self.classify(exc)
                if fault is Fault.EXISTS:
                    return False
                if fault is Fault.CONFLICT:
                    refused(self, "conflict")
                if fault is not Fault.CONFLICT or delay is None:
                    raise
            # A concurrent conditional write of this key is in flight: let it settle.
            retried(self, "conflict")
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def get(self, key: str) -> bytes:
        # One GET, no HEAD for the size first.  botocore retries the request, not the read of its
        # body: a body cut mid-way is fetched again here, at most max_attempts GETs in all, with
        # jittered backoff between them; the one deadline covers every attempt and pause.
        limits, nbytes, path = self._fs.limits, self._get_bytes, self.path(key)

        async def attempts() -> bytes:
            for delay in itertools.chain(backoff(limits.attempts, base=0.2, cap=20.0), [None]):
                try:
                    data: bytes = await self._fs._cat_file(path, max_concurrency=1)
                    return data
                except Exception as exc:
                    if delay is None or not _cut_body(exc):
                        raise
                retried(self)
                await asyncio.sleep(delay)
            raise AssertionError("unreachable")  # pragma: no cover

        def get() -> bytes:
            data: bytes = self.run(limits.within, attempts(), limits.bound(nbytes))
            return data

        return self.bounded("GET", key, get, nbytes=nbytes)

    def stat(self, key: str) -> Stat:
        head = self._call("HEAD", "head_object", Bucket=self._bucket, Key=self._prefix + key)
        meta = head.get("Metadata", {})
        retain = head.get("ObjectLockRetainUntilDate")
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            retain = datetime.max.replace(tzinfo=UTC)
        return Stat(
            size=int(head["ContentLength"]),
            metadata=kept_metadata(meta),
            retain_until=retain if isinstance(retain, datetime) else None,
            storage_class=head.get("StorageClass", "STANDARD"),
            modified=head.get("LastModified"),
        )

    def location_exists(self) -> bool:
        try:
            self._call("HEAD", "head_bucket", Bucket=self._bucket)
        except Exception as exc:
            if self.classify(exc) in (Fault.NOT_FOUND, Fault.NO_LOCATION):
                return False
            raise
        return True

    def classify(self, exc: BaseException) -> Fault | None:
        """By the botocore response's status and code (s3fs keeps it in ``__cause__``)."""
        for err in causes(exc):
            response = getattr(err, "response", None)
            if isinstance(response, dict):
                status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = response.get("Error", {}).get("Code")
                if status == 412 or code == "PreconditionFailed":
                    return Fault.EXISTS
                if status == 409 and code == "ConditionalRequestConflict":
                    return Fault.CONFLICT
                if code == "NoSuchBucket":
                    return Fault.NO_LOCATION
                if status == 404 or code in ("NoSuchKey", "NotFound", "404"):
                    return Fault.NOT_FOUND
                if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                    return Fault.DENIED
                if isinstance(status, int) and status >= 500:
                    return Fault.UNAVAILABLE
            name = type(err).__name__
            if name in ("ConnectTimeoutError", "ReadTimeoutError"):
                return Fault.TIMEOUT
            if name in ("EndpointConnectionError", "ConnectionClosedError", "ClientConnectorError"):
                return Fault.UNAVAILABLE
        return super().classify(exc)


class R2Store(S3Store):
    """Objects in Cloudflare R2: ``r2://bucket/prefix?account_id=...``.

    R2 speaks the S3 API with region ``auto`` at a per-account endpoint.  It
    has no Object Lock and no SSE-KMS (it encrypts every object at rest), and
    rejects some checksums botocore adds by default, so botocore sends them
    only when required; the SHA-256 checksum coldtier sends is one R2 checks.
    """

    scheme = "r2"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = R2_OPTIONS  # sse, kms_key_id, Object Lock: refused
    _CONFIG: ClassVar[Mapping[str, Any]] = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    _PUT: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def from_location(cls, location: Location) -> Self:
        opts = location.options
        if "object_lock_mode" in opts or "object_lock_days" in opts:
            raise InvalidRequest("R2 has no Object Lock; use R2 bucket lock rules instead")
        if "sse" in opts or "kms_key_id" in opts:
            raise InvalidRequest("R2 has no SSE-KMS or sse option: it encrypts every object at rest")
        if "endpoint_url" not in opts and "account_id" not in opts:
            raise InvalidRequest("r2:// needs account_id=<Cloudflare account id> (or endpoint_url)")
        if "account_id" in opts and not _ACCOUNT_RE.fullmatch(opts["account_id"]):
            raise InvalidRequest("account_id must be the alphanumeric Cloudflare account id")
        return super().from_location(location)

    @classmethod
    def _connection(cls, opts: Mapping[str, Any]) -> dict[str, Any]:
        zone = f".{opts['jurisdiction']}" if "jurisdiction" in opts else ""
        endpoint = opts.get("endpoint_url") or f"https://{opts['account_id']}{zone}.r2.cloudflarestorage.com"
        return {
            **super()._connection(opts),
            "endpoint_url": endpoint,
            "client_kwargs": {"region_name": "auto"},
            "fixed_upload_size": True,
        }


#: What a body read cut mid-way raises (aiohttp, aiobotocore, botocore, http.client), by class name.
_CUT_BODY = frozenset(
    {
        "ClientPayloadError",
        "ContentLengthError",
        "TransferEncodingError",
        "IncompleteReadError",
        "IncompleteRead",
        "ResponseStreamingError",
    }
)
#: Failures of the request itself, which botocore has already retried: not retried again.
_REQUEST_FAILED = frozenset(
    {"ConnectionClosedError", "EndpointConnectionError", "ReadTimeoutError", "ConnectTimeoutError"}
)


def _cut_body(exc: BaseException) -> bool:
    """Whether ``exc`` says an answer's body ended early (fewer bytes than its length, a reset mid-read).

    A timeout or a failed request is not: botocore already retried those.
    """
    for err in causes(exc):
        name = type(err).__name__
        if name in _REQUEST_FAILED or isinstance(err, TimeoutError):
            return False
        if name in _CUT_BODY or isinstance(err, ConnectionResetError):
            return True
    return False


def _retry_attempts(answer: object) -> int:
    """How many times botocore retried the request that gave ``answer`` (a response or its error)."""
    for err in causes(answer) if isinstance(answer, BaseException) else ():
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            answer = response
            break
    meta = answer.get("ResponseMetadata", {}) if isinstance(answer, dict) else {}
    attempts = meta.get("RetryAttempts", 0)
    return attempts if isinstance(attempts, int) else 0
