"""The one place a store's failures become coldtier's errors (DESIGN.md §1).

Every call the engine makes on an :class:`~coldtier.store.ObjectStore` runs
inside :func:`reading` or :func:`writing`; the store's own
:meth:`~coldtier.store.ObjectStore.classify` says what kind of failure an
exception is, from its library's response, and the cause stays in
``__cause__``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from .. import _observe
from .._errors import ArchiveNotFound, ArchiveReadError, ArchiveWriteError, ColdTierError
from ..store import Fault, ObjectStore

__all__ = ["reading", "reason", "writing"]


def reason(exc: BaseException, fault: Fault | None = None) -> str:
    """One short line saying what went wrong (never a traceback)."""
    text = " ".join((str(exc) or type(exc).__name__).split())
    text = text if len(text) < 300 else text[:300] + "…"
    if fault is None or fault.value in text.lower():
        return text
    return f"{fault.value} ({text})"


@contextmanager
def reading(store: ObjectStore, action: str) -> Iterator[None]:
    """Turn a failure inside the block into :class:`ArchiveReadError` (``ArchiveNotFound``)."""
    with _translating(store, action, write=False):
        yield


@contextmanager
def writing(store: ObjectStore, action: str) -> Iterator[None]:
    """Turn a failure inside the block into :class:`ArchiveWriteError`: the caller keeps its data."""
    with _translating(store, action, write=True):
        yield


@contextmanager
def _translating(store: ObjectStore, action: str, *, write: bool) -> Iterator[None]:
    try:
        yield
    except ColdTierError:
        raise
    except Exception as exc:
        fault = store.classify(exc)
        _observe.failed_request(store, fault)
        where = store.description()
        if fault is Fault.NO_LOCATION and not write:
            raise ArchiveNotFound(f"{where} does not exist (no such bucket, container or root)") from exc
        if not write:
            raise ArchiveReadError(f"{action} in {where} failed: {reason(exc, fault)}") from exc
        text = (
            "it does not exist (no such bucket, container or root)"
            if fault is Fault.NO_LOCATION
            else reason(exc, fault)
        )
        raise ArchiveWriteError(
            f"{action} in {where} failed: {text}; it may not be stored, keep the originals "
            "(a retry completes or confirms it)"
        ) from exc
