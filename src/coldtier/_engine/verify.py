"""Verifying: re-read every object, recompute its digest, check footer, schema and window."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime

import pyarrow.compute as pc

from .. import _format, _keys
from .._format import SCHEMA, UTC
from .._types import ArchivedObject, Problem, VerifyReport
from . import ledger
from .faults import reason
from .read import Progress, Reader, Tally

__all__ = ["verify", "verify_object"]


def verify(reader: Reader, tenants: list[str], progress: Progress | None) -> VerifyReport:
    """Check every object of ``tenants`` (``workers`` at a time), then the ledger; listing failures raise."""
    listed = reader.map(lambda t: reader.objects(t, None, None), tenants)
    objs = [o for found in listed for o in found]
    tally = Tally(progress, objs)
    seen = ledger.Seen()
    checked = reader.map(lambda o: tally.done(o, verify_object(reader, o, seen)), objs)
    problems = [p for r in checked for p in r.problems]
    unrecorded: list[str] = []
    for tenant, found in zip(tenants, listed, strict=True):
        more, loose = ledger.check(reader, tenant, found, seen)
        problems.extend(more)
        unrecorded.extend(loose)
    return VerifyReport(
        objects=len(objs),
        events=sum(r.events for r in checked),
        problems=tuple(problems),
        unrecorded=tuple(unrecorded),
    )


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
    try:
        table = pf.read(use_threads=False)
    except Exception as exc:  # noqa: BLE001
        return problem(f"content digest cannot be checked: its events do not decode ({exc})")
    got = [(f.name, f.type) for f in table.schema]
    want = [(f.name, f.type) for f in SCHEMA]
    if got != want:
        return problem(f"has schema {got}, expected {want}")
    if seen is not None:
        seen.add(obj, table, meta)
    if obj.digest is None:  # foreign (allsource-core) file: readability and schema only
        return VerifyReport(objects=1, events=table.num_rows, problems=tuple(problems))
    if logical:
        full = meta.get("coldtier.digest", "")
        actual = _format.logical_digest(_format.conform(table))
        if full[:16] != obj.digest:
            problem(f"footer digest {full[:16] or '(none)'} does not match the digest {obj.digest} in its name")
        elif actual != full:
            problem(f"content digest {actual[:16]} (of its events) does not match the digest {obj.digest} in its name")
    if (fmt := meta.get("coldtier.format")) not in ("1", _format.FORMAT_VERSION):  # format 1: by its bytes, above
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
    return VerifyReport(objects=1, events=table.num_rows, problems=tuple(problems))


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
