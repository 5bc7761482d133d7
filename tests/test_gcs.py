"""The GCS backend against fake-gcs-server: the shipped suites, options, and faults at the wire."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from google.oauth2.credentials import Credentials

import coldtier
from coldtier import ArchiveWriteError, InvalidRequest, PreconditionUnsupported
from coldtier.backends.gcs import DEFAULT_MAX_OBJECT_BYTES, GCSStore
from coldtier.store import metadata_name
from coldtier.testing import (
    ArchiveTests,
    FaultProxy,
    HostileInputTests,
    ModelTests,
    Rule,
    WireFaultTests,
    make_events,
    window_of,
)
from coldtier.testing._checks import written
from tests._fakegcs import FakeGCS, HTTPBackdoor
from tests._reliability import Figures

SHA256_METADATA = metadata_name("sha256")
PREFIX = "cold/tier"
UPLOAD = r"^/upload/storage/v1/b/[^/]+/o\?"


class GCSRig:
    backend_name = "gcs"
    # How an object write looks on the wire (for WireFaultTests).
    write_method = "POST"
    write_path = UPLOAD
    budget_options: ClassVar[dict[str, Any]] = {}
    write_attempts = GCSStore.upload_attempts

    @pytest.fixture
    def upstream(self, fake_gcs: FakeGCS) -> str:
        return fake_gcs.url

    @pytest.fixture
    def make_archive_through(self, gcs_bucket: str):
        url = f"gs://{gcs_bucket}/{PREFIX}"
        return lambda endpoint, **options: coldtier.open_archive(url, endpoint_url=endpoint, **options)

    @pytest.fixture
    def make_archive(self, upstream: str, make_archive_through):
        return lambda **options: make_archive_through(upstream, **options)

    @pytest.fixture
    def backdoor(self, fake_gcs: FakeGCS, gcs_bucket: str) -> HTTPBackdoor:
        return HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)


class TestGCS(GCSRig, ArchiveTests):
    pass


class TestGCSModel(GCSRig, Figures, ModelTests):
    pass


class TestGCSHostile(GCSRig, Figures, HostileInputTests):
    pass


class TestGCSWireFaults(GCSRig, Figures, WireFaultTests):
    pass


def test_gcs_scheme_is_the_same_backend(fake_gcs: FakeGCS, gcs_bucket: str) -> None:
    events = make_events("acme", 20)
    start, end = window_of(events)
    gcs = coldtier.open_archive(f"gcs://{gcs_bucket}?endpoint_url={fake_gcs.url}")
    gs = coldtier.open_archive(f"gs://{gcs_bucket}", endpoint_url=fake_gcs.url)
    assert type(gcs.store) is type(gs.store) is GCSStore  # type: ignore[attr-defined]
    assert gcs.description() == f"gcs://{gcs_bucket}"
    assert gs._settings.max_object_bytes == DEFAULT_MAX_OBJECT_BYTES  # type: ignore[attr-defined]
    receipt = gcs.archive("acme", start, end, events)
    assert gs.archive("acme", start, end, events).keys == receipt.keys
    assert gs.read("acme").num_rows == 20
    assert written(HTTPBackdoor(fake_gcs, gcs_bucket)) == list(receipt.keys)


def test_object_resource_carries_digest_and_storage_class(fake_gcs: FakeGCS, gcs_bucket: str) -> None:
    events = make_events("acme", 20)
    archive = coldtier.open_archive(
        f"gs://{gcs_bucket}/{PREFIX}?storage_class=ARCHIVE", endpoint_url=fake_gcs.url
    )
    (key,) = archive.archive("acme", *window_of(events), events).keys
    backdoor = HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)
    (resource,) = [o for o in backdoor.objects() if o["name"].endswith(".parquet")]  # not the receipt
    assert resource["name"] == f"{PREFIX}/{key}"
    assert resource["storageClass"] == "ARCHIVE"
    assert resource["metadata"][SHA256_METADATA] == hashlib.sha256(backdoor.get(key)).hexdigest()


def test_objects_stay_under_max_object_bytes(fake_gcs: FakeGCS, gcs_bucket: str) -> None:
    events = make_events("acme", 3000)
    archive = coldtier.open_archive(f"gs://{gcs_bucket}", endpoint_url=fake_gcs.url, max_object_bytes=40_000)
    receipt = archive.archive("acme", *window_of(events), events)
    sizes = [
        int(o["size"]) for o in HTTPBackdoor(fake_gcs, gcs_bucket).objects() if o["name"].endswith(".parquet")
    ]
    assert len(sizes) == len(receipt.keys) > 1
    assert max(sizes) <= 40_000 and sum(sizes) == receipt.bytes
    assert archive.read("acme").num_rows == 3000


@pytest.mark.parametrize(
    ("url", "options", "match"),
    [
        ("gs://", {}, "bucket"),
        ("gs://Bad_Bucket/x", {}, "bucket"),
        ("gs://bucket/a//b", {}, "segment"),
        ("gs://bucket/x?storage_class=GLACIER", {}, "storage_class"),
        ("gs://bucket/x?region=eu", {}, "valid options"),
        ("gs://bucket/x?token=secret-in-url", {}, "keyword"),
    ],
)
def test_bad_urls_are_refused(url: str, options: dict[str, str], match: str) -> None:
    with pytest.raises(InvalidRequest, match=match) as info:
        coldtier.open_archive(url, **options)
    assert "secret-in-url" not in str(info.value)


# -- faults at the wire ----------------------------------------------------------


@pytest.fixture
def proxy(fake_gcs: FakeGCS) -> Iterator[FaultProxy]:
    with FaultProxy(fake_gcs.url) as running:
        yield running


@pytest.fixture
def via_proxy(proxy: FaultProxy, gcs_bucket: str) -> coldtier.Archive:
    archive = coldtier.open_archive(f"gs://{gcs_bucket}/{PREFIX}", endpoint_url=proxy.url)
    assert isinstance(archive.store, GCSStore)  # type: ignore[attr-defined]
    return archive


def _uploads(proxy: FaultProxy) -> list[int | None]:
    return [r.status for r in proxy.requests("POST") if r.target.startswith("/upload/")]


def test_lost_response_to_a_successful_upload_still_succeeds(
    proxy: FaultProxy, via_proxy: coldtier.Archive, fake_gcs: FakeGCS, gcs_bucket: str
) -> None:
    proxy.add(Rule(action="drop", method="POST", path=UPLOAD, times=1))
    events = make_events("acme", 50)
    receipt = via_proxy.archive("acme", *window_of(events), events)
    assert _uploads(proxy) == [200, 412, 200]  # stored, response lost; retry refused, confirmed; receipt
    assert not receipt.created  # this call cannot know the first write was its own
    assert written(HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)) == list(receipt.keys)
    assert via_proxy.read("acme").num_rows == 50


@pytest.mark.parametrize("status", [503, 429])
def test_burst_of_errors_is_retried(
    proxy: FaultProxy, via_proxy: coldtier.Archive, fake_gcs: FakeGCS, gcs_bucket: str, status: int
) -> None:
    proxy.add(Rule(action="status", method="POST", path=UPLOAD, status=status, times=2))
    events = make_events("acme", 50)
    receipt = via_proxy.archive("acme", *window_of(events), events)
    assert _uploads(proxy) == [status, status, 200, 200] and receipt.created  # the object, its receipt
    assert written(HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)) == list(receipt.keys)


def test_connection_reset_mid_upload_is_retried(
    proxy: FaultProxy, via_proxy: coldtier.Archive, fake_gcs: FakeGCS, gcs_bucket: str
) -> None:
    proxy.add(Rule(action="reset", method="POST", path=UPLOAD, times=1))
    events = make_events("acme", 50)
    receipt = via_proxy.archive("acme", *window_of(events), events)
    assert receipt.created and len(_uploads(proxy)) == 3  # reset, the object, its receipt
    assert written(HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)) == list(receipt.keys)


def test_permanent_503_fails_fast_and_stores_nothing(
    proxy: FaultProxy, via_proxy: coldtier.Archive, fake_gcs: FakeGCS, gcs_bucket: str
) -> None:
    proxy.add(Rule(action="status", method="POST", path=UPLOAD, status=503, times=None))
    events = make_events("acme", 50)
    began = time.monotonic()
    with pytest.raises(ArchiveWriteError, match="503") as info:
        via_proxy.archive("acme", *window_of(events), events)
    elapsed = time.monotonic() - began
    assert elapsed < 10, elapsed
    assert "keep the originals" in str(info.value)
    assert _uploads(proxy) == [503] * GCSStore.upload_attempts
    assert HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX).list_keys() == []


def test_probe_passes_through_the_proxy_and_fails_without_the_precondition(
    proxy: FaultProxy, via_proxy: coldtier.Archive, fake_gcs: FakeGCS, gcs_bucket: str
) -> None:
    via_proxy.probe()
    assert _uploads(proxy) == [200, 412]
    proxy.add(Rule(action="pass", method="POST", path=UPLOAD, times=None, strip_query="ifGenerationMatch"))
    with pytest.raises(PreconditionUnsupported, match="second create"):
        via_proxy.probe()
    assert HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX).list_keys() == []  # canary removed


def test_token_never_leaks(proxy: FaultProxy, gcs_bucket: str) -> None:
    token = "ya29.not-a-real-token-but-secret"
    archive = coldtier.open_archive(f"gs://{gcs_bucket}", endpoint_url=proxy.url, token=Credentials(token))
    assert token not in archive.description() and token not in repr(archive)
    proxy.add(Rule(action="status", method="POST", path=UPLOAD, status=503, times=None))
    events = make_events("acme", 5)
    with pytest.raises(ArchiveWriteError) as info:
        archive.archive("acme", *window_of(events), events)
    assert token not in str(info.value)
    # It was sent, as a bearer token, only in the Authorization header.
    sent = [{k.lower(): v for k, v in r.headers.items()} for r in proxy.requests("POST")]
    assert sent and all(h["authorization"] == f"Bearer {token}" for h in sent)


def test_emulator_host_from_environment(
    fake_gcs: FakeGCS, gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url.removeprefix("http://"))
    archive = coldtier.open_archive(f"gs://{gcs_bucket}/{PREFIX}")  # anonymous: plain-HTTP emulator
    events = make_events("acme", 5)
    (key,) = archive.archive("acme", *window_of(events), events).keys
    assert written(HTTPBackdoor(fake_gcs, gcs_bucket, PREFIX)) == [key]


def test_missing_default_credentials_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    with pytest.raises(InvalidRequest, match="Application Default Credentials"):
        coldtier.open_archive("gs://bucket/x")
