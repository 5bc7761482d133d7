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

import importlib
import inspect
import re
import threading
import warnings
from collections import ChainMap
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ._archive import Archive
from ._errors import InvalidRequest, MissingDependency, UnknownBackend
from .store import ObjectStore

__all__ = ["available_backends", "load_backend", "open_archive", "register_backend"]

GROUP = "coldtier.backends"
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+_.-]*$")

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

_lock = threading.Lock()
Backend = type[Archive] | type[ObjectStore]
_registered: dict[str, str | Backend] = {}
_entry_points: dict[str, str] | None = None


def _usable(points: list[EntryPoint]) -> dict[str, str]:
    """Entry points by scheme, without those that would take a built-in scheme."""
    found: dict[str, str] = {}
    for ep in points:
        dist = ep.dist.name if ep.dist is not None else None
        if ep.name in _BUILTIN:
            if dist != "coldtier" and ep.value != _BUILTIN[ep.name]:  # our own declarations agree
                warnings.warn(
                    f"ignoring the coldtier.backends entry point {ep.name!r} = {ep.value!r} of "
                    f"{dist or 'an unknown distribution'}: {ep.name}:// is a built-in scheme",
                    RuntimeWarning,
                    stacklevel=4,
                )
            continue
        if not _SCHEME_RE.match(ep.name):
            warnings.warn(
                f"ignoring the coldtier.backends entry point {ep.name!r} of "
                f"{dist or 'an unknown distribution'}: not a valid scheme",
                RuntimeWarning,
                stacklevel=4,
            )
            continue
        found[ep.name] = ep.value
    return found


def _discovered() -> dict[str, str]:
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    with _lock:
        if _entry_points is None:
            _entry_points = _usable(list(entry_points(group=GROUP)))
        return _entry_points


def _reset_entry_points(extra: list[EntryPoint] | None = None) -> None:
    """Forget discovered entry points (tests), optionally adding ``extra``."""
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    with _lock:
        _entry_points = None
    if extra is not None:
        usable = _usable(extra)
        with _lock:
            _entry_points = usable


def _table() -> ChainMap[str, str | Backend]:
    return ChainMap(_registered, _discovered(), dict(_BUILTIN))  # type: ignore[arg-type]


def available_backends() -> Mapping[str, str]:
    """Scheme → ``"module:Class"`` of every backend: built-ins, entry points, registered."""
    view = {
        scheme: target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        for scheme, target in sorted(_table().items())
    }
    return MappingProxyType(view)


def register_backend(scheme: str, cls: Backend | str, *, clobber: bool = False) -> None:
    """Register ``cls`` for ``scheme`` at run time: an :class:`~coldtier.store.ObjectStore` or
    :class:`~coldtier.Archive` subclass, or its ``"module:Class"``."""
    if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme):
        raise InvalidRequest(f"invalid scheme {scheme!r}: need ^[a-z][a-z0-9+_.-]*$")
    if not clobber and scheme in _table():
        raise InvalidRequest(f"a backend for {scheme}:// is already registered; pass clobber=True")
    if not isinstance(cls, str) and not (isinstance(cls, type) and issubclass(cls, (Archive, ObjectStore))):
        raise InvalidRequest(
            f"{cls!r} is not a coldtier.store.ObjectStore or coldtier.Archive subclass, "
            "or a 'module:Class' string"
        )
    with _lock:
        _registered[scheme] = cls


def load_backend(scheme: str) -> Backend:
    """The class serving ``scheme`` (imported now): an ``ObjectStore`` or ``Archive`` subclass.

    Raises :class:`UnknownBackend` for an unregistered scheme and
    :class:`MissingDependency`, naming the extra to install, when its
    libraries are missing.
    """
    target = _table().get(scheme)
    if target is None:
        known = ", ".join(f"{s}://" for s in sorted(_table()))
        raise UnknownBackend(f"no coldtier backend for {scheme}://; known schemes: {known}")
    if not isinstance(target, str):
        return target
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        extra, modules = _EXTRAS.get(scheme, ("", frozenset()))
        missing = (exc.name or "").split(".")[0]
        if extra and missing in modules:
            raise MissingDependency(
                f"the {scheme}:// backend needs {missing}: pip install 'coldtier[{extra}]'"
            ) from exc
        raise MissingDependency(f"the {scheme}:// backend ({target}) could not be imported: {exc}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, (Archive, ObjectStore))):
        raise UnknownBackend(f"{target} for {scheme}:// is not a coldtier.store.ObjectStore or Archive subclass")
    return cls


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
