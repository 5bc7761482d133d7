"""Tenant ids and windows: the first checks of every call."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from .._errors import InvalidRequest
from .._types import Window

__all__ = ["Window", "optional_window", "validate_tenant", "window"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,128}")


def validate_tenant(tenant_id: object) -> str:
    """Return ``tenant_id`` if it is a valid tenant id (allsource-core's rule)."""
    if not isinstance(tenant_id, str) or not _TENANT_RE.fullmatch(tenant_id) or tenant_id in (".", ".."):
        raise InvalidRequest(
            f"invalid tenant_id {tenant_id!r}: need 1-128 characters of [A-Za-z0-9._-], not '.' or '..'"
        )
    return tenant_id


def _aware_utc(value: object, what: str) -> datetime:
    if not isinstance(value, datetime):
        raise InvalidRequest(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRequest(f"{what} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def window(start: object, end: object) -> Window:
    """Validate an inclusive window: tz-aware datetimes with ``start <= end``."""
    s = _aware_utc(start, "start")
    e = _aware_utc(end, "end")
    if s > e:
        raise InvalidRequest(f"start {s.isoformat()} is after end {e.isoformat()}")
    return Window(s, e)


def optional_window(start: object, end: object) -> tuple[datetime | None, datetime | None]:
    """Validate a reading window where either end may be open (``None``)."""
    s = None if start is None else _aware_utc(start, "start")
    e = None if end is None else _aware_utc(end, "end")
    if s is not None and e is not None and s > e:
        raise InvalidRequest(f"start {s.isoformat()} is after end {e.isoformat()}")
    return s, e

