"""Object names: ``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet`` and back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from ._types import Window

__all__ = [
    "LEDGER_PREFIX",
    "PROBE_PREFIX",
    "KeyInfo",
    "key_time",
    "ledger_key",
    "month",
    "object_key",
    "parse_key",
]

#: Where :meth:`Archive.probe` writes its canary; ``~`` is never in a tenant id,
#: so no tenant listing ever shows it.
PROBE_PREFIX = "_coldtier~probe"
#: Where the ledger's receipts live: ``<LEDGER_PREFIX>/<tenant>/<yyyy-mm>/<kind>.<start>-<end>.<digest>.json``
#: (DESIGN.md §10); like the probe's prefix, no tenant listing or reader sees it.
LEDGER_PREFIX = "_coldtier~ledger"
_KEY_TIME = "%Y-%m-%dT%H%M%SZ"
_KEY_RE = re.compile(
    r"archive\.(?P<tenant>[A-Za-z0-9._-]{1,128})"
    r"\.(?P<start>\d{4}-\d\d-\d\dT\d{6}Z)-(?P<end>\d{4}-\d\d-\d\dT\d{6}Z)"
    r"(?:\.(?P<digest>[0-9a-f]{16}))?\.parquet"
)


def key_time(value: datetime) -> str:
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v:%m-%dT%H%M%S}Z"  # strftime's %Y does not pad years < 1000


def month(value: datetime) -> str:
    """``yyyy-mm`` of ``value`` in UTC: the directory of the objects starting then."""
    v = value.astimezone(UTC)
    return f"{v.year:04d}-{v.month:02d}"


def object_key(tenant_id: str, win: Window, digest: str) -> str:
    """``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet``."""
    return (
        f"{tenant_id}/{month(win.start)}/archive.{tenant_id}."
        f"{key_time(win.start)}-{key_time(win.end)}.{digest}.parquet"
    )


def ledger_key(tenant_id: str, kind: str, win: Window, digest: str) -> str:
    """``<LEDGER_PREFIX>/<tenant>/<yyyy-mm>/<kind>.<start>-<end>.<digest>.json``: one receipt."""
    return (
        f"{LEDGER_PREFIX}/{tenant_id}/{month(win.start)}/{kind}."
        f"{key_time(win.start)}-{key_time(win.end)}.{digest}.json"
    )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    tenant_id: str
    start: datetime
    end: datetime
    digest: str | None


def parse_key(name: str) -> KeyInfo | None:
    """Parse an object's file name (ours or allsource-core's); ``None`` if foreign."""
    m = _KEY_RE.fullmatch(name)
    if m is None:
        return None
    try:
        start = datetime.strptime(m["start"], _KEY_TIME).replace(tzinfo=UTC)
        end = datetime.strptime(m["end"], _KEY_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None
    return KeyInfo(m["tenant"], start, end, m["digest"])
