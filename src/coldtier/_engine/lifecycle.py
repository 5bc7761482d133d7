"""The archive's own lifecycle (DESIGN.md §10): repack a tenant-month's small objects, expire old ones.

Repack, step by step, each step safe to die after:

1. finish earlier repacks of the month: for each repack receipt whose
   sources are still stored, once the grace period since it has passed,
   re-verify its merged objects and delete the sources the store lets go;
2. plan: the month's small objects (format 2, not protected, not part of an
   unfinished repack), read and checked against their digests;
3. write the merged objects create-only (each event once, sorted, format 2);
4. write the repack receipt create-only, naming merged objects and sources;
5. with no grace period, step 1 at once for that receipt.

Until step 4 the merged objects are extra copies (readers dedupe by id);
a rerun after a crash plans the same objects from the same sources (keys
are content-addressed), finds them there, and goes on.  Deleting only what
a receipt names as a source of merged objects that verify means no event
is ever lost, whatever runs concurrently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc

from .. import _format, _keys
from .._errors import ColdTierError, InvalidRequest
from .._types import ArchivedObject, ExpireReport, Problem, RepackReport, Window
from ..store import Fault, ObjectStore
from . import ledger
from .faults import reason
from .put import Encoded, TooLarge, encode, put
from .read import Reader
from .settings import Settings
from .verify import verify_object

__all__ = ["DEFAULT_GRACE", "DEFAULT_TARGET_BYTES", "Lifecycle", "protected"]

DEFAULT_TARGET_BYTES = 64 * 2**20
DEFAULT_GRACE = timedelta(hours=1)
#: Minimum storage duration, in days, of the classes that bill one (S3, GCS).
MIN_STORAGE_DAYS = {
    "STANDARD_IA": 30,
    "ONEZONE_IA": 30,
    "GLACIER_IR": 90,
    "GLACIER": 90,
    "DEEP_ARCHIVE": 180,
    "NEARLINE": 30,
    "COLDLINE": 90,
    "ARCHIVE": 365,
}
_MONTH_RE = re.compile(r"\d{4}-\d\d")
#: Key times are truncated to the second: an object may end up to 1 s later than named.
_SECOND = timedelta(seconds=1) - timedelta(microseconds=1)
Step = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def protected(store: ObjectStore, reader: Reader, key: str, now: datetime) -> str | None:
    """Why the store will not let ``key`` go now (Object Lock, a minimum duration), or None."""
    if not store.reports_protection:
        return None
    try:
        stat = reader.stat(key)
    except ColdTierError as exc:
        return f"cannot be checked for Object Lock: {reason(exc)}"
    if stat.retain_until is not None and stat.retain_until > now:
        if stat.retain_until.year == datetime.max.year:
            return "under a legal hold"
        return f"under Object Lock (retained until {_format.rfc3339(stat.retain_until)})"
    days = MIN_STORAGE_DAYS.get((stat.storage_class or "").upper())
    if days and stat.modified is not None and now < stat.modified + timedelta(days=days):
        return (
            f"storage class {stat.storage_class} bills a minimum of {days} days "
            f"(deletable from {_format.rfc3339(stat.modified + timedelta(days=days))})"
        )
    return None


def _delete(store: ObjectStore, key: str) -> str | None:
    """Delete ``key``; None when gone (already gone too), else why not."""
    try:
        store.delete(key)
    except Exception as exc:  # noqa: BLE001 - a refusal is reported, not raised
        fault = store.classify(exc)
        if fault is Fault.NOT_FOUND:
            return None
        return f"delete refused: {reason(exc, fault)}"
    return None


def month_objects(reader: Reader, tenant: str, month: str) -> list[ArchivedObject]:
    """The objects stored under ``<tenant>/<month>/``, oldest first."""
    found = []
    for entry in reader.ls(f"{tenant}/{month}"):
        info = _keys.parse_key(entry.name)
        if entry.is_dir or info is None or info.tenant_id != tenant:
            continue
        found.append(ArchivedObject(entry.key, tenant, info.start, info.end, entry.size, info.digest))
    return sorted(found, key=lambda o: (o.start, o.end, o.key))


def months(reader: Reader, tenant: str) -> list[str]:
    return sorted(e.name for e in reader.ls(tenant) if e.is_dir and _MONTH_RE.fullmatch(e.name))


@dataclass
class _Run:
    """What one repack run did, gathered across months."""

    tenant: str
    dry_run: bool
    sources: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    receipts: list[str] = field(default_factory=list)
    skipped: list[Problem] = field(default_factory=list)
    refused: list[Problem] = field(default_factory=list)
    before: list[ArchivedObject] = field(default_factory=list)
    after: list[ArchivedObject] = field(default_factory=list)
    digests: dict[str, str] = field(default_factory=dict)  # of the sources read, from their checked footers

    def report(self) -> RepackReport:
        return RepackReport(
            tenant_id=self.tenant,
            dry_run=self.dry_run,
            sources=tuple(self.sources),
            written=tuple(self.written),
            deleted=tuple(self.deleted),
            pending=tuple(self.pending),
            receipts=tuple(self.receipts),
            skipped=tuple(self.skipped),
            refused=tuple(self.refused),
            objects_before=len(self.before),
            bytes_before=sum(o.size for o in self.before),
            objects_after=len(self.after),
            bytes_after=sum(o.size for o in self.after),
        )


class Lifecycle:
    """Repack and expire over one archive's store."""

    def __init__(self, store: ObjectStore, reader: Reader, settings: Settings) -> None:
        self._store = store
        self._reader = reader
        self._settings = settings

    # -- repack ------------------------------------------------------------------

    def repack(
        self,
        tenant: str,
        month: str | None,
        *,
        target_bytes: int,
        min_objects: int,
        grace: timedelta,
        dry_run: bool,
        step: Step | None = None,
    ) -> RepackReport:
        if target_bytes < 1:
            raise InvalidRequest(f"target_bytes must be at least 1, got {target_bytes}")
        if min_objects < 2:
            raise InvalidRequest(f"min_objects must be at least 2, got {min_objects}")
        if grace < timedelta(0):
            raise InvalidRequest(f"grace must not be negative, got {grace}")
        if month is not None and not _MONTH_RE.fullmatch(month):
            raise InvalidRequest(f"month must be YYYY-MM, got {month!r}")
        target = min(target_bytes, self._settings.max_object_bytes)
        run = _Run(tenant, dry_run)
        entries, _ = ledger.load(self._reader, tenant, kind="repack", month=month)
        for m in [month] if month is not None else months(self._reader, tenant):
            ours = [e for e in entries if e.kind == "repack" and e.key.split("/")[2] == m]
            listed = month_objects(self._reader, tenant, m)
            run.before.extend(listed)
            self._repack_month(
                run, m, listed, ours, target=target, min_objects=min_objects, grace=grace, step=step or _quiet
            )
            run.after.extend(listed if dry_run else month_objects(self._reader, tenant, m))
        return run.report()

    def _repack_month(
        self,
        run: _Run,
        month: str,
        listed: list[ArchivedObject],
        entries: list[ledger.Entry],
        *,
        target: int,
        min_objects: int,
        grace: timedelta,
        step: Step,
    ) -> None:
        tenant, now = run.tenant, datetime.now(UTC)
        present = {o.key for o in listed}
        taken: set[str] = set()
        for entry in entries:  # 1. earlier repacks of this month
            outputs = {r.key for r in entry.objects}
            left = [r.key for r in entry.replaces if r.key in present and r.key not in outputs]
            if left:
                taken.update(left)
                taken.update(outputs)
                self._finish(run, entry, left, grace=grace, now=now, step=step)
        # 2. plan
        candidates: list[ArchivedObject] = []
        for obj in listed:
            if obj.key in taken or obj.size >= target // 2:
                continue
            if obj.digest is None:
                run.skipped.append(Problem(obj.key, "allsource-core file: coldtier does not rewrite it"))
                continue
            why = protected(self._store, self._reader, obj.key, now)
            if why is not None:
                run.skipped.append(Problem(obj.key, f"not merged: {why}"))
                continue
            candidates.append(obj)
        if len(candidates) < min_objects:
            return
        tables = self._reader.map(lambda o: self._load(run, o, step), candidates)
        loaded = [(o, t) for o, t in zip(candidates, tables, strict=True) if t is not None]
        loaded = _without_conflicts(run, loaded)
        if len(loaded) < min_objects:
            return
        sources = [o for o, _ in loaded]
        merged = _format.unique_sorted(pa.concat_tables([t for _, t in loaded]))
        parts = self._plan(tenant, merged, target)
        out_keys = {e.key for e in parts}
        replaced = [o for o in sources if o.key not in out_keys]
        run.sources.extend(o.key for o in replaced)
        run.written.extend(e.key for e in parts)
        if run.dry_run or not replaced:
            return
        stored = []
        for encoded in parts:  # 3. merged objects, create-only
            stored.append(put(self._store, encoded))
            step(f"wrote {encoded.key}")
        win = Window(min(o.start for o in sources), max(o.end for o in sources))
        digests = run.digests
        key = ledger.record(  # 4. the receipt
            self._store,
            "repack",
            tenant,
            win,
            [ledger.Recorded(s.key, s.digest, s.events) for s in stored],
            replaces=[
                ledger.Recorded(o.key, digests[o.key], n) for o, n in _counts(loaded) if o.key not in out_keys
            ],
            written=now,
            extra={"events": merged.num_rows},
        )
        run.receipts.append(key)
        step(f"recorded {key}")
        if grace <= timedelta(0):  # 5. no grace: finish now
            entry = ledger.Entry(
                key,
                "repack",
                tuple(ledger.Recorded(s.key, s.digest, s.events) for s in stored),
                tuple(ledger.Recorded(o.key, "", 0) for o in replaced),
                now,
                merged.num_rows,
            )
            self._finish(run, entry, [o.key for o in replaced], grace=grace, now=now, step=step)
        else:
            run.pending.extend(o.key for o in replaced)

    def _load(self, run: _Run, obj: ArchivedObject, step: Step) -> pa.Table | None:
        """A candidate's events, checked against its digest; None (and why) when it is not merged."""
        try:
            data = self._reader.get(obj.key)
            meta = _format.read_footer(_format.open_parquet(data))
            if meta.get("coldtier.format") != _format.FORMAT_VERSION:
                run.skipped.append(Problem(obj.key, "format 1: coldtier never rewrites it"))
                return None
            table = _format.decode(data, digest=obj.digest)
            run.digests[obj.key] = meta["coldtier.digest"]
        except (ColdTierError, _format.Damaged, pa.ArrowException, OSError, ValueError) as exc:
            run.skipped.append(Problem(obj.key, f"not merged: it does not verify ({reason(exc)})"))
            return None
        step(f"read {obj.key}")
        return table

    def _plan(self, tenant: str, merged: pa.Table, target: int) -> list[Encoded]:
        """Encoded merged objects of about ``target`` bytes each, evenly split; deterministic."""
        limit = min(self._settings.object_events, merged.num_rows)
        probe = merged.slice(0, limit)
        size = len(_format.encode(probe, {}, **self._settings.encoding()))
        per_row = max(1.0, size / max(1, probe.num_rows))
        count = max(1, round(merged.num_rows * per_row / target))
        rows = max(1, min(self._settings.object_events, math.ceil(merged.num_rows / count)))
        while True:
            try:
                return [self._encode(tenant, merged.slice(i, rows)) for i in range(0, merged.num_rows, rows)]
            except TooLarge:
                if rows == 1:
                    raise
                rows = max(1, rows // 2)

    def _encode(self, tenant: str, table: pa.Table) -> Encoded:
        own = _format.part_window(table)
        return encode(tenant, own, table, None, None, settings=self._settings)

    def _finish(
        self, run: _Run, entry: ledger.Entry, left: list[str], *, grace: timedelta, now: datetime, step: Step
    ) -> None:
        """Delete the sources ``left`` of a repack receipt, once its grace has passed and its objects verify."""
        written = entry.written or now
        if now < written + grace:
            run.pending.extend(left)
            return
        if run.dry_run:
            run.deleted.extend(left)
            return
        events = 0
        for rec in entry.objects:
            info = _keys.parse_key(rec.key.rsplit("/", 1)[-1])
            if info is None:
                run.skipped.append(
                    Problem(rec.key, f"receipt {entry.key} names it, but it is no object name")
                )
                return
            obj = ArchivedObject(rec.key, run.tenant, info.start, info.end, 0, info.digest)
            report = verify_object(self._reader, obj)
            if not report.ok or info.digest != rec.digest[:16]:
                why = "; ".join(p.message for p in report.problems) or "digest differs from the receipt"
                for key in left:
                    run.skipped.append(Problem(key, f"kept: merged object {rec.key} does not verify ({why})"))
                return
            events += report.events
        if entry.events is not None and events != entry.events:
            for key in left:
                run.skipped.append(
                    Problem(
                        key,
                        f"kept: merged objects hold {events} events, receipt {entry.key} says {entry.events}",
                    )
                )
            return
        for key in left:
            refusal = protected(self._store, self._reader, key, now)
            if refusal is None:
                refusal = _delete(self._store, key)
            if refusal is not None:
                run.refused.append(Problem(key, refusal))
                continue
            run.deleted.append(key)
            step(f"deleted {key}")

    # -- expire ------------------------------------------------------------------

    def expire(
        self, tenant: str, before: datetime, *, dry_run: bool, step: Step | None = None
    ) -> ExpireReport:
        now = datetime.now(UTC)
        objs = self._reader.objects(tenant, None, None)
        due = [o for o in objs if o.end + _SECOND < before]
        refused: list[Problem] = []
        allowed: list[ArchivedObject] = []
        for obj in due:
            why = protected(self._store, self._reader, obj.key, now)
            if why is None:
                allowed.append(obj)
            else:
                refused.append(Problem(obj.key, f"not expired: {why}"))
        receipt = None
        if allowed and not dry_run:
            win = Window(min(o.start for o in allowed), before)
            receipt = ledger.record(  # before the deletes: a crash leaves no "missing" object
                self._store,
                "expire",
                tenant,
                win,
                [],
                replaces=[ledger.Recorded(o.key, o.digest or "", 0) for o in allowed],
                written=now,
                extra={"before": _format.rfc3339(before)},
            )
            for obj in allowed:
                why = _delete(self._store, obj.key)
                if why is not None:
                    refused.append(Problem(obj.key, f"not expired: {why}"))
                elif step is not None:
                    step(f"deleted {obj.key}")
        gone = {o.key for o in allowed} - {p.key for p in refused}
        return ExpireReport(
            tenant_id=tenant,
            before=before,
            dry_run=dry_run,
            expired=tuple(o.key for o in allowed if o.key in gone),
            refused=tuple(refused),
            kept=len(objs) - len(gone),
            bytes=sum(o.size for o in allowed if o.key in gone),
            receipt=receipt,
        )


def _without_conflicts(
    run: _Run, loaded: list[tuple[ArchivedObject, pa.Table]]
) -> list[tuple[ArchivedObject, pa.Table]]:
    """Drop objects sharing an event id with another candidate under different contents.

    Merging them would keep one version and the deletes would lose the other;
    verify reports them, and they stay as they are.
    """
    if len(loaded) < 2:
        return loaded
    table = pa.concat_tables([t for _, t in loaded])
    distinct = table.group_by(_format.SCHEMA.names, use_threads=False).aggregate([])
    if distinct.num_rows == pc.count_distinct(table.column("event_id")).as_py():
        return loaded
    counts = distinct.group_by("event_id", use_threads=False).aggregate([("event_id", "count")])
    clashing = counts.filter(pc.greater(counts.column("event_id_count"), 1)).column("event_id")
    kept = []
    for obj, t in loaded:
        hit = pc.any(pc.is_in(t.column("event_id"), value_set=clashing)).as_py()
        if hit:
            run.skipped.append(
                Problem(obj.key, "not merged: holds an event id stored elsewhere with different contents")
            )
        else:
            kept.append((obj, t))
    return kept


def _counts(loaded: Sequence[tuple[ArchivedObject, pa.Table]]) -> list[tuple[ArchivedObject, int]]:
    return [(o, t.num_rows) for o, t in loaded]
