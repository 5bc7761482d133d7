"""The conformance suite every coldtier backend must pass, shipped with the package.

A backend's test module subclasses :class:`ArchiveTests` and supplies two
fixtures::

    class TestMyBackend(ArchiveTests):
        @pytest.fixture
        def make_archive(self, my_server):       # -> Callable[..., Archive]
            url = my_server.fresh_location()
            return lambda **options: coldtier.open_archive(url, **options)

        @pytest.fixture
        def backdoor(self, my_server):           # -> Backdoor
            return FsspecBackdoor(my_server.independent_fs(), root)

``make_archive(**options)`` must return a *new* archive object on the same
(per-test, initially empty) storage each call; the backdoor reads and writes
that storage without going through the code under test.
"""

from __future__ import annotations

from ._data import make_events, window_of
from ._suite import ArchiveTests, Backdoor, FsspecBackdoor

__all__ = ["ArchiveTests", "Backdoor", "FsspecBackdoor", "make_events", "window_of"]
