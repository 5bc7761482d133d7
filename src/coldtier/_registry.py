"""Backend discovery: a built-in table of dotted paths, overlaid by entry points.

Entry points of the group ``coldtier.backends`` (name = scheme, value =
``module:Class``) are read lazily on first use; classes are imported only
when a URL of their scheme is opened, so ``import coldtier`` imports no cloud
SDK.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections import ChainMap
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from ._archive import Archive
from ._errors import InvalidRequest, MissingDependency, UnknownBackend

__all__ = ["available_backends", "open_archive", "register_backend"]

GROUP = "coldtier.backends"
_SCHEME_RE = re.compile(r"^[a-z][a-z0-9+_.-]*$")

_BUILTIN: Mapping[str, str] = {
    "file": "coldtier._local:LocalArchive",
    "memory": "coldtier._memory:MemoryArchive",
    "s3": "coldtier._s3:S3Archive",
    "r2": "coldtier._s3:R2Archive",
    "gs": "coldtier._gcs:GCSArchive",
    "gcs": "coldtier._gcs:GCSArchive",
}
#: Which extra each built-in needs, and the top-level modules that extra brings.
_EXTRAS: Mapping[str, tuple[str, frozenset[str]]] = {
    "s3": ("s3", frozenset({"s3fs", "aiobotocore", "botocore", "boto3"})),
    "r2": ("s3", frozenset({"s3fs", "aiobotocore", "botocore", "boto3"})),
    "gs": ("gcs", frozenset({"gcsfs", "google"})),
    "gcs": ("gcs", frozenset({"gcsfs", "google"})),
}

_lock = threading.Lock()
_registered: dict[str, str | type[Archive]] = {}
_entry_points: dict[str, str] | None = None


def _discovered() -> dict[str, str]:
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    with _lock:
        if _entry_points is None:
            _entry_points = {ep.name: ep.value for ep in entry_points(group=GROUP)}
        return _entry_points


def _reset_entry_points(extra: list[EntryPoint] | None = None) -> None:
    """Forget discovered entry points (tests), optionally adding ``extra``."""
    global _entry_points  # noqa: PLW0603 - one lazily filled cache
    with _lock:
        _entry_points = None if extra is None else {ep.name: ep.value for ep in extra}


def _table() -> ChainMap[str, str | type[Archive]]:
    return ChainMap(_registered, _discovered(), dict(_BUILTIN))  # type: ignore[arg-type]


def available_backends() -> Mapping[str, str]:
    """Scheme → ``"module:Class"`` of every backend: built-ins, entry points, registered."""
    view = {
        scheme: target if isinstance(target, str) else f"{target.__module__}:{target.__qualname__}"
        for scheme, target in sorted(_table().items())
    }
    return MappingProxyType(view)


def register_backend(scheme: str, cls: type[Archive] | str, *, clobber: bool = False) -> None:
    """Register ``cls`` (a class or ``"module:Class"``) for ``scheme`` at run time."""
    if not isinstance(scheme, str) or not _SCHEME_RE.match(scheme):
        raise InvalidRequest(f"invalid scheme {scheme!r}: need ^[a-z][a-z0-9+_.-]*$")
    if not clobber and scheme in _table():
        raise InvalidRequest(f"a backend for {scheme}:// is already registered; pass clobber=True")
    if not isinstance(cls, str) and not (isinstance(cls, type) and issubclass(cls, Archive)):
        raise InvalidRequest(f"{cls!r} is not a coldtier.Archive subclass or 'module:Class' string")
    with _lock:
        _registered[scheme] = cls


def _load(scheme: str) -> type[Archive]:
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
    if not (isinstance(cls, type) and issubclass(cls, Archive)):
        raise UnknownBackend(f"{target} for {scheme}:// is not a coldtier.Archive subclass")
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
    return _load(_scheme(url)).from_url(url, **options)
