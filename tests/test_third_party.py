"""A backend as a third party writes one: ``coldtier.store`` only, found through a real entry point.

:class:`DictStore` below imports nothing under ``coldtier._*`` (a test reads
this file to prove it); it is declared in a ``*.dist-info/entry_points.txt``
put on ``sys.path``, exactly as ``pip install`` would leave it, and passes the
whole shipped conformance suite unchanged.
"""

from __future__ import annotations

import re
import sys
import threading
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import pytest

import coldtier
from coldtier.store import Entry, Fault, Location, ObjectStore, OptionSpec, Stat
from coldtier.testing import ArchiveTests

_STORES: dict[str, dict[str, tuple[bytes, dict[str, str]]]] = {}
_LOCK = threading.Lock()


class DictStore(ObjectStore):
    """Objects in a process-wide dict of dicts: ``dictstore://name``; keeps metadata."""

    scheme = "dictstore"
    keeps_metadata = True
    durable = False
    OPTIONS: ClassVar[Mapping[str, OptionSpec]] = {"token": OptionSpec(str, secret=True, doc="ignored")}

    def __init__(self, name: str) -> None:
        self._name = name
        with _LOCK:
            self._objects = _STORES.setdefault(name, {})

    @classmethod
    def from_location(cls, location: Location) -> Self:
        if not location.netloc:
            raise coldtier.InvalidRequest("dictstore:// needs a name")
        return cls(location.netloc)

    def description(self) -> str:
        return f"dictstore://{self._name}"

    def put(self, key: str, data: bytes, *, sha256: str, metadata: Mapping[str, str], lock: bool = True) -> bool:
        with _LOCK:
            if key in self._objects:
                return False
            self._objects[key] = (bytes(data), {**metadata, "sha256": sha256})
            return True

    def stat(self, key: str) -> Stat:
        data, meta = self._objects[key]  # KeyError: classified below
        return Stat(len(data), meta)

    def get(self, key: str) -> bytes:
        return self._objects[key][0]

    def list(self, prefix: str) -> list[Entry]:
        below = f"{prefix}/" if prefix else ""
        found: dict[str, Entry] = {}
        with _LOCK:
            for key, (data, _) in self._objects.items():
                if not key.startswith(below):
                    continue
                head, sep, _rest = key[len(below) :].partition("/")
                if sep:
                    found.setdefault(below + head, Entry(below + head, is_dir=True))
                else:
                    found[key] = Entry(key, len(data))
        return list(found.values())

    def delete(self, key: str) -> None:
        with _LOCK:
            del self._objects[key]

    def classify(self, exc: BaseException) -> Fault | None:
        return Fault.NOT_FOUND if isinstance(exc, KeyError) else super().classify(exc)


def _dist_info(root: Path, name: str, entry_points: str) -> None:
    dist = root / f"{name.replace('-', '_')}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(entry_points)


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """A site directory on ``sys.path``; entry points are read again before and after."""
    from coldtier import _registry  # the registry caches what it discovered: forget it

    sys.path.insert(0, str(tmp_path))
    _registry._reset_entry_points()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        _registry._reset_entry_points()


@pytest.fixture
def plugin(installed: Path) -> Path:
    _dist_info(installed, "coldtier-dictstore", "[coldtier.backends]\ndictstore = tests.test_third_party:DictStore\n")
    return installed


class TestThirdPartyBackend(ArchiveTests):
    """The shipped suite, unchanged, over a backend that only knows ``coldtier.store``."""

    @pytest.fixture
    def name(self, request: pytest.FixtureRequest) -> str:
        return re.sub(r"[^a-z0-9]", "", request.node.name.lower())[:40] + str(id(request))

    @pytest.fixture
    def make_archive(self, plugin: Path, name: str) -> Any:
        assert coldtier.available_backends()["dictstore"] == "tests.test_third_party:DictStore"
        return lambda **options: coldtier.open_archive(f"dictstore://{name}", **options)

    @pytest.fixture
    def backdoor(self, name: str) -> Any:
        class Backdoor:
            def list_keys(self) -> list[str]:
                return sorted(_STORES.get(name, {}))

            def get(self, key: str) -> bytes:
                return _STORES[name][key][0]

            def put(self, key: str, data: bytes) -> None:
                _STORES.setdefault(name, {})[key] = (data, {})

        return Backdoor()


def test_the_backend_imports_nothing_private() -> None:
    source = Path(__file__).read_text()
    code = source.split("def _dist_info", 1)[0]  # the backend, above the test rig
    assert not re.search(r"^\s*(from|import)\s+coldtier\._", code, re.MULTILINE)
    assert "from coldtier.store import" in code


def test_an_entry_point_cannot_take_a_builtin_scheme(installed: Path, tmp_path: Path) -> None:
    _dist_info(installed, "evil-plugin", "[coldtier.backends]\nfile = tests.test_third_party:DictStore\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        backends = coldtier.available_backends()
    assert backends["file"] == "coldtier.backends.local:LocalStore"
    messages = [str(w.message) for w in caught]
    assert any("evil-plugin" in m and "built-in" in m for m in messages), messages
    root = tmp_path / "archive"
    root.mkdir()
    archive = coldtier.open_archive(str(root))
    assert type(archive.store).__name__ == "LocalStore"  # type: ignore[attr-defined]
    coldtier.register_backend("file", DictStore, clobber=True)  # only an explicit override replaces it
    try:
        assert coldtier.available_backends()["file"].endswith(":DictStore")
    finally:
        from coldtier import _registry

        _registry._registered.pop("file")
