"""Input checks: tenant ids, windows, and the events themselves (DESIGN.md §2.6).

Every check runs before anything is written; a violation is
:class:`~coldtier.InvalidRequest` naming the first offending event.
"""

from __future__ import annotations

from .arrow import JsonWritten, arrow_checks, conform_arrow, from_arrow
from .events import from_events
from .window import Window, optional_window, validate_tenant, window

__all__ = [
    "JsonWritten",
    "Window",
    "arrow_checks",
    "conform_arrow",
    "from_arrow",
    "from_events",
    "optional_window",
    "validate_tenant",
    "window",
]
