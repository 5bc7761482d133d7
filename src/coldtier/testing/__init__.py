"""The test kit every coldtier backend must pass, shipped with the package.

Suites (pytest base classes; subclass one per backend in a test module):

=========================  ====================================================  ==================
suite                      what it runs                                          module
=========================  ====================================================  ==================
:class:`ArchiveTests`      the archive contract: layout, idempotence, races,     ``_suite``
                           input forms, reading, verify, probe, refused input
:class:`ModelTests`        hypothesis schedules of archive/retry/race/bad/read   :mod:`.model`
                           against an oracle (the set of events archived)        (needs hypothesis)
:class:`HostileInputTests` look-alike tenants, odd zones and units, hostile      :mod:`.hostile`
                           Arrow, huge events, far-away dates
:class:`WireFaultTests`    lost responses, 5xx/429, resets and slow answers      :mod:`.faults`
                           through :class:`FaultProxy` (HTTP backends only)
=========================  ====================================================  ==================

Every suite needs two fixtures from the subclass::

    class TestMyBackend(ArchiveTests):             # or ModelTests, HostileInputTests
        @pytest.fixture
        def make_archive(self, my_server):       # -> Callable[..., Archive]
            url = my_server.fresh_location()
            return lambda **options: coldtier.open_archive(url, **options)

        @pytest.fixture
        def backdoor(self, my_server):           # -> Backdoor
            return FsspecBackdoor(my_server.independent_fs(), root)

``make_archive(**options)`` must return a *new* archive object on the same
(per-test, initially empty) storage each call; the backdoor reads and writes
that storage without going through the code under test, and lists every key
(dot-files, temp files and the probe's canaries included).

:class:`WireFaultTests` needs, instead of ``make_archive``, the fixtures
``upstream`` (the store's ``http://host:port``) and
``make_archive_through(endpoint, **options)`` (the same kind of archive, with
``endpoint`` as its endpoint), plus the ``backdoor``; class attributes say how
an object write looks on the wire (see :mod:`coldtier.testing.faults`)::

    class TestMyBackendWireFaults(WireFaultTests):
        write_method, write_path = "POST", r"^/upload/"
        budget_options, write_attempts = {"max_attempts": 3}, 3

        @pytest.fixture
        def upstream(self, my_server):
            return my_server.url

        @pytest.fixture
        def make_archive_through(self, my_server):
            url = my_server.fresh_location()
            return lambda endpoint, **options: coldtier.open_archive(url, endpoint_url=endpoint, **options)

Optional on every suite: ``backend_name`` (class attribute; seeds and labels)
and ``record(area, note=None, **counts)``, called with what each scenario did
and found (the default drops it).  Also here: :func:`make_events` and
:func:`window_of` (sample events), :class:`FsspecBackdoor`, the
:class:`FaultProxy` and its :class:`Rule`.  ``import coldtier.testing`` needs
neither pytest nor hypothesis; each suite imports them when first used (the
``testing`` extra installs both).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._backdoor import Backdoor, FsspecBackdoor
from ._data import make_events, window_of

if TYPE_CHECKING:
    from ._base import MakeArchive, Suite
    from ._suite import ArchiveTests
    from .faultproxy import FaultProxy, Logged, Rule
    from .faults import WireFaultTests
    from .hostile import HostileInputTests
    from .model import ModelTests

__all__ = [
    "ArchiveTests",
    "Backdoor",
    "FaultProxy",
    "FsspecBackdoor",
    "HostileInputTests",
    "Logged",
    "MakeArchive",
    "ModelTests",
    "Rule",
    "Suite",
    "WireFaultTests",
    "make_events",
    "window_of",
]

# Loaded on first use, so that importing coldtier.testing needs no pytest or hypothesis.
_LAZY = {
    "ArchiveTests": "._suite",
    "FaultProxy": ".faultproxy",
    "HostileInputTests": ".hostile",
    "Logged": ".faultproxy",
    "MakeArchive": "._base",
    "ModelTests": ".model",
    "Rule": ".faultproxy",
    "Suite": "._base",
    "WireFaultTests": ".faults",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
