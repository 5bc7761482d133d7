"""Backend discovery: a built-in table of dotted paths, overlaid by entry points.

Entry points of the group ``coldtier.backends`` (name = scheme, value =
``module:Class``, an :class:`~coldtier.store.ObjectStore` or a whole
:class:`~coldtier.Archive` subclass) are read lazily on first use; classes
are imported only when a URL of their scheme is opened, so ``import
coldtier`` imports no cloud SDK.  An entry point never takes a built-in
scheme: it is ignored with a warning naming its distribution (only
:func:`register_backend` with ``clobber=True`` replaces a built-in).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from ._archive import Archive
from ._errors import InvalidRequest
from ._plugins import Plugins
from .store import ObjectStore

__all__ = ["available_backends", "load_backend", "open_archive", "register_backend"]

GROUP = "coldtier.backends"

_BUILTIN: Mapping[str, str] = {
    "file": "coldtier.backends.local:LocalStore",
    "memory": "coldtier.backends.memory:MemoryStore",
    "s3": "coldtier.backends.s3:S3Store",
    "r2": "coldtier.backends.s3:R2Store",
    "gs": "coldtier.backends.gcs:GCSStore",
    "gcs": "coldtier.backends.gcs:GCSStore",
}
#: Which extra each built-in needs, and the top-level modules that extra brings.
_EXTRAS: Mapping[str, tuple[str, frozenset[str]]] = {
    "s3": ("s3", frozenset({"s3fs", "aiobotocore", "botocore", "boto3", "aiohttp"})),
    "r2": ("s3", frozenset({"s3fs", "aiobotocore", "botocore", "boto3", "aiohttp"})),
    "gs": ("gcs", frozenset({"gcsfs", "google", "google_crc32c", "aiohttp"})),
    "gcs": ("gcs", frozenset({"gcsfs", "google", "google_crc32c", "aiohttp"})),
}

Backend = type[Archive] | type[ObjectStore]
_plugins: Plugins[Backend] = Plugins(
    GROUP,
    "backend",
    bases=(Archive, ObjectStore),
    kinds="coldtier.store.ObjectStore or coldtier.Archive",
    builtin=_BUILTIN,
    extras=_EXTRAS,
)
_registered = _plugins.registered
_reset_entry_points = _plugins.reset  # tests: forget discovered entry points, or use others


def available_backends() -> Mapping[str, str]:
    """Scheme → ``"module:Class"`` of every backend: built-ins, entry points, registered."""
    return _plugins.available()


def register_backend(scheme: str, cls: Backend | str, *, clobber: bool = False) -> None:
    """Register ``cls`` for ``scheme`` at run time: an :class:`~coldtier.store.ObjectStore` or
    :class:`~coldtier.Archive` subclass, or its ``"module:Class"``."""
    _plugins.register(scheme, cls, clobber=clobber)


def load_backend(scheme: str) -> Backend:
    """The class serving ``scheme`` (imported now): an ``ObjectStore`` or ``Archive`` subclass.

    Raises :class:`UnknownBackend` for an unregistered scheme and
    :class:`MissingDependency`, naming the extra to install, when its
    libraries are missing.
    """
    return _plugins.load(scheme)


def _scheme(url: str) -> str:
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"archive URL must be a non-empty string, got {url!r}")
    scheme = urlsplit(url).scheme.lower() if "://" in url or url.startswith("file:") else ""
    return scheme or "file"


def open_archive(url: str, /, **options: Any) -> Archive:
    """Open the archive a URL names.

    ==============================  =================================  =======
    URL                             backend                            extra
    ==============================  =================================  =======
    ``/path``, ``file:///path``     local filesystem (reference)       —
    ``memory://name``               fsspec memory, for tests           —
    ``s3://bucket/prefix``          Amazon S3 (s3fs)                   ``s3``
    ``r2://bucket/prefix``          Cloudflare R2 (S3 API)             ``s3``
    ``gs://`` / ``gcs://bucket/p``  Google Cloud Storage (gcsfs)       ``gcs``
    ==============================  =================================  =======

    Options come from the URL's query string or keywords; unknown ones are
    :class:`InvalidRequest`.  Credentials are accepted only as keywords (or
    from the environment), never in the URL.
    """
    cls = load_backend(_scheme(url))
    if issubclass(cls, ObjectStore):
        from ._engine import StoreArchive  # noqa: PLC0415 - the engine loads pyarrow's compute kernels

        return StoreArchive.open(cls, url, **options)
    return cls.from_url(url, **options)


def _document_options() -> None:
    """Append the options reference of the built-in backends to ``open_archive.__doc__``.

    Built from the SDK-free option specs (no cloud SDK is imported); plugins'
    backends are in ``python -m coldtier._reference --text --all``.
    """
    if open_archive.__doc__ is None:  # python -OO
        return
    from ._reference import text  # noqa: PLC0415 - after the definitions it documents

    doc = inspect.cleandoc(open_archive.__doc__)
    open_archive.__doc__ = f"{doc}\n\n{text()}"


_document_options()
