"""Probing: prove the store refuses a second create of one object (DESIGN.md §1)."""

from __future__ import annotations

import contextlib
import hashlib
import uuid

from .._errors import PreconditionUnsupported
from .._keys import PROBE_PREFIX
from ..store import ObjectStore
from .faults import writing

__all__ = ["probe"]


def probe(store: ObjectStore) -> None:
    """Write a canary twice under the reserved prefix, expect the second refused, remove it.

    The canary is put with ``lock=False``: it must stay removable under Object Lock.
    """
    key = f"{PROBE_PREFIX}/probe-{uuid.uuid4().hex}"
    first, second = b"coldtier probe: first write\n", b"coldtier probe: second write\n"
    where = store.description()
    try:
        with writing(store, "the probe"):
            created = store.put(key, first, sha256=hashlib.sha256(first).hexdigest(), metadata={}, lock=False)
        if not created:
            raise PreconditionUnsupported(f"{where}: a fresh probe object already existed")
        with writing(store, "the probe"):
            again = store.put(key, second, sha256=hashlib.sha256(second).hexdigest(), metadata={}, lock=False)
        if again:
            raise PreconditionUnsupported(
                f"{where} accepted a second create of the same object: it does not honour "
                "create-only writes, so archives could be overwritten"
            )
        with writing(store, "the probe"):
            if store.get(key) != first:
                raise PreconditionUnsupported(f"{where} overwrote an object while refusing the create")
    finally:
        with contextlib.suppress(Exception):  # best effort; the canary is harmless
            store.delete(key)
