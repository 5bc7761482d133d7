"""Every public method raises only coldtier's errors: translated once, at the store seam.

A missing bucket or root is ``ArchiveNotFound`` (never "an empty archive");
an unreachable store is ``ArchiveReadError`` on reads and ``ArchiveWriteError``
on writes; a refusal (403) is the same, classified by the response.  Each
case on local, S3 (moto) and GCS (fake-gcs-server); the cause is kept.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import coldtier
from coldtier import ArchiveNotFound, ArchiveReadError, ArchiveWriteError, ColdTierError
from coldtier.testing import FaultProxy, Rule, make_events, window_of
from tests._fakegcs import FakeGCS
from tests._moto import CREDENTIALS, archive_url

EVENTS = make_events("acme", 10)
WINDOW = window_of(EVENTS)

READS: dict[str, Callable[[coldtier.Archive], Any]] = {
    "tenants": lambda a: a.tenants(),
    "objects": lambda a: a.objects("acme"),
    "read": lambda a: a.read("acme"),
    "events": lambda a: list(a.events("acme")),
    "read_tables": lambda a: list(a.read_tables("acme")),
    "verify": lambda a: a.verify(),
    "verify_tenant": lambda a: a.verify("acme"),
}


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


def _missing(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if backend == "local":
        return str(tmp_path / "no-such-root")
    if backend == "s3":
        moto = request.getfixturevalue("moto_url")
        return archive_url("s3", f"missing-{uuid.uuid4().hex[:12]}", "p", moto) + "&max_attempts=1"
    server: FakeGCS = request.getfixturevalue("fake_gcs")
    return f"gs://missing-{uuid.uuid4().hex[:12]}/p?endpoint_url={server.url}"


@pytest.mark.parametrize("backend", ["local", "s3", "gcs"])
@pytest.mark.parametrize("op", sorted(READS))
def test_a_missing_location_is_archive_not_found(
    backend: str, op: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    archive = coldtier.open_archive(_missing(backend, request, tmp_path), **_creds(backend))
    with pytest.raises(ArchiveNotFound) as info:
        READS[op](archive)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, ArchiveReadError)
    assert archive.description() in str(info.value) and "does not exist" in str(info.value)


def test_a_local_archive_creates_its_root_on_first_write(tmp_path: Path) -> None:
    archive = coldtier.open_archive(str(tmp_path / "new" / "root"))
    with pytest.raises(ArchiveNotFound):
        archive.tenants()
    assert archive.archive("acme", *WINDOW, EVENTS).created
    assert archive.tenants() == ["acme"]


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_writing_to_a_missing_bucket_is_a_write_error(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    archive = coldtier.open_archive(_missing(backend, request, tmp_path), **_creds(backend))
    with pytest.raises(ArchiveWriteError, match="keep the originals"):
        archive.archive("acme", *WINDOW, EVENTS)


def _unreachable(backend: str, port: int) -> str:
    endpoint = f"http://127.0.0.1:{port}"
    if backend == "s3":
        return archive_url("s3", "bucket", "p", endpoint) + "&max_attempts=1&timeout=2"
    return f"gs://bucket/p?endpoint_url={endpoint}&timeout=2"


@pytest.mark.parametrize("backend", ["s3", "gcs"])
@pytest.mark.parametrize("op", sorted(READS))
def test_an_unreachable_store_is_a_read_error(backend: str, op: str, closed_port: int) -> None:
    archive = coldtier.open_archive(_unreachable(backend, closed_port), **_creds(backend))
    with pytest.raises(ArchiveReadError) as info:
        READS[op](archive)
    assert not isinstance(info.value, ArchiveNotFound)
    assert info.value.__cause__ is not None  # the library's own error, kept
    assert archive.description() in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_an_unreachable_store_refuses_writes_and_probes(backend: str, closed_port: int) -> None:
    archive = coldtier.open_archive(_unreachable(backend, closed_port), **_creds(backend))
    with pytest.raises(ArchiveWriteError) as info:
        archive.archive("acme", *WINDOW, EVENTS)
    assert info.value.__cause__ is not None
    with pytest.raises(ArchiveWriteError):
        archive.probe()


def test_a_local_root_that_is_a_file_is_a_read_error(tmp_path: Path) -> None:
    root = tmp_path / "a-file"
    root.write_text("not a directory")
    archive = coldtier.open_archive(str(root))
    for op in ("tenants", "objects", "read", "verify"):
        with pytest.raises(ColdTierError):
            READS[op](archive)


S3_DENIED = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code>'
    b"<Message>Access Denied</Message></Error>"
)
GCS_DENIED = b'{"error": {"code": 403, "message": "caller does not have storage.objects.list access"}}'


@pytest.mark.parametrize("backend", ["s3", "gcs"])
def test_access_denied_is_classified_as_such(backend: str, request: pytest.FixtureRequest) -> None:
    if backend == "s3":
        upstream = request.getfixturevalue("moto_url")
        bucket = request.getfixturevalue("fresh_bucket")
    else:
        upstream = request.getfixturevalue("fake_gcs").url
        bucket = request.getfixturevalue("gcs_bucket")
    with FaultProxy(upstream) as proxy:
        body = S3_DENIED if backend == "s3" else GCS_DENIED
        proxy.add(Rule(action="status", status=403, body=body, times=None))
        if backend == "s3":
            url = archive_url("s3", bucket, "p", proxy.url) + "&max_attempts=1"
        else:
            url = f"gs://{bucket}/p?endpoint_url={proxy.url}"
        archive = coldtier.open_archive(url, **_creds(backend))
        with pytest.raises(ArchiveReadError, match=r"(?i)access denied") as info:
            archive.objects("acme")
        assert not isinstance(info.value, ArchiveNotFound)
        with pytest.raises(ArchiveWriteError, match=r"(?i)access denied"):
            archive.archive("acme", *WINDOW, EVENTS)


def _creds(backend: str) -> dict[str, Any]:
    return dict(CREDENTIALS) if backend == "s3" else {}
