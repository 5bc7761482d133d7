"""Which objects a verify checks: a shard by key hash, a random sample, a state file of past checks.

A scrub of an archive that only grows is spread over machines (``shard``)
and over days (``state`` plus ``recheck_after``, or ``sample``):

* **Shards** split by a hash of the key alone, so they are disjoint, their
  union is every object, and an object stays in its shard as the archive
  grows (restic's ``--read-data-subset n/t``).  Numbered 1 to N.
* **State** is a JSON Lines file of objects verified without a problem — key,
  size, the digest in its name, when — appended as each check finishes (a
  killed run keeps what it did) and rewritten once at the end.  A rerun skips
  an object whose key and size are unchanged and whose last check is newer
  than ``recheck_after``.  Keys are content-addressed, so an unchanged key
  is unchanged content — except for decay of the stored bytes, which is what
  ``recheck_after`` bounds.  One file per shard: a file is not shared by
  runs at the same time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson

from .._errors import InvalidRequest
from .._types import ArchivedObject, VerifyReport

__all__ = ["Plan", "State", "parse_shard", "shard_of"]

_STATE_VERSION = 1


def shard_of(key: str, shards: int) -> int:
    """The shard (1 to ``shards``) of the object under ``key``: a function of the key alone."""
    value = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    return value % shards + 1


def parse_shard(shard: Any) -> tuple[int, int] | None:
    """``(i, n)`` or ``"i/n"`` checked (``1 <= i <= n``); ``None`` stays ``None``."""
    if shard is None:
        return None
    if isinstance(shard, str):
        head, sep, tail = shard.partition("/")
        try:
            shard = (int(head), int(tail)) if sep else None
        except ValueError:
            shard = None
        if shard is None:
            raise InvalidRequest("shard must be I/N with whole numbers, 1 <= I <= N (e.g. 2/8)")
    if (
        not isinstance(shard, tuple)
        or len(shard) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in shard)
    ):
        raise InvalidRequest(f"shard must be a pair (i, n) of integers, got {shard!r}")
    index, count = shard
    if not 1 <= index <= count:
        raise InvalidRequest(f"shard {index}/{count} is out of range: need 1 <= I <= N")
    return index, count


@dataclass(frozen=True, slots=True)
class _Done:
    size: int
    digest: str | None
    verified: datetime


@dataclass(slots=True)
class State:
    """The state file of one archive (or shard): objects verified without a problem, by key."""

    path: Path
    archive: str
    done: dict[str, _Done] = field(default_factory=dict)
    _out: IO[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def load(cls, path: str | os.PathLike[str], archive: str) -> State:
        """The state at ``path`` (a missing file is an empty state) of the archive ``archive``."""
        state = cls(Path(path), archive)
        try:
            lines = state.path.read_bytes().splitlines()
        except FileNotFoundError:
            return state
        except OSError as exc:
            raise InvalidRequest(f"state file {state.path} cannot be read: {exc.strerror or exc}") from None
        try:
            head = orjson.loads(lines[0]) if lines else {}
        except orjson.JSONDecodeError:
            head = {}
        if not isinstance(head, dict) or head.get("coldtier_verify_state") != _STATE_VERSION:
            raise InvalidRequest(f"{state.path} is not a coldtier verify state file")
        if head.get("archive") != archive:
            raise InvalidRequest(f"state file {state.path} belongs to {head.get('archive')!r}, not {archive}")
        for line in lines[1:]:
            try:
                row = orjson.loads(line)
                state.done[row["key"]] = _Done(
                    row["size"], row["digest"], datetime.fromisoformat(row["verified"])
                )
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue  # a line torn by a killed run: that object is checked again
        return state

    def fresh(self, obj: ArchivedObject, now: datetime, recheck_after: timedelta | None) -> bool:
        """Whether ``obj`` was verified unchanged (same key, size, digest) within ``recheck_after``."""
        done = self.done.get(obj.key)
        if done is None or done.size != obj.size or done.digest != obj.digest:
            return False
        return recheck_after is None or now - done.verified < recheck_after

    def record(self, obj: ArchivedObject, report: VerifyReport, now: datetime) -> None:
        """Note a finished check (thread-safe); only a check without a problem is kept."""
        with self._lock:
            if report.problems:
                self.done.pop(obj.key, None)
                return
            self.done[obj.key] = _Done(obj.size, obj.digest, now)
            if self._out is None:
                self._out = self._open_append()
            self._out.write(_row(obj.key, self.done[obj.key]) + b"\n")
            self._out.flush()

    def save(self) -> None:
        """Rewrite the file with one line per object (atomically: a temp file renamed over it)."""
        with self._lock:
            if self._out is not None:
                self._out.close()
                self._out = None
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            try:
                with tmp.open("wb") as out:
                    out.write(self._head() + b"\n")
                    for key in sorted(self.done):
                        out.write(_row(key, self.done[key]) + b"\n")
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, self.path)
            except OSError as exc:
                raise InvalidRequest(
                    f"state file {self.path} cannot be written: {exc.strerror or exc}"
                ) from None

    def _head(self) -> bytes:
        return orjson.dumps({"coldtier_verify_state": _STATE_VERSION, "archive": self.archive})

    def _open_append(self) -> IO[bytes]:
        try:
            new = not self.path.exists() or self.path.stat().st_size == 0
            out = self.path.open("ab")
        except OSError as exc:
            raise InvalidRequest(f"state file {self.path} cannot be written: {exc.strerror or exc}") from None
        if new:
            out.write(self._head() + b"\n")
        return out


def _row(key: str, done: _Done) -> bytes:
    return orjson.dumps(
        {"key": key, "size": done.size, "digest": done.digest, "verified": done.verified.isoformat()}
    )


@dataclass(slots=True)
class Plan:
    """The objects one verify run checks, and what it remembers of them."""

    shard: tuple[int, int] | None = None
    sample: float | None = None
    state: State | None = None
    recheck_after: timedelta | None = None
    seed: int | None = None
    skipped: int = 0

    @classmethod
    def of(
        cls,
        archive: str,
        *,
        shard: Any = None,
        sample: float | None = None,
        state: str | os.PathLike[str] | None = None,
        recheck_after: timedelta | float | None = None,
        seed: int | None = None,
    ) -> Plan:
        """Check every argument (``InvalidRequest`` naming the wrong one) before anything is read."""
        if sample is not None and (
            isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 < sample <= 1
        ):
            raise InvalidRequest(f"sample must be a share in (0, 1], got {sample!r}")
        if isinstance(recheck_after, (int, float)) and not isinstance(recheck_after, bool):
            recheck_after = timedelta(days=recheck_after)
        if recheck_after is not None and (
            not isinstance(recheck_after, timedelta) or recheck_after <= timedelta(0)
        ):
            raise InvalidRequest(f"recheck_after must be a positive number of days, got {recheck_after!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise InvalidRequest(f"seed must be an integer, got {seed!r}")
        if recheck_after is not None and state is None:
            raise InvalidRequest("recheck_after needs a state file (state=...)")
        loaded = None if state is None else State.load(state, archive)
        return cls(parse_shard(shard), sample, loaded, recheck_after, seed)

    def select(self, objs: Iterable[ArchivedObject]) -> list[ArchivedObject]:
        """The objects of this shard, less those the state calls fresh, sampled; counts the rest."""
        now = datetime.now(UTC)
        mine = [o for o in objs if self.holds(o.key)]
        todo = [o for o in mine if self.state is None or not self.state.fresh(o, now, self.recheck_after)]
        if self.sample is not None:
            draw = random.Random(self.seed)
            todo = [o for o in todo if draw.random() < self.sample]
        self.skipped = len(mine) - len(todo)
        return todo

    def holds(self, key: str) -> bool:
        """Whether ``key`` is in this run's shard (every key, unsharded)."""
        return self.shard is None or shard_of(key, self.shard[1]) == self.shard[0]

    def record(self, obj: ArchivedObject, report: VerifyReport) -> VerifyReport:
        if self.state is not None:
            self.state.record(obj, report, datetime.now(UTC))
        return report

    def finish(self, report: VerifyReport) -> VerifyReport:
        """``report`` with the skipped count; the state saved."""
        if self.state is not None:
            self.state.save()
        return dataclasses.replace(report, skipped=self.skipped)
