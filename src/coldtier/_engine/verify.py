"""Verifying: re-read every object, recompute its digest, check footer, schema and window."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from .. import _format, _keys
from .._crypto import PLAIN_COLUMNS, sealed_by
from .._errors import ArchiveReadError, ColdTierError
from .._format import SCHEMA, UTC
from .._types import ArchivedObject, Problem, VerifyReport
from ..keys import key_tenant
from . import ledger
from .faults import reason
from .read import Progress, Reader, Tally, refusals

__all__ = ["by_tenant", "check", "listed", "verify", "verify_object", "with_ledger", "with_strays"]


def verify(reader: Reader, tenants: list[str], progress: Progress | None) -> VerifyReport:
    """Check every object of ``tenants`` (``workers`` at a time), then the ledger; listing failures raise.

    What is not the archive's own (a symlink, a FIFO, a directory where an
    object should be: see :meth:`Reader.scan`) is reported, never followed.
    """
    strays: list[Problem] = []
    found = by_tenant(reader, tenants, strays)
    seen = ledger.Seen()
    report = check(reader, [o for f in found for o in f], progress, seen=seen)
    return with_strays(with_ledger(reader, tenants, found, seen, report, strays=strays), strays)


def by_tenant(
    reader: Reader, tenants: list[str], strays: list[Problem] | None = None
) -> list[list[ArchivedObject]]:
    """The objects of each of ``tenants``, the tenants listed ``workers`` at a time.

    With ``strays``, what is not the archive's own is added to it (else it raises).
    """
    if strays is None:
        return reader.map(lambda t: reader.objects(t, None, None), tenants)
    return reader.map(lambda t: reader.scan(t, None, None, strays), tenants)


def listed(reader: Reader, tenants: list[str]) -> list[ArchivedObject]:
    """Every object of ``tenants``, the tenants listed ``workers`` at a time."""
    return [o for found in by_tenant(reader, tenants) for o in found]


def with_strays(report: VerifyReport, strays: list[Problem]) -> VerifyReport:
    """``report`` with the entries its listing refused first, by key."""
    if not strays:
        return report
    ordered = tuple(sorted(strays, key=lambda p: (p.key, p.message)))
    return dataclasses.replace(report, problems=ordered + report.problems)


def check(
    reader: Reader,
    objs: list[ArchivedObject],
    progress: Progress | None,
    done: Callable[[ArchivedObject, VerifyReport], VerifyReport] | None = None,
    seen: ledger.Seen | None = None,
) -> VerifyReport:
    """Check ``objs`` (``workers`` at a time); ``done(obj, report)`` is called as each one finishes."""
    tally = Tally(progress, objs)

    def one(obj: ArchivedObject) -> VerifyReport:
        report = verify_object(reader, obj, seen)
        return tally.done(obj, report if done is None else done(obj, report))

    return VerifyReport.combine(reader.map(one, objs))


def with_ledger(
    reader: Reader,
    tenants: list[str],
    found: list[list[ArchivedObject]],
    seen: ledger.Seen,
    report: VerifyReport,
    *,
    strays: list[Problem] | None = None,
) -> VerifyReport:
    """``report`` and the ledger's findings over every object of ``tenants`` (all of them checked into ``seen``).

    With ``strays`` (what the listing refused), a refused entry met in the
    ledger's own listing is added to it, and the ledger's findings of a key
    already there are left out (a receipt's object behind a symlink is that
    symlink's problem).
    """
    problems = list(report.problems)
    unrecorded = list(report.unrecorded)
    for tenant, objs in zip(tenants, found, strict=True):
        try:
            more, loose = ledger.check(reader, tenant, objs, seen)
        except ArchiveReadError as exc:
            refused = refusals(exc)
            if strays is None or not refused:
                raise
            strays.extend(refused)
            continue
        stray_keys = {p.key for p in strays or ()}
        problems.extend(p for p in more if p.key not in stray_keys)
        unrecorded.extend(loose)
    return dataclasses.replace(report, problems=tuple(problems), unrecorded=tuple(unrecorded))


def verify_object(reader: Reader, obj: ArchivedObject, seen: ledger.Seen | None = None) -> VerifyReport:
    """One object's check; a failure to read it is a finding, not an exception."""
    problems: list[Problem] = []

    def problem(message: str, events: int = 0) -> VerifyReport:
        problems.append(Problem(obj.key, message))
        return VerifyReport(objects=1, events=events, problems=tuple(problems))

    try:
        data = reader.get(obj.key)
    except Exception as exc:  # noqa: BLE001 - any failure to read is a finding
        return problem(f"cannot be read: {reason(exc)}")
    try:
        pf = _format.open_parquet(data)
        meta = _format.read_footer(pf)
    except Exception as exc:  # noqa: BLE001
        return problem(f"content digest cannot be checked: it is not readable Parquet ({exc})")
    logical = meta.get("coldtier.format") == _format.FORMAT_VERSION and obj.digest is not None
    if obj.digest is not None and not logical and (actual := _format.digest_of(data)) != obj.digest:
        problem(f"content digest {actual} does not match the digest {obj.digest} in its name")
    if logical:
        _check_bytes(reader, obj, data, problem)
    key_id = sealed_by(meta)
    sealed = shredded = False  # an encrypted object whose encrypted columns are not checked here
    try:
        if key_id is None:
            table = pf.read(use_threads=False)
        else:
            table, sealed, shredded = _read_sealed(reader, obj, data, key_id, problem)
    except Exception as exc:  # noqa: BLE001
        return problem(f"content digest cannot be checked: its events do not decode ({exc})")
    got = [(f.name, f.type) for f in (pf.schema_arrow if sealed else table.schema)]
    want = [(f.name, f.type) for f in SCHEMA]
    if got != want:
        return problem(f"has schema {got}, expected {want}")
    if seen is not None:
        seen.add(obj, table, meta)
    if obj.digest is None:  # foreign (allsource-core) file: readability and schema only
        return VerifyReport(objects=1, events=table.num_rows, problems=tuple(problems))
    if logical:
        full = meta.get("coldtier.digest", "")
        actual = "" if sealed else _format.logical_digest(_format.conform(table))
        if full[:16] != obj.digest:
            problem(
                f"footer digest {full[:16] or '(none)'} does not match the digest {obj.digest} in its name"
            )
        elif not sealed and actual != full:
            problem(
                f"content digest {actual[:16]} (of its events) does not match the digest {obj.digest} in its name"
            )
    if (fmt := meta.get("coldtier.format")) not in (
        "1",
        _format.FORMAT_VERSION,
    ):  # format 1: by its bytes, above
        problem(f"footer coldtier.format is {fmt!r}, expected {_format.FORMAT_VERSION!r}")
    expect = {
        "coldtier.tenant_id": obj.tenant_id,
        "coldtier.events": str(table.num_rows),
    }
    for name, value in expect.items():
        if meta.get(name) != value:
            problem(f"footer {name} is {meta.get(name)!r}, expected {value!r}")
    try:
        start = datetime.fromisoformat(meta["coldtier.start"])
        end = datetime.fromisoformat(meta["coldtier.end"])
    except (KeyError, ValueError):
        return problem("footer has no valid coldtier.start / coldtier.end", table.num_rows)
    named = (_keys.key_time(obj.start), _keys.key_time(obj.end))
    if (_keys.key_time(start), _keys.key_time(end)) != named:
        problem("footer window does not match the window in its name")
    if table.num_rows:
        lo, hi = pc.min_max(table.column("timestamp")).values()
        if lo.as_py().replace(tzinfo=UTC) < start or hi.as_py().replace(tzinfo=UTC) > end:
            problem("holds events outside its window")
    return VerifyReport(
        objects=1,
        events=table.num_rows,
        problems=tuple(problems),
        shredded=(obj.key,) if key_id is not None and shredded else (),
    )


def _read_sealed(
    reader: Reader, obj: ArchivedObject, data: bytes, key_id: str, problem: Callable[[str], object]
) -> tuple[pa.Table, bool, bool]:
    """An encrypted object's events, decrypted when its key can be used; else its plaintext columns.

    Returns ``(table, sealed, shredded)``.  Without keys (no ``encryption``)
    the bytes, footer, schema and plaintext columns are checked and the
    recorded logical digest is taken as written; a shredded key is reported
    as such, an unusable one as a problem.
    """
    shredded = False
    if key_tenant(key_id) != obj.tenant_id:
        problem(f"is encrypted under tenant {key_tenant(key_id)!r}'s key, not {obj.tenant_id!r}'s")
    elif reader.cipher is not None:
        if reader.cipher.provider.state(key_id) == "shredded":
            shredded = True
        else:
            try:
                props = reader.cipher.decryption(obj.tenant_id, key_id)
                return _format.open_parquet(data, props).read(use_threads=False), False, False
            except ColdTierError as exc:  # KeyUnavailable, or another tenant's key
                problem(f"its encrypted columns cannot be checked: {exc}")
    plain = _format.open_parquet(data).read(columns=list(PLAIN_COLUMNS), use_threads=False)
    return plain, True, shredded


def _check_bytes(reader: Reader, obj: ArchivedObject, data: bytes, problem: Callable[[str], object]) -> None:
    """The SHA-256 of the bytes, where the store kept the one it was given at write."""
    if not reader.keeps_metadata:
        return
    try:
        kept = reader.stat(obj.key).sha256
    except Exception as exc:  # noqa: BLE001 - a failure to stat is a finding
        problem(f"cannot be checked: {reason(exc)}")
        return
    if kept is not None and (actual := hashlib.sha256(data).hexdigest()) != kept:
        problem(f"byte digest (sha256) {actual[:16]} does not match the {kept[:16]} stored with it")
