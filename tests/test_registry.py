"""Backend discovery, URL dispatch and option parsing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any

import pytest

import coldtier
from coldtier import _registry
from coldtier.backends.local import LocalStore
from coldtier.backends.memory import MemoryStore


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    saved = dict(_registry._registered)
    yield
    _registry._registered.clear()
    _registry._registered.update(saved)
    _registry._reset_entry_points()


def test_builtins_are_listed() -> None:
    backends = coldtier.available_backends()
    assert backends["file"] == "coldtier.backends.local:LocalStore"
    assert backends["memory"] == "coldtier.backends.memory:MemoryStore"
    assert backends["s3"] == "coldtier.backends.s3:S3Store"
    assert backends["r2"] == "coldtier.backends.s3:R2Store"
    assert backends["gs"] == backends["gcs"] == "coldtier.backends.gcs:GCSStore"
    with pytest.raises(TypeError):
        backends["x"] = "y"  # type: ignore[index]


def test_import_coldtier_imports_no_cloud_sdk() -> None:
    code = (
        "import sys, coldtier; coldtier.open_archive('memory://x'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('s3fs','gcsfs','boto3','botocore','aiobotocore','google')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_extra_names_the_pip_install() -> None:
    code = (
        "import sys; sys.modules['s3fs'] = None; sys.modules['gcsfs'] = None\n"
        "import coldtier\n"
        "for url in ('s3://bucket/p', 'r2://bucket/p?account_id=x', 'gs://bucket/p'):\n"
        "    try:\n"
        "        coldtier.open_archive(url)\n"
        "    except coldtier.MissingDependency as exc:\n"
        "        assert isinstance(exc, ImportError)\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 3, out
    assert "pip install 'coldtier[s3]'" in lines[0] and "pip install 'coldtier[s3]'" in lines[1]
    assert "pip install 'coldtier[gcs]'" in lines[2]


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(coldtier.UnknownBackend) as info:
        coldtier.open_archive("nosuch://container/prefix")
    assert isinstance(info.value, LookupError)
    assert "nosuch://" in str(info.value) and "s3://" in str(info.value) and "file://" in str(info.value)


def store_of(archive: coldtier.Archive) -> object:
    """The ObjectStore under an archive ``open_archive`` built."""
    return archive.store  # type: ignore[attr-defined]


def test_bare_paths_and_file_urls_are_local(tmp_path: Path) -> None:
    assert isinstance(store_of(coldtier.open_archive(str(tmp_path))), LocalStore)
    assert isinstance(store_of(coldtier.open_archive("relative/dir")), LocalStore)
    assert isinstance(store_of(coldtier.open_archive(tmp_path.as_uri())), LocalStore)
    assert isinstance(store_of(coldtier.open_archive("memory://x")), MemoryStore)


class Custom(MemoryStore):
    scheme = "custom"


def test_register_backend_and_clobber() -> None:
    coldtier.register_backend("custom", Custom)
    assert coldtier.available_backends()["custom"].endswith(":Custom")
    assert isinstance(store_of(coldtier.open_archive("custom://name")), Custom)
    with pytest.raises(coldtier.InvalidRequest, match="already registered"):
        coldtier.register_backend("custom", Custom)
    coldtier.register_backend("custom", "coldtier.backends.memory:MemoryStore", clobber=True)
    assert type(store_of(coldtier.open_archive("custom://name"))) is MemoryStore


@pytest.mark.parametrize("scheme", ["", "S3", "1abc", "a b", "a/b", None])
def test_register_backend_refuses_bad_scheme(scheme: Any) -> None:
    with pytest.raises(coldtier.InvalidRequest, match="scheme"):
        coldtier.register_backend(scheme, Custom)


def test_register_backend_refuses_non_archive() -> None:
    with pytest.raises(coldtier.InvalidRequest):
        coldtier.register_backend("thing", dict)  # type: ignore[arg-type]


def test_entry_point_backends_are_discovered_lazily() -> None:
    _registry._reset_entry_points(
        [
            EntryPoint("plugin", "coldtier.backends.memory:MemoryStore", _registry.GROUP),
            EntryPoint("broken", "no_such_module_xyz:Archive", _registry.GROUP),
        ]
    )
    assert coldtier.available_backends()["plugin"] == "coldtier.backends.memory:MemoryStore"
    assert isinstance(store_of(coldtier.open_archive("plugin://p")), MemoryStore)
    with pytest.raises(coldtier.MissingDependency, match="broken://"):
        coldtier.open_archive("broken://p")


def test_installed_entry_points_cover_the_builtins() -> None:
    from importlib.metadata import entry_points

    names = {ep.name for ep in entry_points(group=_registry.GROUP)}
    assert {"file", "memory", "s3", "r2", "gs", "gcs"} <= names


# -- options ---------------------------------------------------------------


def test_unknown_option_lists_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(coldtier.InvalidRequest) as info:
        coldtier.open_archive(f"{tmp_path.as_uri()}?colour=red")
    assert "colour" in str(info.value) and "max_object_bytes" in str(info.value)
    with pytest.raises(coldtier.InvalidRequest, match="colour"):
        coldtier.open_archive(str(tmp_path), colour="red")


@pytest.mark.parametrize(
    "query",
    ["object_events=0", "object_events=many", "workers=-1", "compression=rar", "max_object_bytes=1.5"],
)
def test_bad_option_values_are_refused(tmp_path: Path, query: str) -> None:
    with pytest.raises(coldtier.InvalidRequest, match=query.split("=")[0]):
        coldtier.open_archive(f"{tmp_path.as_uri()}?{query}")


def test_option_given_twice_must_agree(tmp_path: Path) -> None:
    url = f"{tmp_path.as_uri()}?object_events=10"
    assert coldtier.open_archive(url, object_events=10) is not None
    with pytest.raises(coldtier.InvalidRequest, match="twice"):
        coldtier.open_archive(url, object_events=11)


def test_credentials_in_url_are_refused_and_not_echoed() -> None:
    with pytest.raises(coldtier.InvalidRequest) as info:
        coldtier.open_archive("memory://AKIDEXAMPLE:s3cr3tP4ss@host/x")
    assert "s3cr3tP4ss" not in str(info.value) and "AKIDEXAMPLE" not in str(info.value)


def test_remote_file_host_is_refused() -> None:
    with pytest.raises(coldtier.InvalidRequest, match="remote host"):
        coldtier.open_archive("file://fileserver/share")
