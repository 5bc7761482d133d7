"""Verify and read an archive on a Dask cluster, one object (or a small group) per task (DESIGN.md §11).

::

    from distributed import Client
    import coldtier.dask

    client = Client("tcp://scheduler:8786")
    report = coldtier.dask.verify("s3://bucket/cold", client)          # a VerifyReport
    frame = coldtier.dask.read("s3://bucket/cold", "acme", start, end)  # a dask DataFrame

Nothing here needs a coordinator: writers never overwrite and readers
dedupe, so tasks are independent.  The archive travels in the task graph as
its URL and non-secret options (see :meth:`coldtier.Archive.read_object`):
**each worker takes credentials from its own environment** (``AWS_*``, an
instance role, ``GOOGLE_APPLICATION_CREDENTIALS``); credentials given here as
options are used for the listing in this process only.

Listing runs on the cluster, one task per tenant; ``verify`` then checks
groups of objects (``group_objects`` objects, at most ``group_bytes``) and
``read`` makes one partition per run of objects whose windows overlap (so
each event is once in the whole frame, as :meth:`~coldtier.Archive.read`
gives it), runs packed up to ``partition_bytes``.  Tasks are named
``coldtier-list``, ``coldtier-verify`` and ``coldtier-read`` on the dashboard;
``verify(..., progress=True)`` shows Dask's progress bar.

Needs the ``dask`` extra: ``pip install 'coldtier[dask]'``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from . import _format, _registry
from ._archive import Archive
from ._engine import ledger
from ._engine import verify as _verify
from ._engine.shard import Plan
from ._errors import InvalidRequest, MissingDependency
from ._types import ArchivedObject, Problem, VerifyReport

try:
    import dask
    import dask.dataframe as dd
    import distributed
except ImportError as exc:  # pragma: no cover - the extra is installed in every test run
    raise MissingDependency("coldtier.dask needs Dask: pip install 'coldtier[dask]'") from exc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["objects", "read", "tenants", "verify"]

#: Key times are whole seconds: an object's events end before its named end plus one second.
_SECOND = timedelta(seconds=1)


def tenants(url: str, **options: Any) -> list[str]:
    """Sorted ids of the tenants present (one listing, made in this process)."""
    return _open(url, options).tenants()


def objects(
    url: str,
    tenant: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    client: distributed.Client | None = None,
    shard: tuple[int, int] | str | None = None,
    **options: Any,
) -> list[ArchivedObject]:
    """Objects overlapping ``[start, end]`` of ``tenant`` (or every tenant), listed on the cluster, one task per tenant.

    ``shard=(i, n)`` keeps those of shard ``i`` of ``n``, as ``verify --shard`` splits them.
    """
    archive = _open(url, options)
    names = archive.tenants() if tenant is None else [tenant]
    return [o for found in _listings(archive, _client(client), names, start, end, shard) for o in found]


def verify(
    url: str,
    client: distributed.Client | None = None,
    tenant: str | None = None,
    *,
    shard: tuple[int, int] | str | None = None,
    state: str | os.PathLike[str] | None = None,
    recheck_after: timedelta | float | None = None,
    sample: float | None = None,
    seed: int | None = None,
    group_objects: int = 32,
    group_bytes: int = 256 * 2**20,
    progress: bool = False,
    cross_check: bool = True,
    **options: Any,
) -> VerifyReport:
    """:meth:`~coldtier.Archive.verify` on the cluster: the same report, every object checked once.

    ``shard``, ``state``, ``recheck_after``, ``sample`` and ``seed`` mean
    what they mean to ``Archive.verify`` (and ``coldtier verify --shard
    --state --recheck-after --sample --seed``): the state file is on this
    machine, read before any task is submitted and written here as each
    task's results return, so the CLI and this function can take turns with
    one file.  A task that fails as a whole (a worker lost for good, a task
    that cannot run) becomes one problem per object of its group, naming the
    object; the other groups are still checked.  A store that cannot be
    listed raises, as ``Archive.verify`` does.

    When every object is checked (no shard, sample or fresh state entry), the
    checks across objects that ``Archive.verify`` makes follow here, in this
    process: an event id stored twice with different contents, and the
    ledger's receipts.  They need every object's event ids here, as
    ``Archive.verify`` holds them (about 40 bytes per event, sent back by the
    tasks); ``cross_check=False`` leaves them out for archives too large for
    that (verify per tenant with ``tenant=`` keeps them affordable).
    """
    if group_objects < 1 or group_bytes < 1:
        raise InvalidRequest("group_objects and group_bytes must be positive")
    archive = _open(url, options)
    plan = Plan.of(archive.description(), sample=sample, state=state, recheck_after=recheck_after, seed=seed)
    dask_client = _client(client)
    names = archive.tenants() if tenant is None else [tenant]
    found = _listings(archive, dask_client, names, None, None, shard)
    listed = [o for objs in found for o in objs]
    todo = plan.select(listed)
    seen = ledger.Seen() if cross_check and shard is None and len(todo) == len(listed) else None
    groups = list(_groups(todo, group_objects, group_bytes))
    if not groups:
        return plan.finish(_cross_checked(archive, names, found, seen, VerifyReport(objects=0, events=0)))
    run = uuid.uuid4().hex[:12]
    keys = [f"coldtier-verify-{run}-{i}" for i in range(len(groups))]
    futures = dask_client.map(_verify_group, groups, archive=archive, seen=seen is not None, key=keys)
    if progress:
        distributed.progress(futures)
    of_key = dict(zip(keys, groups, strict=True))
    reports: dict[str, list[VerifyReport]] = {}
    for future in distributed.as_completed(futures):  # the state records each group as it returns
        group = of_key[future.key]
        outcome, parts = _outcome(future, group)
        reports[future.key] = [plan.record(o, r) for o, r in zip(group, outcome, strict=True)]
        if seen is not None:
            for obj, (ids, digest, fmt) in zip(group, parts, strict=False):
                if ids is not None:
                    seen.ids[obj.key], seen.digests[obj.key], seen.formats[obj.key] = ids, digest, fmt
    report = VerifyReport.combine([r for key in keys for r in reports[key]])
    return plan.finish(_cross_checked(archive, names, found, seen, report))


def read(
    url: str,
    tenant: str,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    partition_bytes: int = 128 * 2**20,
    **options: Any,
) -> dd.DataFrame:
    """:meth:`~coldtier.Archive.read` as a lazy Dask DataFrame: the same events, each id once, in its order.

    Partitions are in time order, each sorted by ``(timestamp, event_id)``;
    objects whose windows overlap are in one partition, so copies of an
    event (which share its timestamp) meet and are dropped there.  Distinct
    events that reuse one id in objects that do not overlap are settled as
    ``Archive.read`` settles them: the earliest ``(timestamp, event_id)``
    wins, ties to the older object.  With more than one partition that takes
    one pass over the ids (a 64-bit hash per event, gathered in one task, and
    the real ids only of hashes seen in more than one partition), so no
    partition is final before every partition has been read.  Listing happens
    now, in this process; reading when the frame is computed.
    """
    if partition_bytes < 1:
        raise InvalidRequest("partition_bytes must be positive")
    archive = _open(url, options)
    objs = archive.objects(tenant, start, end)
    parts = list(_partitions(objs, partition_bytes)) or [()]
    reader = _ReadPartition(archive, tenant, start, end)
    if len(parts) == 1:
        return dd.from_map(reader, parts, meta=reader.meta(), label="coldtier-read", enforce_metadata=False)
    token = dask.base.tokenize(reader, [[o.key for o in part] for part in parts])
    loaded = [
        dask.delayed(reader, pure=True)(part, dask_key_name=f"coldtier-read-{token}-{i}")
        for i, part in enumerate(parts)
    ]
    hashes = [
        dask.delayed(_id_hashes, pure=True)(frame, dask_key_name=f"coldtier-read-ids-{token}-{i}")
        for i, frame in enumerate(loaded)
    ]
    shared = dask.delayed(_shared_hashes, pure=True)(hashes, dask_key_name=f"coldtier-read-shared-{token}")
    claims = [
        dask.delayed(_claims, pure=True)(frame, shared, i, dask_key_name=f"coldtier-read-claims-{token}-{i}")
        for i, frame in enumerate(loaded)
    ]
    owners = dask.delayed(_owners, pure=True)(claims, dask_key_name=f"coldtier-read-owners-{token}")
    final = [
        dask.delayed(_owned, pure=True)(frame, owners, i, dask_key_name=f"coldtier-read-final-{token}-{i}")
        for i, frame in enumerate(loaded)
    ]
    return dd.from_delayed(final, meta=reader.meta(), verify_meta=False)


# ---------------------------------------------------------------------------
# Planning (in this process)


def _open(url: str, options: dict[str, Any]) -> Archive:
    return _registry.open_archive(url, **options)


def _client(client: distributed.Client | None) -> distributed.Client:
    if client is not None:
        return client
    try:
        return distributed.get_client()
    except ValueError:
        raise InvalidRequest(
            "coldtier.dask needs a Dask cluster: pass client=, or create a distributed.Client first"
        ) from None


def _listings(  # noqa: PLR0917 - private; every caller passes them all
    archive: Archive,
    client: distributed.Client,
    names: list[str],
    start: datetime | None,
    end: datetime | None,
    shard: tuple[int, int] | str | None,
) -> list[list[ArchivedObject]]:
    from ._engine.shard import parse_shard  # noqa: PLC0415 - checked here, before any task runs

    checked = parse_shard(shard)
    run = uuid.uuid4().hex[:12]
    futures = client.map(
        _list_tenant,
        names,
        archive=archive,
        start=start,
        end=end,
        shard=checked,
        key=[f"coldtier-list-{run}-{i}" for i in range(len(names))],
    )
    listed: list[list[ArchivedObject]] = client.gather(futures)
    return listed


def _groups(objs: Sequence[ArchivedObject], most: int, most_bytes: int) -> Iterator[list[ArchivedObject]]:
    group: list[ArchivedObject] = []
    size = 0
    for obj in objs:
        if group and (len(group) >= most or size + obj.size > most_bytes):
            yield group
            group, size = [], 0
        group.append(obj)
        size += obj.size
    if group:
        yield group


def _runs(objs: Sequence[ArchivedObject]) -> Iterator[list[ArchivedObject]]:
    """Runs of objects (oldest first) whose windows overlap: every event of a run precedes the next run's."""
    run: list[ArchivedObject] = []
    reach = datetime.min.replace(tzinfo=UTC)
    for obj in sorted(objs, key=lambda o: (o.start, o.end, o.key)):
        if run and obj.start >= reach:
            yield run
            run = []
        reach = max(reach, obj.end + _SECOND) if run else obj.end + _SECOND
        run.append(obj)
    if run:
        yield run


def _partitions(objs: Sequence[ArchivedObject], most_bytes: int) -> Iterator[tuple[ArchivedObject, ...]]:
    """Whole runs packed in time order up to ``most_bytes`` (a run larger than that is one partition)."""
    part: list[ArchivedObject] = []
    size = 0
    for run in _runs(objs):
        run_size = sum(o.size for o in run)
        if part and size + run_size > most_bytes:
            yield tuple(part)
            part, size = [], 0
        part.extend(run)
        size += run_size
    if part:
        yield tuple(part)


#: What a verify task saw of one object for the checks across objects: event ids, footer digest, format.
_Seen = tuple[pa.Array | None, str | None, str | None]


def _outcome(future: Any, group: list[ArchivedObject]) -> tuple[list[VerifyReport], list[_Seen]]:
    """Each object's report (and what was seen of it), or a problem for each object when the task failed."""
    try:
        reports, seen = future.result()
    except Exception as exc:  # noqa: BLE001 - whatever the task met is a finding about its objects
        message = f"cannot be checked: its Dask task failed ({type(exc).__name__}: {exc})"
        return [VerifyReport(objects=1, events=0, problems=(Problem(o.key, message),)) for o in group], []
    return reports, seen


def _cross_checked(
    archive: Archive,
    names: list[str],
    found: list[list[ArchivedObject]],
    seen: ledger.Seen | None,
    report: VerifyReport,
) -> VerifyReport:
    """``report`` with ``Archive.verify``'s checks across objects, when every object was seen."""
    reader = getattr(archive, "_reader", None)
    if seen is None or reader is None:
        return report
    return _verify.with_ledger(reader, names, found, seen, report)


# ---------------------------------------------------------------------------
# Tasks (on the workers)


def _list_tenant(
    tenant: str,
    *,
    archive: Archive,
    start: datetime | None,
    end: datetime | None,
    shard: tuple[int, int] | None,
) -> list[ArchivedObject]:
    from ._engine.shard import shard_of  # noqa: PLC0415

    found = archive.objects(tenant, start, end)
    return found if shard is None else [o for o in found if shard_of(o.key, shard[1]) == shard[0]]


def _verify_group(
    group: list[ArchivedObject], *, archive: Archive, seen: bool = False
) -> tuple[list[VerifyReport], list[_Seen]]:
    """Each object's report; with ``seen``, also its event ids, footer digest and format (engine archives)."""
    reader = getattr(archive, "_reader", None) if seen else None
    saw = ledger.Seen()
    reports = []
    for obj in group:
        try:
            if reader is None:
                reports.append(archive.verify_object(obj))
            else:
                reports.append(_verify.verify_object(reader, obj, saw))
        except Exception as exc:  # noqa: BLE001 - one object's failure is its finding, not the group's
            message = f"cannot be checked: {type(exc).__name__}: {exc}"
            reports.append(VerifyReport(objects=1, events=0, problems=(Problem(obj.key, message),)))
    parts = [(saw.ids.get(o.key), saw.digests.get(o.key), saw.formats.get(o.key)) for o in group]
    return reports, parts if reader is not None else []


def _id_hashes(frame: pd.DataFrame) -> np.ndarray[Any, Any]:
    """The 64-bit hash of each event id of one partition (each id is there once)."""
    return np.unique(_hash_ids(frame["event_id"]))


def _shared_hashes(hashes: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    """Hashes in more than one partition: the only ids that can be in two (a few, or none)."""
    values, counts = np.unique(np.concatenate(hashes), return_counts=True)
    shared: np.ndarray[Any, Any] = values[counts > 1]
    return shared


def _claims(frame: pd.DataFrame, shared: np.ndarray[Any, Any], index: int) -> pd.DataFrame:
    """This partition's rows whose id hash is shared: id, timestamp and the partition's index."""
    rows = frame.loc[np.isin(_hash_ids(frame["event_id"]), shared), ["event_id", "timestamp"]]
    return rows.assign(part=index)


def _owners(claims: list[pd.DataFrame]) -> dict[str, int]:
    """For each shared id, the partition holding its first ``(timestamp, event_id)`` (ties: the older objects)."""
    import pandas as pd  # noqa: PLC0415 - a worker-side task

    every = pd.concat(claims, ignore_index=True).sort_values(["timestamp", "part"], kind="stable")
    first = every.drop_duplicates("event_id", keep="first")
    return dict(zip(first["event_id"], first["part"], strict=True))


def _owned(frame: pd.DataFrame, owners: dict[str, int], index: int) -> pd.DataFrame:
    """``frame`` without the ids another partition holds first."""
    lost = [eid for eid, part in owners.items() if part != index]
    if not lost:
        return frame
    return frame.loc[~frame["event_id"].isin(lost)].reset_index(drop=True)


def _hash_ids(ids: Any) -> np.ndarray[Any, Any]:
    """A 64-bit hash of each id (pandas' own, as its joins use)."""
    import pandas as pd  # noqa: PLC0415 - a worker-side task

    hashed: np.ndarray[Any, Any] = pd.util.hash_array(np.asarray(ids, dtype=object))
    return hashed


class _ReadPartition:
    """Reads one partition: its objects' events in the window, each id once, sorted, as pandas."""

    def __init__(self, archive: Archive, tenant: str, start: datetime | None, end: datetime | None) -> None:
        self.archive, self.tenant, self.start, self.end = archive, tenant, start, end

    def __call__(self, part: tuple[ArchivedObject, ...]) -> pd.DataFrame:
        tables = [self.archive.read_object(o, self.start, self.end) for o in part]
        table = pa.concat_tables(tables) if tables else self._empty()
        return _format.unique_sorted(table).to_pandas()

    def meta(self) -> pd.DataFrame:
        return self._empty().to_pandas()

    def _empty(self) -> pa.Table:
        schema = _format.SCHEMA.append(pa.field("tenant_id", pa.string(), nullable=False))
        return schema.empty_table()

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (type(self).__name__, self.archive.description(), self.tenant, self.start, self.end)
