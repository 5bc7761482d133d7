"""One object: encode a part, put it create-only, confirm a refused create by its events' digest."""

from __future__ import annotations

import hashlib
from concurrent.futures import wait
from dataclasses import dataclass

import pyarrow as pa

from .. import _digest, _format, _keys
from .._errors import ArchiveWriteError, ColdTierError, IntegrityError
from .._types import Window
from ..store import ObjectStore
from .faults import reason, writing
from .settings import Settings

__all__ = ["Encoded", "Stored", "TooLarge", "encode", "put"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One object ready to put: its key, bytes and both digests."""

    key: str
    data: bytes
    sha256: str  # of the bytes: the store's transport checksum
    digest: str  # logical (docs/FORMAT.md): the object's identity
    events: int


@dataclass(frozen=True, slots=True)
class Stored:
    key: str
    events: int
    size: int
    created: bool


class TooLarge(Exception):
    """An encoded part exceeded ``max_object_bytes``; re-plan with smaller parts."""


#: From this many rows on, a part's logical digest is computed on another
#: thread while the Parquet writer encodes its rows (the footer, which holds
#: the digest, is written last); below it the digest costs less than a hand-off.
_BESIDE_ROWS = 16_384


def encode(
    tenant: str,
    call: Window,
    table: pa.Table,
    part: int | None,
    parts: int | None,
    *,
    settings: Settings,
    beside: bool | None = None,
) -> Encoded:
    """One object: named by its logical digest and, for a part, by its own rows' window.

    ``beside``: compute the digest on the shared hashing threads while this
    thread encodes (default: from :data:`_BESIDE_ROWS` rows on).
    """
    own = call if part is None else _format.part_window(table)

    def meta(digest: str) -> dict[str, str]:
        return _format.footer(
            tenant, own, table.num_rows, part, parts, digest=digest, call=None if part is None else call
        )

    if not (table.num_rows >= _BESIDE_ROWS if beside is None else beside):
        digest = _digest.logical_digest(table)
        data = _format.encode(table, meta(digest), **settings.encoding())
    else:
        pending = _digest.hashing_pool().submit(_digest.digest_on_one_thread, table)
        try:
            data = _format.encode(table, lambda: meta(pending.result()), **settings.encoding())
        finally:
            wait([pending])  # never leave a digest running on a table we no longer hold
        digest = pending.result()
    if len(data) > settings.max_object_bytes:
        raise TooLarge
    key = _keys.object_key(tenant, own, digest[:16])
    return Encoded(key, data, hashlib.sha256(data).hexdigest(), digest, table.num_rows)


def put(store: ObjectStore, obj: Encoded) -> Stored:
    """Store ``obj`` create-only; a refused create is confirmed (see :func:`confirm`)."""
    with writing(store, f"storing {obj.key}"):
        created = store.put(obj.key, obj.data, sha256=obj.sha256, metadata={"digest": obj.digest})
    size = len(obj.data) if created else confirm(store, obj)
    return Stored(obj.key, obj.events, size, created)


def confirm(store: ObjectStore, obj: Encoded) -> int:
    """The store refused our create: make sure what is there holds the same events; its size.

    By the logical digest kept in the store's metadata (one stat), else by
    the stored object's footer.  A different writer version, codec or
    row-group size wrote different bytes of the same events: that is the
    same object.
    """
    try:
        stat = store.stat(obj.key)
        stored = stat.metadata.get("digest")
        if stored is None:
            stored = _stored_digest(store.get(obj.key))
    except ColdTierError:
        raise
    except Exception as exc:
        raise ArchiveWriteError(
            f"{obj.key} already exists in {store.description()} but could not be confirmed: {reason(exc)}"
        ) from exc
    if stored != obj.digest:
        raise IntegrityError(
            f"{obj.key} already exists in {store.description()} with different content "
            f"(logical digest {stored}) than this batch ({obj.digest})"
        )
    return stat.size


def _stored_digest(data: bytes) -> str | None:
    """The logical digest a stored object's footer records; None if it has none or no footer."""
    try:
        return _format.read_footer(_format.open_parquet(data)).get("coldtier.digest")
    except (pa.ArrowException, OSError, ValueError):
        return None
