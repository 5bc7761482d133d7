"""What every shipped suite needs from a backend's test class: two fixtures and a figures hook."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import pytest

from coldtier import Archive

from ._backdoor import Backdoor

__all__ = ["MakeArchive", "Suite"]

#: ``make_archive(**options)``: a *new* archive object on the test's (fresh, initially empty) storage.
MakeArchive = Callable[..., Archive]


class Suite:
    """The fixtures a backend's test class overrides, and an optional hook for figures."""

    #: A short name of the backend under test (seeds random fault schedules; labels figures).
    backend_name: ClassVar[str] = ""

    @pytest.fixture
    def make_archive(self) -> MakeArchive:
        raise NotImplementedError("provide a make_archive fixture")

    @pytest.fixture
    def backdoor(self) -> Backdoor:
        raise NotImplementedError("provide a backdoor fixture")

    def record(self, area: str, note: str | None = None, **counts: float) -> None:
        """What a scenario did and found (``trials``, ``inputs``, ``events_lost``, ...).

        The default drops them; override it to keep figures (coldtier's own
        tests write them into its ``RELIABILITY.md``).
        """
