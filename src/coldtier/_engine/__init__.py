"""The engine: one :class:`~coldtier.Archive` written once over any :class:`~coldtier.store.ObjectStore`.

One job per module: ``write`` (the pipeline), ``read`` (listing and
reading), ``verify``, ``probe``, ``faults`` (errors translated once),
``settings`` (the engine's options).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa

from .. import _observe, _validate
from .._archive import Archive, EventsInput
from .._errors import InvalidRequest
from .._options import ENGINE_OPTIONS, parse_url
from .._types import ArchivedObject, Event, ExpireReport, Problem, Receipt, RepackReport, VerifyReport
from .._validate.window import _aware_utc as aware_utc
from ..keys import KeyProvider, Shredded
from ..store import ObjectStore
from . import ledger
from . import pickled as _pickled
from . import probe as _probe
from . import verify as _verify
from .lifecycle import DEFAULT_GRACE, DEFAULT_TARGET_BYTES, Lifecycle
from .read import Progress, Reader, with_tenant
from .settings import Settings
from .shard import Plan
from .write import Writer

__all__ = ["StoreArchive"]


class StoreArchive(Archive):
    """An :class:`Archive` over an :class:`ObjectStore`: what ``open_archive`` returns."""

    def __init__(self, store: ObjectStore, **options: Any) -> None:
        self._store = store
        self._origin: tuple[type[ObjectStore], str, dict[str, Any]] | None = None
        self._settings = Settings.for_store(type(store), options)
        self._writer = Writer(store, self._settings)
        self._reader = Reader(store, self._settings)
        self._lifecycle = Lifecycle(store, self._reader, self._settings)

    @classmethod
    def from_url(cls, url: str, /, **options: Any) -> StoreArchive:
        raise TypeError("open a StoreArchive with StoreArchive.open(store_class, url, **options)")

    @classmethod
    def open(cls, store_class: type[ObjectStore], url: str, /, **options: Any) -> StoreArchive:
        """Parse ``url`` and ``options`` once: the engine's own options here, the rest to the store."""
        location = parse_url(url, {**ENGINE_OPTIONS, **store_class.OPTIONS}, options)
        engine = {k: v for k, v in location.options.items() if k in ENGINE_OPTIONS}
        own = {k: v for k, v in location.options.items() if k not in ENGINE_OPTIONS}
        location = dataclasses.replace(location, options=own)
        Settings.for_store(store_class, engine)  # the engine's options are refused before the store's
        archive = cls(store_class.from_location(location), **engine)
        archive._origin = _pickled.origin(store_class, url, location, engine)
        return archive

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its URL and non-secret options; credentials come again from the unpickler's environment."""
        if self._origin is None:
            raise TypeError("only an archive made by open_archive() (or StoreArchive.open) can be pickled")
        store_class, url, options = self._origin
        return (_pickled.reopen, (store_class, url, tuple(sorted(options.items()))))

    @property
    def store(self) -> ObjectStore:
        """The :class:`ObjectStore` this archive is written on."""
        return self._store

    def description(self) -> str:
        return self._store.description()

    # -- writing ---------------------------------------------------------------

    @_observe.operation("archive")
    def archive(self, tenant_id: str, start: datetime, end: datetime, events: EventsInput) -> Receipt:
        tenant = _validate.validate_tenant(tenant_id)
        win = _validate.window(start, end)
        return self._writer.archive(tenant, win, events)

    # -- listing and reading ---------------------------------------------------

    def tenants(self) -> list[str]:
        return self._reader.tenants()

    def objects(
        self, tenant_id: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[ArchivedObject]:
        tenant = _validate.validate_tenant(tenant_id)
        lo, hi = _validate.optional_window(start, end)
        return self._reader.objects(tenant, lo, hi)

    @_observe.operation("read")
    def read(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> pa.Table:
        tenant = _validate.validate_tenant(tenant_id)
        lo, hi = _validate.optional_window(start, end)
        return self._reader.read(tenant, lo, hi, progress)

    @_observe.streamed("read")
    def read_tables(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[pa.Table]:
        tenant = _validate.validate_tenant(tenant_id)
        lo, hi = _validate.optional_window(start, end)
        for _, table in self._reader.runs(tenant, lo, hi, progress):
            yield with_tenant(table, tenant)

    @_observe.streamed("read")
    def events(
        self,
        tenant_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        progress: Progress | None = None,
    ) -> Iterator[Event]:
        tenant = _validate.validate_tenant(tenant_id)
        lo, hi = _validate.optional_window(start, end)
        return self._reader.events(tenant, lo, hi, progress)

    @_observe.operation("read")
    def read_object(
        self, obj: ArchivedObject, start: datetime | None = None, end: datetime | None = None
    ) -> pa.Table:
        lo, hi = _validate.optional_window(start, end)
        table = self._reader.read_object(obj, lo, hi)
        return with_tenant(table.replace_schema_metadata(None), obj.tenant_id)

    # -- checking --------------------------------------------------------------

    @_observe.operation("verify")
    def verify(
        self,
        tenant_id: str | None = None,
        *,
        progress: Progress | None = None,
        shard: tuple[int, int] | str | None = None,
        sample: float | None = None,
        state: str | os.PathLike[str] | None = None,
        recheck_after: timedelta | float | None = None,
        seed: int | None = None,
    ) -> VerifyReport:
        tenant = None if tenant_id is None else _validate.validate_tenant(tenant_id)
        plan = Plan.of(
            self.description(),
            shard=shard,
            sample=sample,
            state=state,
            recheck_after=recheck_after,
            seed=seed,
        )
        # What is not the archive's own (a symlink, a FIFO, a directory where an
        # object should be) is a problem of its key; everything else is checked.
        strays: list[Problem] = []
        tenants = self._reader.tenants(strays) if tenant is None else [tenant]
        found = _verify.by_tenant(self._reader, tenants, strays)
        everything = [o for f in found for o in f]
        todo = plan.select(everything)
        seen = ledger.Seen()
        report = _verify.check(self._reader, todo, progress, plan.record, seen)
        if len(todo) == len(everything):  # the ledger's cross-checks need every object seen
            report = _verify.with_ledger(self._reader, tenants, found, seen, report, strays=strays)
        return plan.finish(_verify.with_strays(report, [p for p in strays if plan.holds(p.key)]))

    @_observe.operation("verify")
    def verify_object(self, obj: ArchivedObject) -> VerifyReport:
        return _verify.verify_object(self._reader, obj)

    # -- lifecycle -------------------------------------------------------------

    @_observe.operation("repack")
    def repack(
        self,
        tenant_id: str,
        month: str | None = None,
        *,
        target_bytes: int = DEFAULT_TARGET_BYTES,
        min_objects: int = 2,
        grace: timedelta = DEFAULT_GRACE,
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> RepackReport:
        tenant = _validate.validate_tenant(tenant_id)
        return self._lifecycle.repack(
            tenant,
            month,
            target_bytes=target_bytes,
            min_objects=min_objects,
            grace=grace,
            dry_run=dry_run,
            step=progress,
        )

    @_observe.operation("expire")
    def expire(
        self,
        tenant_id: str,
        before: datetime,
        *,
        dry_run: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> ExpireReport:
        tenant = _validate.validate_tenant(tenant_id)
        when = aware_utc(before, "before")
        return self._lifecycle.expire(tenant, when, dry_run=dry_run, step=progress)

    @_observe.operation("probe")
    def probe(self) -> None:
        _probe.probe(self._store)

    # -- encryption ------------------------------------------------------------

    def _keys(self) -> KeyProvider:
        if self._settings.encryption is None:
            raise InvalidRequest(f"{self.description()} was opened without encryption=<key provider URL>")
        return self._settings.encryption.provider

    def shred(self, tenant_id: str) -> Shredded:
        return self._keys().shred(_validate.validate_tenant(tenant_id))

    def new_key(self, tenant_id: str) -> str:
        return self._keys().new_key(_validate.validate_tenant(tenant_id))
