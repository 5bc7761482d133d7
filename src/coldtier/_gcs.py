"""Google Cloud Storage backend: ``gs://bucket/prefix`` (also ``gcs://``), on gcsfs.

Every object is written by ONE request — a JSON API ``uploadType=multipart``
upload with ``ifGenerationMatch=0`` — so GCS commits it whole or not at all and
refuses (412) when the name already exists.  Resumable uploads (gcsfs's
``open("xb")``) are not used: emulators ignore the precondition on them.  A
single request must be re-sent whole after a failure, so this backend keeps
objects at most ``max_object_bytes`` = 32 MiB by default (the engine splits
larger batches into parts); raise it for fast, in-region writers.

Integrity: the upload carries the data's MD5 and CRC32C in the object
resource, which GCS checks before committing (400 on mismatch); the response's
hashes are compared again, and the full SHA-256 is kept in the object metadata
``coldtier-sha256`` so a refused create is confirmed without a download.

Credentials come only from the keyword option ``token`` (anything gcsfs
accepts: ``"anon"``, ``"google_default"``, a service-account file, a
``google.auth`` credentials object) or Google's default chain.  An
``http://`` endpoint (an emulator; a credential would travel in clear text) is
used anonymously unless a ``token`` is given.

gcsfs retries 429/5xx for about half a minute per call; the upload does its
own, bounded retries (``upload_attempts``) so that an outage ends in
:class:`~coldtier.ArchiveWriteError` within seconds, and the caller keeps its
originals.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import random
import re
import secrets
from typing import Any, ClassVar
from urllib.parse import quote

import aiohttp
import google_crc32c  # gcsfs -> google-cloud-storage -> google-crc32c
import orjson
from fsspec.asyn import sync
from gcsfs.core import GCSFileSystem

from ._errors import InvalidRequest
from ._fsspec import FsspecArchive
from ._options import OptionSpec, ParsedURL

__all__ = ["GCSArchive", "GCSRequestError"]

SHA256_METADATA = "coldtier-sha256"
#: Each object is one request, re-sent whole on failure: keep it small enough.
DEFAULT_MAX_OBJECT_BYTES = 32 * 2**20
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class GCSRequestError(OSError):
    """GCS answered an upload with an error status (kept in :attr:`status`)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"GCS answered HTTP {status}: {message}")
        self.status = status


class GCSArchive(FsspecArchive):
    """Archive in a GCS bucket: ``gs://bucket/prefix?storage_class=ARCHIVE``."""

    scheme = "gs"
    OPTIONS: ClassVar[dict[str, OptionSpec]] = {
        "project": OptionSpec(str),
        "endpoint_url": OptionSpec(str),
        "storage_class": OptionSpec(str, choices=("STANDARD", "NEARLINE", "COLDLINE", "ARCHIVE")),
        "kms_key_name": OptionSpec(str),
        "token": OptionSpec(object, secret=True),
        "timeout": OptionSpec(int),  # seconds to connect, and to wait for each read of an upload
    }
    #: Tries per upload on 408/429/5xx or a lost connection; backoff 0.2 s, doubling.
    upload_attempts: ClassVar[int] = 5

    def __init__(
        self,
        fs: GCSFileSystem,
        root: str,
        *,
        description: str,
        storage_class: str | None = None,
        kms_key_name: str | None = None,
        timeout: int | None = None,
        **options: Any,
    ) -> None:
        options.setdefault("max_object_bytes", DEFAULT_MAX_OBJECT_BYTES)
        super().__init__(fs, root, description=description, **options)
        self._storage_class = storage_class
        self._kms_key_name = kms_key_name
        self._timeout = aiohttp.ClientTimeout(sock_connect=timeout or 30, sock_read=timeout or 120)

    @classmethod
    def _from_parsed(cls, parsed: ParsedURL) -> GCSArchive:
        options = dict(parsed.options)
        bucket, prefix = parsed.netloc, parsed.path.strip("/")
        if not _BUCKET_RE.fullmatch(bucket):
            raise InvalidRequest(f"{parsed.scheme}:// URL needs a valid bucket name, got {bucket!r}")
        if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
            raise InvalidRequest(f"{parsed.scheme}:// prefix {prefix!r} has an empty, '.' or '..' segment")
        endpoint = options.pop("endpoint_url", None) or os.environ.get("STORAGE_EMULATOR_HOST") or None
        if endpoint is not None and "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        token = options.pop("token", None)
        if token is None:  # gcsfs's own default would quietly fall back to anonymous
            plain_http = endpoint is not None and endpoint.startswith("http://")
            token = "anon" if plain_http else "google_default"  # gcsfs method names
        fs_options: dict[str, Any] = {"project": options.pop("project")} if "project" in options else {}
        try:
            fs = GCSFileSystem(
                token=token,
                endpoint_url=endpoint.rstrip("/") if endpoint else None,
                skip_instance_cache=True,
                use_listings_cache=False,
                requests_timeout=options.get("timeout"),
                **fs_options,
            )
        except Exception as exc:  # noqa: BLE001 - whatever gcsfs/google.auth raise
            # Never their text: gcsfs validates a raw token with a URL that carries it.
            raise InvalidRequest(
                f"cannot set up GCS credentials ({type(exc).__name__}); pass token= (e.g. a service "
                "account file or google.auth credentials) or configure Application Default Credentials"
            ) from None
        root = f"{bucket}/{prefix}" if prefix else bucket
        return cls(fs, root, description=f"{parsed.scheme}://{root}", **options)

    # -- primitives --------------------------------------------------------------

    def _create(self, path: str, data: bytes, sha256: str) -> bool:
        return bool(sync(self._fs.loop, self._upload, path, data, sha256))

    async def _upload(self, path: str, data: bytes, sha256: str) -> bool:
        bucket, _, name = path.partition("/")
        resource: dict[str, Any] = {
            "name": name,
            "metadata": {SHA256_METADATA: sha256},
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
        url = f"{self._fs._location}/upload/storage/v1/b/{quote(bucket, safe='')}/o"
        headers = {"Content-Type": f"multipart/related; boundary={boundary}"}
        status, answer = await self._request("POST", url, params, headers, body)
        if status == 412:
            return False
        if status != 200:
            raise GCSRequestError(status, _message(answer))
        stored = orjson.loads(answer)
        if int(stored.get("size", -1)) != len(data) or any(
            k in stored and stored[k] != resource[k] for k in ("md5Hash", "crc32c")
        ):
            # Only this exact generation (ours) is removed, never someone else's object.
            with contextlib.suppress(Exception):
                await self._request(
                    "DELETE",
                    f"{self._fs.base}b/{quote(bucket, safe='')}/o/{quote(name, safe='')}",
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
        attempt = 0
        while True:
            attempt += 1
            final = attempt >= self.upload_attempts
            try:
                async with self._fs.session.request(
                    method,
                    url,
                    params=params,
                    headers=self._fs._get_headers(headers),
                    data=body,
                    timeout=self._timeout,
                ) as response:
                    answer = await response.read()
                if final or response.status not in _RETRY_STATUS:
                    return response.status, answer
            except (TimeoutError, aiohttp.ClientError):
                if final:
                    raise
            await asyncio.sleep(0.2 * 2 ** (attempt - 1) * (1 + random.random() / 2))

    def _stored(self, path: str) -> tuple[int, str | None]:
        info = self._fs.info(path)
        return int(info["size"]), (info.get("metadata") or {}).get(SHA256_METADATA)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _message(answer: bytes) -> str:
    try:
        text = str(orjson.loads(answer)["error"]["message"])
    except (orjson.JSONDecodeError, KeyError, TypeError):
        text = answer.decode("utf-8", "replace").strip() or "(no body)"
    return text[:200]
