"""An archive in a task graph: pickled as its URL and non-secret options, never a credential.

A Dask worker (or any process that unpickles one) opens the archive again
from the URL, taking credentials from its own environment (``AWS_*``,
``GOOGLE_APPLICATION_CREDENTIALS``, an instance role), as a CLI run would.
Each process keeps the archives it reopened, so a thousand tasks on one
worker share one archive and its connection pool.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._options import ENGINE_OPTIONS, Location

if TYPE_CHECKING:
    from ..store import ObjectStore
    from . import StoreArchive

__all__ = ["origin", "reopen"]

_CACHE_SIZE = 16
_opened: dict[tuple[Any, ...], StoreArchive] = {}
_lock = threading.Lock()


def origin(
    store_class: type[ObjectStore], url: str, location: Location, engine: dict[str, Any]
) -> tuple[type[ObjectStore], str, dict[str, Any]]:
    """What a pickle of the archive holds: its class, URL (no query) and options less the secret ones."""
    specs = {**ENGINE_OPTIONS, **store_class.OPTIONS}
    options = {
        name: value
        for name, value in {**location.options, **engine}.items()
        if not (name in specs and specs[name].secret)
    }
    if location.scheme in ("", "file"):
        # Another process may have another working directory.
        base = str(Path(location.path).expanduser().resolve())
    else:
        base = f"{location.scheme}://{location.netloc}{location.path}"
    return store_class, base, options


def reopen(store_class: type[ObjectStore], url: str, options: tuple[tuple[str, Any], ...]) -> StoreArchive:
    """The archive a pickle names, opened once per process (credentials from this environment)."""
    from . import StoreArchive  # noqa: PLC0415 - the package imports this module

    key = (store_class, url, options)
    try:
        with _lock:
            found = _opened.get(key)
    except TypeError:  # an unhashable option value: open without the cache
        return StoreArchive.open(store_class, url, **dict(options))
    if found is not None:
        return found
    archive = StoreArchive.open(store_class, url, **dict(options))
    with _lock:
        if len(_opened) >= _CACHE_SIZE:
            _opened.pop(next(iter(_opened)))
        return _opened.setdefault(key, archive)
