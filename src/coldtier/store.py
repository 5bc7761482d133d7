"""The backend seam (public, stable): an :class:`ObjectStore` is a handful of primitives over one location.

coldtier's engine — the write pipeline, reading, verifying, probing — is
written once over this seam; a backend supplies only what differs: how it
reaches its storage, how it spells "create only", what metadata it keeps.
A third-party backend subclasses :class:`ObjectStore`, declares it in the
``coldtier.backends`` entry-point group (name = URL scheme, value =
``module:Class``) and passes the shipped conformance suite,
:mod:`coldtier.testing`::

    class MyStore(ObjectStore):
        scheme = "my"
        OPTIONS = {"endpoint_url": OptionSpec(str), "token": OptionSpec(str, secret=True)}

        @classmethod
        def from_location(cls, location): ...
        def description(self): ...
        def put(self, key, data, *, sha256, metadata, lock=True): ...
        def stat(self, key): ...
        def get(self, key): ...
        def list(self, prefix): ...
        def delete(self, key): ...

Keys are ``/``-separated paths relative to the store's location (its bucket
and prefix, or its root directory), never starting or ending with ``/``.

Errors: a primitive may raise anything its library raises; the engine turns
it into coldtier's own error in one place, asking :meth:`ObjectStore.classify`
what kind of failure it was.  A backend overrides ``classify`` to read its
library's responses (status codes, error codes) instead of message text.
"""

from __future__ import annotations

import abc
import enum
import errno
import logging
import random
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Self

from ._errors import ArchiveNotFound, InvalidRequest
from ._options import Location, OptionSpec, parse_url

__all__ = [
    "ArchiveNotFound",
    "Entry",
    "Fault",
    "InvalidRequest",
    "Location",
    "ObjectStore",
    "OptionSpec",
    "Stat",
    "UnsafeEntry",
    "backoff",
    "bucket_and_prefix",
    "causes",
    "kept_metadata",
    "metadata_name",
    "redact_secrets",
    "stored_metadata",
]

#: Prefix of the user-metadata names coldtier writes (``coldtier-sha256``).
METADATA_PREFIX = "coldtier-"
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]")


class Fault(enum.Enum):
    """What kind of failure an exception of a store's library is (see :meth:`ObjectStore.classify`)."""

    #: A create-only put was refused because the object exists.
    EXISTS = "exists"
    #: A concurrent conditional write of the same key is in flight (S3's 409); retry shortly.
    CONFLICT = "conflict"
    #: The object does not exist.
    NOT_FOUND = "not found"
    #: The location itself (bucket, container, root directory) does not exist.
    NO_LOCATION = "no such location"
    #: The credentials are refused or lack a permission.
    DENIED = "access denied"
    #: A request timed out.
    TIMEOUT = "timed out"
    #: The store could not be reached, or answered with a server error after retries.
    UNAVAILABLE = "unavailable"


@dataclass(frozen=True, slots=True)
class Stat:
    """What a store knows of one object without reading it.

    ``metadata`` holds what :meth:`ObjectStore.put` was given (names without
    the ``coldtier-`` prefix), and ``"sha256"``; empty where the store keeps
    no metadata.  What protects the object from deletion, where the store
    says (see :attr:`ObjectStore.reports_protection`): ``retain_until`` (an
    Object Lock or retention date; ``datetime.max`` for a legal hold),
    ``storage_class`` and ``modified`` (for a class's minimum storage duration).
    """

    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)
    retain_until: datetime | None = None
    storage_class: str | None = None
    modified: datetime | None = None

    @property
    def sha256(self) -> str | None:
        """The SHA-256 of the object's bytes, if the store kept it."""
        return self.metadata.get("sha256")


@dataclass(frozen=True, slots=True)
class Entry:
    """One name directly under a listed prefix: an object, or a "directory" (common prefix).

    ``unsafe`` says what a store found under the name when it is neither an
    object nor a directory it will use, and refuses to follow or open it —
    ``"a symbolic link (not followed)"``, ``"a FIFO (not opened)"`` (the local
    store on a shared volume).  Readers of the archive raise naming it,
    ``verify`` reports it as a problem and goes on.  Stores that have no such
    thing leave it ``None``.
    """

    key: str
    size: int = 0
    is_dir: bool = False
    unsafe: str | None = None

    @property
    def name(self) -> str:
        """The last segment of :attr:`key`."""
        return self.key.rsplit("/", 1)[-1]


class UnsafeEntry(OSError):
    """A store refused what it found at ``key`` (or on the way to it): not what the archive put there.

    Raised by a primitive instead of following a symbolic link or opening a
    FIFO, a device or a directory where it expected an object (or a file
    where it expected a directory).  ``found`` says what it is (``"a symbolic
    link (not followed)"``), ``expected`` what should be there (``"a
    directory"``).  ``verify`` turns a listing refused this way into a
    problem of ``key``; other calls raise :class:`~coldtier.ArchiveReadError`
    (or ``ArchiveWriteError``) naming it.
    """

    def __init__(self, key: str, found: str, expected: str) -> None:
        super().__init__(errno.EPERM, f"refused {found} at {key}, expected {expected}")
        self.key, self.found, self.expected = key, found, expected

    def __str__(self) -> str:
        return str(self.strerror)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.key, self.found, self.expected))


class ObjectStore(abc.ABC):
    """A create-only object store at one location: the primitives coldtier's engine needs.

    Subclasses set :attr:`scheme` and :attr:`OPTIONS` and implement the
    abstract methods; the capability attributes say what the store can do,
    so the engine never forks on the backend's type.
    """

    #: The URL scheme this store serves (``s3``); informative.
    scheme: ClassVar[str] = ""
    #: Options of this backend, from the URL's query string or keywords; the
    #: engine adds its own (``max_object_bytes``, ``workers``, ...).  Mark
    #: credentials ``secret=True``: they are refused in URLs and kept out of logs.
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {}
    #: Whether :meth:`stat` returns the metadata :meth:`put` stored (then a
    #: refused create is confirmed without downloading the object).
    keeps_metadata: ClassVar[bool] = False
    #: Whether :meth:`stat` fills ``retain_until``, ``storage_class`` and
    #: ``modified``: then ``repack`` and ``expire`` stat an object before deleting
    #: it, and leave it (saying why) while the store protects it.
    reports_protection: ClassVar[bool] = False
    #: Whether anything survives the process (``memory://`` does not).
    durable: ClassVar[bool] = True
    #: Default size limit of one object, if the store needs a smaller one
    #: than the engine's 256 MiB (a single-request upload is re-sent whole).
    default_object_bytes: ClassVar[int | None] = None
    #: The largest object one :meth:`put` can store, if the store has a limit.
    max_put_bytes: ClassVar[int | None] = None

    @property
    def locks_objects(self) -> bool:
        """Whether puts with ``lock=True`` make objects undeletable for a while (Object Lock)."""
        return False

    # -- construction -------------------------------------------------------

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> Self:
        """The store a URL names; unknown options are :class:`~coldtier.InvalidRequest`."""
        return cls.from_location(parse_url(url, cls.OPTIONS, options))

    @classmethod
    @abc.abstractmethod
    def from_location(cls, location: Location) -> Self:
        """Build the store from a parsed URL whose options are already checked and typed.

        Note for implementers: validate what the specs cannot (a bucket name,
        option combinations) and raise :class:`~coldtier.InvalidRequest`; do
        not contact the store here (opening an archive must be cheap and
        offline).
        """

    @abc.abstractmethod
    def description(self) -> str:
        """Where the store is, as a URL (``s3://bucket/prefix``); never a credential."""

    # -- primitives ---------------------------------------------------------

    @abc.abstractmethod
    def put(
        self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True
    ) -> bool:
        """Store ``data`` under ``key`` only if no object is there.  Durable when it returns.

        Returns True when this call created the object, False when the store
        refused because an object already exists under ``key`` (maybe this
        writer's own earlier put whose answer was lost).  Never replaces an
        object and never leaves a partial one under ``key``, whatever fails.

        ``sha256`` is the hex SHA-256 of ``data``: send it as the store's
        transport checksum where it has one, and keep it (as ``sha256``) with
        ``metadata`` where the store keeps metadata (see :func:`metadata_name`).
        ``lock=False`` asks for no retention lock (the probe's canary, which
        must stay deletable).

        Note for implementers: raise on failure (anything; :meth:`classify`
        says what it was); report "already exists" by returning False, not by
        raising.  Your library's retries are yours to bound (a timeout and an
        attempt count from your options); a retry of your own put may be
        refused because the first attempt landed: return False, and the
        engine confirms the content.
        """

    @abc.abstractmethod
    def stat(self, key: str) -> Stat:
        """Size and kept metadata of the object under ``key``.

        Note for implementers: raise (e.g. ``FileNotFoundError``) when there
        is no such object.
        """

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object under ``key``.

        Note for implementers: raise (e.g. ``FileNotFoundError``) when there
        is no such object.
        """

    @abc.abstractmethod
    def list(self, prefix: str) -> list[Entry]:
        """Entries directly under ``prefix`` (``""``: the location's top), in any order.

        Objects and "directories" (common prefixes) one level down; entry keys
        are full keys (``prefix/name``).  Names no reader may list (temporary
        files) are left out.

        A name the store will not follow or open (a symbolic link, a FIFO) is
        listed with :attr:`Entry.unsafe` saying what it is, not left out and
        not raised: verify reports it and checks the rest.  When ``prefix``
        itself is such a thing, raise :class:`UnsafeEntry`.

        Note for implementers: return ``[]`` when nothing is under ``prefix``,
        but raise :class:`~coldtier.ArchiveNotFound` (or an error
        :meth:`classify` calls :attr:`Fault.NO_LOCATION`) when the location
        itself — the bucket, container or root directory — does not exist:
        a misspelt bucket must never read as an empty archive.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object under ``key`` (the probe's canary; lifecycle operations).

        Note for implementers: raise when it cannot be removed (Object Lock,
        permissions); removing a missing object may succeed or raise
        ``FileNotFoundError``.
        """

    # -- failures -----------------------------------------------------------

    def classify(self, exc: BaseException) -> Fault | None:
        """What kind of failure ``exc`` (raised by a primitive) is, or None if unknown.

        The default knows the builtins.  Note for implementers: override to
        read your library's responses — status and error code, found on the
        exception or its ``__cause__`` — and fall back to this one.
        """
        for err in _chain(exc):
            if isinstance(err, FileExistsError):
                return Fault.EXISTS
            if isinstance(err, FileNotFoundError):
                return Fault.NOT_FOUND
            if isinstance(err, PermissionError):
                return Fault.DENIED
            if isinstance(err, TimeoutError):
                return Fault.TIMEOUT
            if isinstance(err, ConnectionError):
                return Fault.UNAVAILABLE
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.description()}>"


# ---------------------------------------------------------------------------
# Helpers for implementers


def metadata_name(name: str, separator: str = "-") -> str:
    """The stored user-metadata name of ``name``: ``coldtier-sha256`` (or ``coldtier_sha256``).

    Stores whose metadata names must be identifiers (Azure) pass ``"_"``.
    """
    return f"{METADATA_PREFIX.rstrip('-')}{separator}{name}"


def stored_metadata(metadata: Mapping[str, str], separator: str = "-") -> dict[str, str]:
    """The user metadata to store for :meth:`ObjectStore.put`'s ``metadata`` (names prefixed)."""
    return {metadata_name(k, separator): v for k, v in metadata.items()}


def kept_metadata(stored: Mapping[str, str], separator: str = "-") -> dict[str, str]:
    """The inverse of :func:`stored_metadata`, for :class:`Stat`: coldtier's names, unprefixed."""
    prefix = metadata_name("", separator)
    return {k[len(prefix) :]: v for k, v in stored.items() if k.lower().startswith(prefix)}


def backoff(attempts: int, base: float = 0.2, cap: float = 10.0) -> Iterator[float]:
    """Jittered exponential delays between ``attempts`` tries: ``attempts - 1`` values.

    Use it for every retry loop, sync or async::

        for delay in itertools.chain(backoff(attempts), [None]):
            try:
                return call()
            except Retryable:
                if delay is None:
                    raise
            time.sleep(delay)
    """
    for attempt in range(max(0, attempts - 1)):
        yield min(cap, base * 2**attempt) * (1 + random.random() / 2)


def bucket_and_prefix(location: Location, *, bucket_re: re.Pattern[str] = _BUCKET_RE) -> tuple[str, str]:
    """Split ``scheme://bucket/a/b`` into ``("bucket", "a/b")``, refusing what no store means.

    An empty, ``.`` or ``..`` segment in the prefix is refused: ``s3://b/a//c``
    and ``s3://b/a/../c`` would name keys that listings show under another name.
    """
    bucket, prefix = location.netloc, location.path.strip("/")
    if not bucket:
        raise InvalidRequest(
            f"{location.scheme}:// URL names no bucket: use {location.scheme}://bucket/prefix"
        )
    if not bucket_re.fullmatch(bucket):
        raise InvalidRequest(f"{location.scheme}:// URL needs a valid bucket name, got {bucket!r}")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise InvalidRequest(f"{location.scheme}:// prefix {prefix!r} has an empty, '.' or '..' segment")
    return bucket, prefix


class _Redactor(logging.Filter):
    """Masks given secrets in the records of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.loggers: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        masked = text
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != text:
            record.msg, record.args = masked, None
        return True


_REDACTOR = _Redactor()


def redact_secrets(location: Location, specs: Mapping[str, OptionSpec], loggers: Iterable[str]) -> None:
    """Mask the secret options of ``location`` (those ``specs`` mark secret) in ``loggers``' records.

    For libraries that log credentials at DEBUG (botocore logs request headers).
    """
    for name in loggers:
        if name not in _REDACTOR.loggers:
            logging.getLogger(name).addFilter(_REDACTOR)
            _REDACTOR.loggers.add(name)
    for name, value in location.options.items():
        spec = specs.get(name)
        if spec is not None and spec.secret and isinstance(value, str) and len(value) >= 4:
            _REDACTOR.secrets.add(value)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its ``__cause__``, theirs, ... (at most a few links)."""
    seen = 0
    err: BaseException | None = exc
    while err is not None and seen < 8:
        yield err
        err = err.__cause__ or (None if err.__suppress_context__ else err.__context__)
        seen += 1


def causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from: where a library's response hides."""
    return _chain(exc)
