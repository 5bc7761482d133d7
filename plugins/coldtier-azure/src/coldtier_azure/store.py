"""Azure Blob Storage: ``az://container/prefix`` (also ``azure://``), on azure-storage-blob.

A put is ONE Put Blob request with ``If-None-Match: *`` (``upload_blob(overwrite=False)``,
never staged blocks): Azure commits the whole blob or nothing, and refuses with
409 ``BlobAlreadyExists`` when the name is taken, so nothing is ever
overwritten.  The request carries ``Content-MD5`` of the bytes, which the
service checks before committing (400 ``Md5Mismatch``), and the metadata
``coldtier_sha256`` and ``coldtier_digest`` (Azure metadata names must be
identifiers: underscores, not dashes), which one Get Blob Properties returns,
so a refused create is confirmed without downloading the blob.

Time is bounded: each request waits at most ``timeout`` seconds to connect and
for each socket read or write (requests sends no ``Expect: 100-continue``), the
SDK's own retry policy is off (``retry_total=0``), and this module retries
408, 429, 5xx (``ServerBusy``), lost connections and timeouts at most
``max_attempts`` times in all, with jittered exponential backoff.

Credentials come from the keyword options ``credential`` or
``connection_string``, else ``AZURE_STORAGE_CONNECTION_STRING``, else
``DefaultAzureCredential`` (the ``identity`` extra); never from the URL.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self, TypeVar

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobPrefix, ContainerClient, StandardBlobTier
from coldtier import MissingDependency
from coldtier.store import (
    Entry,
    Fault,
    InvalidRequest,
    Location,
    ObjectStore,
    OptionSpec,
    Stat,
    backoff,
    bucket_and_prefix,
    causes,
    kept_metadata,
    redact_secrets,
    stored_metadata,
)

__all__ = ["AzureStore"]

T = TypeVar("T")

_MAX_PUT = 5000 * 2**20  # one Put Blob (service version 2019-12-12 and later)
_SEP = "_"  # metadata names must be C# identifiers: coldtier_sha256
#: 3-63 lowercase letters, digits and single hyphens, starting and ending alphanumeric.
_CONTAINER_RE = re.compile(r"(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")
_ACCOUNT_RE = re.compile(r"[a-z0-9]{3,24}")
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
#: azure-core's HTTP logging policy logs request URLs and headers (it redacts them itself).
_LOGGERS = ("azure.core.pipeline.policies.http_logging_policy", "azure.storage.blob")

_URL = "blob service endpoint (Azurite: http://127.0.0.1:10000/devstoreaccount1); unset: " + (
    "https://<account_name>.blob.core.windows.net, or the connection string's"
)
OPTIONS: Mapping[str, OptionSpec] = {
    "account_name": OptionSpec(str, doc="storage account, whose endpoint is used unless account_url is set"),
    "account_url": OptionSpec(str, doc=_URL),
    "endpoint_url": OptionSpec(str, doc="the same as account_url (the name the other backends use)"),
    "connection_string": OptionSpec(
        str, secret=True, doc="a storage connection string; unset: AZURE_STORAGE_CONNECTION_STRING"
    ),
    "credential": OptionSpec(
        object,
        secret=True,
        doc="an account key, a SAS token or an azure.core credential (AzureNamedKeyCredential, a "
        "TokenCredential); unset: the connection string, else DefaultAzureCredential ([identity] extra)",
    ),
    "access_tier": OptionSpec(
        str, choices=("Hot", "Cool", "Cold", "Archive"), doc="access tier of new blobs; unset: the account's"
    ),
    "encryption_scope": OptionSpec(str, doc="encryption scope of new blobs; unset: the container's default"),
    "timeout": OptionSpec(
        int, default=15, doc="seconds to wait for a connection and for each socket read or write, per attempt"
    ),
    "max_attempts": OptionSpec(
        int,
        default=3,
        doc="tries per request (408, 429, 5xx, lost connections, timeouts), the first included",
    ),
}


class AzureStore(ObjectStore):
    """Azure Blob Storage: blobs in one container, under an optional prefix."""

    scheme = "az"
    keeps_metadata = True
    max_put_bytes = _MAX_PUT
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = OPTIONS

    def __init__(self, container: ContainerClient, prefix: str, location: Location) -> None:
        self._container = container
        self._prefix = f"{prefix}/" if prefix else ""
        self._location = location  # for pickling: the store is rebuilt from it
        opts = location.options
        self._attempts: int = opts.get("max_attempts", 3)
        self._timeout: int = opts.get("timeout", 15)
        self._upload: dict[str, Any] = {}
        if "access_tier" in opts:
            self._upload["standard_blob_tier"] = StandardBlobTier(opts["access_tier"])
        if "encryption_scope" in opts:
            self._upload["encryption_scope"] = opts["encryption_scope"]
        self._description = f"{location.scheme}://{container.container_name}/{prefix}".rstrip("/")

    @classmethod
    def from_location(cls, location: Location) -> Self:
        opts = location.options
        if not _CONTAINER_RE.fullmatch(location.netloc):
            raise InvalidRequest(
                f"{location.scheme}:// URL needs a container name (3-63 lowercase letters, digits and single "
                f"hyphens): {location.scheme}://container/prefix, got {location.netloc!r}"
            )
        container, prefix = bucket_and_prefix(location, bucket_re=_CONTAINER_RE)
        urls = {opts[k] for k in ("account_url", "endpoint_url") if k in opts}
        if len(urls) > 1:
            raise InvalidRequest("account_url and endpoint_url name different endpoints: give one")
        if "account_name" in opts and not _ACCOUNT_RE.fullmatch(opts["account_name"]):
            raise InvalidRequest("account_name must be 3-24 lowercase letters and digits")
        url = urls.pop() if urls else None
        if url is not None and ("?" in url or "@" in url):
            raise InvalidRequest("account_url must not carry a query or user info: pass a SAS as credential=")
        conn = opts.get("connection_string")
        if conn is None and url is None and "account_name" not in opts and "credential" not in opts:
            conn = os.environ.get("AZURE_STORAGE_CONNECTION_STRING") or None
        if conn is not None and ("credential" in opts or url is not None):
            raise InvalidRequest(
                "connection_string names the endpoint and credential: not with account_url/credential"
            )
        if conn is None and url is None:
            if "account_name" not in opts:
                raise InvalidRequest(
                    f"{location.scheme}:// needs account_name=, account_url= or connection_string= "
                    "(or AZURE_STORAGE_CONNECTION_STRING)"
                )
            url = f"https://{opts['account_name']}.blob.core.windows.net"
        redact_secrets(location, OPTIONS, _LOGGERS)
        timeout = opts.get("timeout", 15)
        config: dict[str, Any] = {
            "connection_timeout": timeout,
            "read_timeout": timeout,
            "retry_total": 0,  # one retry loop, ours (_retrying), bounded by max_attempts
            "max_single_put_size": _MAX_PUT,  # never staged blocks: one request, all or nothing
        }
        credential = opts.get("credential")
        if conn is None and credential is None:
            credential = _default_credential(location.scheme)
        try:
            if conn is not None:
                client = ContainerClient.from_connection_string(conn, container, **config)
            else:
                assert url is not None
                client = ContainerClient(url, container, credential=credential, **config)
        except Exception as exc:  # noqa: BLE001 - whatever the SDK raises; never its text (it may quote a key)
            raise InvalidRequest(
                f"cannot set up the Azure client ({type(exc).__name__}): check account_url, "
                "connection_string and credential"
            ) from None
        return cls(client, prefix, location)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self).from_location, (self._location,))

    def description(self) -> str:
        return self._description

    # -- primitives ---------------------------------------------------------------

    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        blob = self._container.get_blob_client(self._prefix + key)
        upload = dict(self._upload)
        if not lock:  # the probe's canary: no tier, so no early-deletion charge (Cool/Cold/Archive)
            upload.pop("standard_blob_tier", None)

        def once() -> None:
            blob.upload_blob(
                data,
                length=len(data),
                overwrite=False,  # If-None-Match: *
                validate_content=True,  # Content-MD5, checked by the service
                metadata=stored_metadata({**metadata, "sha256": sha256}, _SEP),
                max_concurrency=1,
                **upload,
            )

        try:
            self._retrying("PUT", key, once)
        except Exception as exc:
            # Also a retry whose first attempt landed: the engine confirms the content.
            if self.classify(exc) is Fault.EXISTS:
                return False
            raise
        return True

    def stat(self, key: str) -> Stat:
        blob = self._container.get_blob_client(self._prefix + key)
        props = self._retrying("HEAD", key, blob.get_blob_properties)
        return Stat(size=int(props.size), metadata=kept_metadata(props.metadata or {}, _SEP))

    def get(self, key: str) -> bytes:
        def download() -> bytes:
            return self._container.download_blob(self._prefix + key, max_concurrency=1).readall()

        return self._retrying("GET", key, download)

    def list(self, prefix: str) -> list[Entry]:
        below = self._prefix + (f"{prefix}/" if prefix else "")

        def walk() -> list[Any]:
            # One level, with the delimiter; a missing container is 404 ContainerNotFound.
            return list(self._container.walk_blobs(name_starts_with=below or None, delimiter="/"))

        entries = []
        for item in self._retrying("LIST", prefix, walk):
            key = item.name[len(self._prefix) :].rstrip("/")
            if isinstance(item, BlobPrefix):
                entries.append(Entry(key, is_dir=True))
            else:
                entries.append(Entry(key, int(item.size)))
        return entries

    def delete(self, key: str) -> None:
        self._retrying("DELETE", key, lambda: self._container.delete_blob(self._prefix + key))

    # -- failures -----------------------------------------------------------------

    def _retrying(self, what: str, key: str, call: Callable[[], T]) -> T:
        """``call()``, retried on 408/429/5xx, lost connections and timeouts: ``max_attempts`` tries."""
        began = time.monotonic()
        for delay in itertools.chain(backoff(self._attempts, base=0.2, cap=10.0), [None]):
            try:
                return call()
            except Exception as exc:
                fault = self.classify(exc)
                if fault not in (Fault.UNAVAILABLE, Fault.TIMEOUT) or delay is None:
                    if fault is Fault.TIMEOUT:
                        raise TimeoutError(
                            f"{what} of {key or '/'} timed out after {time.monotonic() - began:.1f} s "
                            f"(timeout={self._timeout} s, max_attempts={self._attempts})"
                        ) from exc
                    raise
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def classify(self, exc: BaseException) -> Fault | None:
        """By the response's status and ``x-ms-error-code``, else by azure-core's exception type."""
        for err in causes(exc):
            if isinstance(err, HttpResponseError) and err.status_code is not None:
                status, code = err.status_code, getattr(err, "error_code", None)  # storage sets it
                if code == "BlobAlreadyExists" or status == 412:  # our only condition: If-None-Match: *
                    return Fault.EXISTS
                if code == "ContainerNotFound":
                    return Fault.NO_LOCATION
                if status == 404:
                    return Fault.NOT_FOUND
                if status in (401, 403):
                    return Fault.DENIED
                if status in _RETRY_STATUS or status >= 500:
                    return Fault.UNAVAILABLE
                return None
            if isinstance(err, ClientAuthenticationError):  # a credential that got no token
                return Fault.DENIED
            if isinstance(err, ServiceRequestError | ServiceResponseError):
                timeout = "Timeout" in type(err).__name__ or _timed_out(err)
                return Fault.TIMEOUT if timeout else Fault.UNAVAILABLE
        return super().classify(exc)


def _timed_out(err: BaseException) -> bool:
    """Whether a transport error was a timeout (requests' ReadTimeout and ConnectTimeout underneath)."""
    return any("Timeout" in type(e).__name__ or isinstance(e, TimeoutError) for e in causes(err))


def _default_credential(scheme: str) -> Any:
    try:
        from azure.identity import DefaultAzureCredential  # noqa: PLC0415 - optional extra
    except ImportError as exc:
        raise MissingDependency(
            f"{scheme}:// without credential= or connection_string= uses DefaultAzureCredential: "
            "pip install 'coldtier-azure[identity]'"
        ) from exc
    return DefaultAzureCredential()
