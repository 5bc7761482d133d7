"""S3 and Cloudflare R2 backends on s3fs.

A write is one ``PutObject`` with ``If-None-Match: *``: S3 stores the whole
object or nothing, and refuses (412) when the key exists, so nothing is ever
overwritten.  Each put carries the object's SHA-256 twice: as
``x-amz-checksum-sha256``, which the service checks against the bytes it
received, and as metadata ``coldtier-sha256``, which a ``HEAD`` returns so a
refused create is confirmed without downloading the object.  Puts go straight
to s3fs's botocore client, so only botocore's (configured) retries apply.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from fsspec.asyn import sync
from s3fs import S3FileSystem

from ._errors import InvalidRequest
from ._fsspec import PROBE_PREFIX, FsspecArchive
from ._options import OptionSpec, ParsedURL

__all__ = ["R2Archive", "S3Archive"]

_SHA256_META = "coldtier-sha256"
_MAX_PUT = 5 * 2**30 - 5 * 2**20  # one PUT: S3 allows 5 GiB, R2 5 GiB less 5 MiB
_CONFLICT_RETRIES = 6
_S3_CLASSES = ("STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR", "GLACIER")
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]{1,64}")

_CONNECTION: Mapping[str, OptionSpec] = {
    "endpoint_url": OptionSpec(str),
    "profile": OptionSpec(str),
    "key": OptionSpec(str, secret=True),
    "secret": OptionSpec(str, secret=True),
    "token": OptionSpec(str, secret=True),
    "max_attempts": OptionSpec(int),  # botocore attempts per request, first included
    "timeout": OptionSpec(int),  # seconds to connect, and to wait for each read
}


class _Redact(logging.Filter):
    """Masks credentials given to coldtier in botocore's DEBUG records.

    botocore logs request headers (the access key id, the session token) at
    DEBUG; credentials must never reach a log record (DESIGN.md §2.8).
    """

    LOGGERS = (
        "botocore.endpoint",
        "botocore.auth",
        "botocore.hooks",
        "botocore.parsers",
        "aiobotocore.endpoint",
    )

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


_REDACT = _Redact()


def _refusal(exc: BaseException) -> str | None:
    """``"exists"`` (412), ``"conflict"`` (409 ConditionalRequestConflict) or None.

    The one place S3 errors are classified, by the response's status and code;
    s3fs puts the botocore ``ClientError`` in ``__cause__`` when it translates.
    """
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, dict):
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = response.get("Error", {}).get("Code")
            if status == 412 or code == "PreconditionFailed":
                return "exists"
            if status == 409 and code == "ConditionalRequestConflict":
                return "conflict"
            return None
    return None


class S3Archive(FsspecArchive):
    """Archive in Amazon S3 (or an S3-compatible store): ``s3://bucket/prefix``."""

    scheme = "s3"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {
        **_CONNECTION,
        "region": OptionSpec(str),
        "storage_class": OptionSpec(str, choices=(*_S3_CLASSES, "DEEP_ARCHIVE", "EXPRESS_ONEZONE")),
        "sse": OptionSpec(str, choices=("AES256", "aws:kms")),
        "kms_key_id": OptionSpec(str),
        "object_lock_mode": OptionSpec(str, choices=("GOVERNANCE", "COMPLIANCE")),
        "object_lock_days": OptionSpec(int),
    }
    #: Extra botocore config, and extra PutObject arguments.  S3 keeps the
    #: checksum it is told the algorithm of; Object Lock requires declaring it.
    _CONFIG: ClassVar[Mapping[str, Any]] = {}
    _PUT: ClassVar[Mapping[str, Any]] = {"ChecksumAlgorithm": "SHA256"}

    def __init__(self, fs: S3FileSystem, root: str, *, put_args: Mapping[str, Any], **options: Any) -> None:
        super().__init__(fs, root, description=f"{self.scheme}://{root}", **options)
        self._put_args = {**self._PUT, **put_args}
        self._lock_days: int | None = options.get("object_lock_days")

    @classmethod
    def _from_parsed(cls, parsed: ParsedURL) -> S3Archive:
        opts = parsed.options
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not bucket:
            raise InvalidRequest(f"{cls.scheme}:// URL names no bucket: use {cls.scheme}://bucket/prefix")
        if opts.get("max_object_bytes", 0) > _MAX_PUT:
            raise InvalidRequest(f"max_object_bytes must be at most {_MAX_PUT} (one PUT)")
        if ("object_lock_mode" in opts) != ("object_lock_days" in opts):
            raise InvalidRequest("object_lock_mode and object_lock_days must be given together")
        if "kms_key_id" in opts and opts.get("sse") != "aws:kms":
            raise InvalidRequest("kms_key_id needs sse=aws:kms")
        names = {
            "storage_class": "StorageClass",
            "sse": "ServerSideEncryption",
            "kms_key_id": "SSEKMSKeyId",
            "object_lock_mode": "ObjectLockMode",
        }
        _REDACT.secrets.update(v for k in ("key", "secret", "token") if len(v := opts.get(k) or "") >= 4)
        fs = S3FileSystem(
            key=opts.get("key"),
            secret=opts.get("secret"),
            token=opts.get("token"),
            config_kwargs={
                "retries": {"mode": "standard", "total_max_attempts": opts.get("max_attempts", 5)},
                "connect_timeout": opts.get("timeout", 60),
                "read_timeout": opts.get("timeout", 60),
                **cls._CONFIG,
            },
            skip_instance_cache=True,
            use_listings_cache=False,
            **cls._connection(opts),
        )
        root = f"{bucket}/{prefix}" if prefix else bucket
        return cls(fs, root, put_args={names[k]: v for k, v in opts.items() if k in names}, **opts)

    @classmethod
    def _connection(cls, opts: Mapping[str, Any]) -> dict[str, Any]:
        """Where and as whom to connect: S3FileSystem keywords (the AWS chain fills gaps)."""
        found = {
            "endpoint_url": opts.get("endpoint_url"),
            "client_kwargs": {"region_name": opts.get("region")},
        }
        return {**found, "profile": opts["profile"]} if "profile" in opts else found

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """One S3 API call on s3fs's client, bypassing s3fs's own retry loop."""

        async def call() -> dict[str, Any]:
            client = await self._fs.set_session()
            result: dict[str, Any] = await getattr(client, method)(**kwargs)
            return result

        result: dict[str, Any] = sync(self._fs.loop, call)
        return result

    def _create(self, path: str, data: bytes, sha256: str) -> bool:
        bucket, key = path.split("/", 1)
        args = {
            **self._put_args,
            "Metadata": {_SHA256_META: sha256},
            "ChecksumSHA256": base64.b64encode(bytes.fromhex(sha256)).decode(),
        }
        if "ObjectLockMode" in args:
            if f"/{PROBE_PREFIX}/" in f"/{key}":
                del args["ObjectLockMode"]  # a canary must stay removable
            else:
                args["ObjectLockRetainUntilDate"] = datetime.now(UTC) + timedelta(days=self._lock_days or 0)
        attempt = 0
        while True:
            try:
                self._call("put_object", Bucket=bucket, Key=key, Body=data, IfNoneMatch="*", **args)
                return True
            except Exception as exc:
                refusal = _refusal(exc)
                if refusal == "exists":
                    return False
                attempt += 1
                if refusal != "conflict" or attempt >= _CONFLICT_RETRIES:
                    raise
            # A concurrent conditional write of this key is in flight: let it settle.
            time.sleep(0.05 * 2**attempt * (1 + random.random()))

    def _fetch(self, path: str) -> bytes:
        data: bytes = self._fs.cat_file(path, max_concurrency=1)  # one GET, no HEAD for the size first
        return data

    def _stored(self, path: str) -> tuple[int, str | None]:
        bucket, key = path.split("/", 1)
        head = self._call("head_object", Bucket=bucket, Key=key)
        return int(head["ContentLength"]), head.get("Metadata", {}).get(_SHA256_META)


class R2Archive(S3Archive):
    """Archive in Cloudflare R2: ``r2://bucket/prefix?account_id=...``.

    R2 speaks the S3 API with region ``auto`` at a per-account endpoint.  It
    has no Object Lock and no SSE-KMS (it encrypts every object at rest), and
    rejects some checksums botocore adds by default, so botocore sends them
    only when required; the SHA-256 checksum coldtier sends is one R2 checks.
    """

    scheme = "r2"
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {
        **_CONNECTION,
        "account_id": OptionSpec(str),
        "jurisdiction": OptionSpec(str, choices=("eu", "fedramp")),
        "storage_class": OptionSpec(str, choices=("STANDARD", "STANDARD_IA")),
        # Known only to be refused with a reason, not as unknown options.
        **{k: S3Archive.OPTIONS[k] for k in ("sse", "kms_key_id", "object_lock_mode", "object_lock_days")},
    }
    _CONFIG: ClassVar[Mapping[str, Any]] = {
        "request_checksum_calculation": "when_required",
        "response_checksum_validation": "when_required",
    }
    _PUT: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def _from_parsed(cls, parsed: ParsedURL) -> S3Archive:
        opts = parsed.options
        if "object_lock_mode" in opts or "object_lock_days" in opts:
            raise InvalidRequest("R2 has no Object Lock; use R2 bucket lock rules instead")
        if "sse" in opts or "kms_key_id" in opts:
            raise InvalidRequest("R2 has no SSE-KMS or sse option: it encrypts every object at rest")
        if "endpoint_url" not in opts and "account_id" not in opts:
            raise InvalidRequest("r2:// needs account_id=<Cloudflare account id> (or endpoint_url)")
        if "account_id" in opts and not _ACCOUNT_RE.fullmatch(opts["account_id"]):
            raise InvalidRequest("account_id must be the alphanumeric Cloudflare account id")
        return super()._from_parsed(parsed)

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
