"""Value types: what goes into an archive and what comes back out."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["ArchivedObject", "Event", "Problem", "Receipt", "VerifyReport"]


@dataclass(frozen=True, slots=True)
class Event:
    """One event, mirroring allsource-core's ``Event``.

    ``payload`` and ``metadata`` are any JSON value; ``timestamp`` must be
    timezone-aware (it is stored in UTC with microsecond precision).
    """

    id: uuid.UUID
    event_type: str
    entity_id: str
    tenant_id: str
    payload: Any
    timestamp: datetime
    metadata: Any = None
    version: int = 1


@dataclass(frozen=True, slots=True)
class Receipt:
    """What :meth:`Archive.archive` stored.

    ``keys`` are relative to the archive's root; ``created`` is False when
    every object was already there, byte-identical (a repeated call).
    """

    keys: tuple[str, ...]
    events: int
    bytes: int
    created: bool


@dataclass(frozen=True, slots=True)
class ArchivedObject:
    """One stored object, described from its key alone (no read needed).

    ``start``/``end`` come from the key, which carries whole seconds; the
    object's true window ends before ``end`` plus one second.  ``digest`` is
    ``None`` for foreign (allsource-core) files whose names carry none.
    """

    key: str
    tenant_id: str
    start: datetime
    end: datetime
    size: int
    digest: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with one stored object."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :meth:`Archive.verify`; ``ok`` only when no problem was found.

    ``objects`` and ``events`` count what was checked; ``skipped`` the
    objects of the selection left unchecked this time (verified unchanged
    recently, per a state file, or not drawn by ``sample``).  Reports of
    shards, groups or runs add up with :meth:`combine`.
    ``shredded``: keys of encrypted objects whose tenant key was shredded
    (DESIGN.md §9) -- unreadable by design, not damage: their bytes, footer,
    schema and plaintext columns were still checked.  Known only to an
    archive opened with ``encryption``.
    """

    objects: int
    events: int
    problems: tuple[Problem, ...] = field(default=())
    skipped: int = 0
    shredded: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    @classmethod
    def combine(cls, reports: Iterable[VerifyReport]) -> VerifyReport:
        """One report of several (shards, task groups): counts added, problems in the given order."""
        reports = list(reports)
        return cls(
            objects=sum(r.objects for r in reports),
            events=sum(r.events for r in reports),
            problems=tuple(p for r in reports for p in r.problems),
            skipped=sum(r.skipped for r in reports),
            shredded=tuple(k for r in reports for k in r.shredded),
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Window:
    """A validated, inclusive ``[start, end]`` window in UTC."""

    start: datetime
    end: datetime

    @property
    def start_us(self) -> int:
        return (self.start - _EPOCH) // _US

    @property
    def end_us(self) -> int:
        return (self.end - _EPOCH) // _US
