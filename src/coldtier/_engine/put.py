"""One object: encode a part, put it create-only, confirm a refused create by its events' digest."""

from __future__ import annotations

import hashlib
from concurrent.futures import wait
from dataclasses import dataclass

import pyarrow as pa

from .. import _digest, _format, _keys, _observe
from .._crypto import FOOTER_KEY, Cipher
from .._errors import ArchiveWriteError, ColdTierError, IntegrityError, KeyUnavailable
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
    tenant_key: str | None = None  # the id of the tenant key an encrypted object is sealed by


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
    # A key that cannot be used stores nothing: asked before any encoding.
    sealed = None if settings.encryption is None else sealing(settings.encryption, tenant)

    def meta(digest: str) -> dict[str, str]:
        out = _format.footer(
            tenant, own, table.num_rows, part, parts, digest=digest, call=None if part is None else call
        )
        if sealed is not None:
            out[FOOTER_KEY] = sealed[0]
            out = dict(sorted(out.items()))
        return out

    options = {**settings.encoding(), "encryption": None if sealed is None else sealed[1]}
    if not (table.num_rows >= _BESIDE_ROWS if beside is None else beside):
        digest = _digest.logical_digest(table)
        data = _format.encode(table, meta(digest), **options)
    else:
        pending = _digest.hashing_pool().submit(_digest.digest_on_one_thread, table)
        try:
            data = _format.encode(table, lambda: meta(pending.result()), **options)
        finally:
            wait([pending])  # never leave a digest running on a table we no longer hold
        digest = pending.result()
    if len(data) > settings.max_object_bytes:
        raise TooLarge
    key = _keys.object_key(tenant, own, digest[:16])
    tenant_key = None if sealed is None else sealed[0]
    return Encoded(key, data, hashlib.sha256(data).hexdigest(), digest, table.num_rows, tenant_key)


def sealing(cipher: Cipher, tenant: str) -> tuple[str, object]:
    """The tenant key id and encryption properties of a new object; a key that cannot be used is not durable.

    A shredded key stays :class:`KeyUnavailable` (archiving for that tenant
    needs a new key first); a missing, denied or disabled one is an
    :class:`ArchiveWriteError`: nothing of the batch is stored.
    """
    try:
        return cipher.encryption(tenant)
    except KeyUnavailable as exc:
        if exc.shredded:
            raise
        raise ArchiveWriteError(f"cannot encrypt tenant {tenant!r}'s events: {exc}") from exc


def put(store: ObjectStore, obj: Encoded, cipher: Cipher | None = None) -> Stored:
    """Store ``obj`` create-only; a refused create is confirmed (see :func:`confirm`)."""
    metadata = {"digest": obj.digest}
    if obj.tenant_key is not None:
        metadata["tenantkey"] = obj.tenant_key
    with writing(store, f"storing {obj.key}"):
        created = store.put(obj.key, obj.data, sha256=obj.sha256, metadata=metadata)
    _observe.answered(store, created)
    size = len(obj.data) if created else confirm(store, obj, cipher)
    _observe.stored(store, created)
    return Stored(obj.key, obj.events, size, created)


def confirm(store: ObjectStore, obj: Encoded, cipher: Cipher | None = None) -> int:
    """The store refused our create: make sure what is there holds the same events; its size.

    By the logical digest kept in the store's metadata (one stat), else by
    the stored object's footer.  A different writer version, codec or
    row-group size wrote different bytes of the same events: that is the
    same object.
    """
    sealed = None
    try:
        stat = store.stat(obj.key)
        stored = stat.metadata.get("digest")
        sealed = stat.metadata.get("tenantkey")
        if stored is None:  # a store without metadata: the footer says both
            footer = _stored_footer(store.get(obj.key))
            stored, sealed = footer.get("coldtier.digest"), footer.get(FOOTER_KEY)
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
    if sealed is not None and cipher is not None and cipher.provider.state(sealed) == "shredded":
        # Same events, same name: they can never be stored again, and what is there is unreadable.
        raise ArchiveWriteError(
            f"{obj.key} already holds these events, encrypted under the shredded key {sealed}: "
            "the same events cannot be archived again (their name is their digest)"
        )
    return stat.size


def _stored_footer(data: bytes) -> dict[str, str]:
    """A stored object's footer; empty if it has no readable footer."""
    try:
        return _format.read_footer(_format.open_parquet(data))
    except (pa.ArrowException, OSError, ValueError):
        return {}
