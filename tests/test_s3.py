"""The S3 backend against moto: the shipped suites, options, faults, request count."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import coldtier
from coldtier import ArchiveWriteError, InvalidRequest, PreconditionUnsupported
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
from tests._moto import CREDENTIALS, BotoBackdoor, MotoRig, archive_url
from tests._reliability import Figures


class TestS3(MotoRig, ArchiveTests):
    pass


class TestS3Model(MotoRig, Figures, ModelTests):
    pass


class TestS3Hostile(MotoRig, Figures, HostileInputTests):
    pass


class TestS3WireFaults(MotoRig, Figures, WireFaultTests):
    pass


# -- options ---------------------------------------------------------------------


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(InvalidRequest, match="unknown option 'storage_klass'") as info:
        coldtier.open_archive("s3://bucket/prefix?storage_klass=GLACIER_IR")
    for name in (
        "endpoint_url",
        "region",
        "profile",
        "storage_class",
        "sse",
        "kms_key_id",
        "object_lock_days",
    ):
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("s3:///prefix", "no bucket"),
        ("s3://b/p?object_lock_mode=COMPLIANCE", "together"),
        ("s3://b/p?object_lock_days=3", "together"),
        ("s3://b/p?object_lock_mode=FOREVER&object_lock_days=3", "object_lock_mode"),
        ("s3://b/p?kms_key_id=k", "sse=aws:kms"),
        ("s3://b/p?sse=aws:kms&kms_key_id=k&storage_class=COLD", "storage_class"),
        ("s3://b/p?max_object_bytes=6000000000", "at most"),
        ("s3://b/p?object_lock_mode=COMPLIANCE&object_lock_days=0", "positive"),
    ],
)
def test_bad_options_are_refused(url: str, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        coldtier.open_archive(url)


def test_storage_class_sse_checksum_and_metadata_are_applied(
    moto_url: str, fresh_bucket: str, s3_client: Any
) -> None:
    events = make_events("acme", 10)
    url = archive_url("s3", fresh_bucket, "p", moto_url)
    archive = coldtier.open_archive(
        url, storage_class="GLACIER_IR", sse="aws:kms", kms_key_id="alias/archive", **CREDENTIALS
    )
    (key,) = archive.archive("acme", *window_of(events), events).keys
    backdoor = BotoBackdoor(s3_client, fresh_bucket, "p")
    sha256 = hashlib.sha256(backdoor.get(key)).hexdigest()
    head = s3_client.head_object(Bucket=fresh_bucket, Key=f"p/{key}", ChecksumMode="ENABLED")
    assert head["StorageClass"] == "GLACIER_IR"
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"].endswith("alias/archive")
    table = pq.read_table(pa.BufferReader(backdoor.get(key)))
    assert head["Metadata"] == {"coldtier-sha256": sha256, "coldtier-digest": coldtier.logical_digest(table)}
    assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha256
    aes = coldtier.open_archive(archive_url("s3", fresh_bucket, "q", moto_url), sse="AES256", **CREDENTIALS)
    (key,) = aes.archive("acme", *window_of(events), events).keys
    assert BotoBackdoor(s3_client, fresh_bucket, "q").head(key)["ServerSideEncryption"] == "AES256"


def test_object_lock_retention_is_applied(moto_url: str, s3_client: Any, fresh_bucket: str) -> None:
    bucket = f"ct-lock-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    events = make_events("acme", 10)
    url = archive_url("s3", bucket, "p", moto_url) + "&object_lock_mode=COMPLIANCE&object_lock_days=7"
    archive = coldtier.open_archive(url, **CREDENTIALS)
    before = datetime.now(UTC)
    (key,) = archive.archive("acme", *window_of(events), events).keys
    head = BotoBackdoor(s3_client, bucket, "p").head(key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    until = head["ObjectLockRetainUntilDate"]
    assert before + timedelta(days=7) - timedelta(seconds=5) <= until <= datetime.now(UTC) + timedelta(days=7)
    archive.probe()
    # The bucket is versioned: the canary's version stays behind its delete
    # marker, but it was written without retention, so it can be removed.
    (canary,) = s3_client.list_object_versions(Bucket=bucket, Prefix="p/_coldtier~probe/")["Versions"]
    assert "ObjectLockMode" not in s3_client.head_object(
        Bucket=bucket, Key=canary["Key"], VersionId=canary["VersionId"]
    )
    s3_client.delete_object(Bucket=bucket, Key=canary["Key"], VersionId=canary["VersionId"])
    unlocked = coldtier.open_archive(url.replace(bucket, fresh_bucket), **CREDENTIALS)
    with pytest.raises(ArchiveWriteError, match="ObjectLockConfiguration"):
        unlocked.archive("acme", *window_of(events), events)


# -- credentials -----------------------------------------------------------------


def test_credentials_never_leak(moto_url: str, fresh_bucket: str, caplog: pytest.LogCaptureFixture) -> None:
    token = "session-token-do-not-leak"
    with pytest.raises(InvalidRequest) as info:
        coldtier.open_archive(f"s3://AKIA:{CREDENTIALS['secret']}@bucket/prefix")
    assert CREDENTIALS["secret"] not in str(info.value)
    with pytest.raises(InvalidRequest, match="credential") as info:
        coldtier.open_archive(f"s3://bucket/prefix?secret={CREDENTIALS['secret']}")
    assert CREDENTIALS["secret"] not in str(info.value)
    with FaultProxy(moto_url) as proxy:
        proxy.add(Rule(action="status", method="PUT", status=503, times=None))
        url = archive_url("s3", fresh_bucket, "p", proxy.url)
        archive = coldtier.open_archive(url, max_attempts=2, token=token, **CREDENTIALS)
        assert archive.description() == f"s3://{fresh_bucket}/p"
        events = make_events("acme", 10)
        caplog.set_level(logging.DEBUG)
        with pytest.raises(ArchiveWriteError) as failed:
            archive.archive("acme", *window_of(events), events)
    texts = [repr(archive), archive.description()]
    error: BaseException | None = failed.value
    while error is not None:
        texts += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    for secret in (CREDENTIALS["secret"], token):
        assert not [t for t in texts if secret in t]
    # The secret key is never logged, even at DEBUG.  botocore's own DEBUG
    # records show the request headers, session token included (its known
    # behaviour), so the token is checked from INFO up.
    assert not [r for r in caplog.records if CREDENTIALS["secret"] in r.getMessage()]
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and token in r.getMessage()]


def test_credentials_from_the_aws_chain(
    moto_url: str, fresh_bucket: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "credentials").write_text(
        "[archiver]\naws_access_key_id = AKIAPROFILE\naws_secret_access_key = profile-secret\n"
    )
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    events = make_events("acme", 10)
    with FaultProxy(moto_url) as proxy:
        url = archive_url("s3", fresh_bucket, "p", proxy.url)
        coldtier.open_archive(url, profile="archiver").archive("acme", *window_of(events), events)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENV")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
        coldtier.open_archive(url).archive("acme", *window_of(events), events)
        auth = [r.headers["Authorization"] for r in proxy.requests()]
    assert "Credential=AKIAPROFILE/" in auth[0] and "Credential=AKIAFROMENV/" in auth[-1]


# -- faults at the wire (both S3 and R2) -------------------------------------------


@pytest.fixture(params=["s3", "r2"])
def scheme(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def proxy(moto_url: str):
    with FaultProxy(moto_url) as proxy:
        yield proxy


@pytest.fixture
def through_proxy(scheme: str, fresh_bucket: str, proxy: FaultProxy):
    url = archive_url(scheme, fresh_bucket, "p", proxy.url)
    return lambda **options: coldtier.open_archive(url, **CREDENTIALS, **options)


@pytest.fixture
def stored(s3_client: Any, fresh_bucket: str) -> BotoBackdoor:
    return BotoBackdoor(s3_client, fresh_bucket, "p")


#: The ledger's receipt, one small create-only PUT after a call's objects (DESIGN.md §10).
RECEIPT = ("PUT", 200)


def _calls(proxy: FaultProxy) -> list[tuple[str, int | None]]:
    return [(r.method, r.status) for r in proxy.requests()]


def test_one_archive_call_is_one_put(through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor) -> None:
    events = make_events("acme", 100)
    archive = through_proxy()
    receipt = archive.archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", 200), RECEIPT]
    put = proxy.requests()[0]
    assert put.headers["If-None-Match"] == "*"
    assert (
        put.headers["x-amz-meta-coldtier-sha256"] == hashlib.sha256(stored.get(receipt.keys[0])).hexdigest()
    )
    proxy.clear()
    assert not archive.archive("acme", *window_of(events), events).created
    # Refused, confirmed without a download; the receipt is there too.
    assert _calls(proxy) == [("PUT", 412), ("HEAD", 200), ("PUT", 412)]
    proxy.clear()
    split = through_proxy(object_events=40).archive("acme", *window_of(events), events)
    assert len(split.keys) == 3 and sorted(_calls(proxy)) == [("PUT", 200)] * 3 + [RECEIPT]
    proxy.clear()
    assert archive.read("acme", *window_of(events)).num_rows == 100
    assert _calls(proxy) == [("GET", 200)] * 6  # 2 listings + a GET for each of the 4 objects


def test_lost_response_to_a_put_still_one_object(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    proxy.add(Rule(action="drop", method="PUT", times=1))
    events = make_events("acme", 100)
    archive = through_proxy()
    receipt = archive.archive("acme", *window_of(events), events)
    # The first PUT was stored but its answer lost; the retry is refused and confirmed.
    assert _calls(proxy) == [("PUT", 200), ("PUT", 412), ("HEAD", 200), RECEIPT]
    assert written(stored) == list(receipt.keys)
    assert archive.read("acme").num_rows == 100 and archive.verify().ok


def test_503_twice_then_success(through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor) -> None:
    proxy.add(Rule(action="status", method="PUT", status=503, times=2))
    events = make_events("acme", 100)
    receipt = through_proxy().archive("acme", *window_of(events), events)
    assert receipt.created and _calls(proxy) == [("PUT", 503), ("PUT", 503), ("PUT", 200), RECEIPT]
    assert written(stored) == list(receipt.keys)


def test_503_forever_fails_in_bounded_time(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    proxy.add(Rule(action="status", method="PUT", status=503, times=None))
    events = make_events("acme", 100)
    began = time.monotonic()
    with pytest.raises(ArchiveWriteError, match="keep the originals"):
        through_proxy(max_attempts=3).archive("acme", *window_of(events), events)
    assert time.monotonic() - began < 10
    assert _calls(proxy) == [("PUT", 503)] * 3
    assert stored.list_keys() == []


def test_conditional_conflict_409_is_retried(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    body = b"<Error><Code>ConditionalRequestConflict</Code><Message>in flight</Message></Error>"
    proxy.add(Rule(action="status", method="PUT", status=409, body=body, times=2))
    events = make_events("acme", 100)
    receipt = through_proxy().archive("acme", *window_of(events), events)
    assert receipt.created and _calls(proxy) == [("PUT", 409), ("PUT", 409), ("PUT", 200), RECEIPT]
    assert written(stored) == list(receipt.keys)


@pytest.mark.parametrize("scheme", ["s3"])  # same code path for r2; the backoff takes seconds
def test_conditional_conflict_409_forever_fails_after_bounded_retries(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    body = b"<Error><Code>ConditionalRequestConflict</Code><Message>in flight</Message></Error>"
    proxy.add(Rule(action="status", method="PUT", status=409, body=body, times=None))
    events = make_events("acme", 10)
    with pytest.raises(ArchiveWriteError, match="ConditionalRequestConflict"):
        through_proxy().archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", 409)] * 6 and stored.list_keys() == []


def test_other_4xx_is_not_retried(through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor) -> None:
    body = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
    proxy.add(Rule(action="status", method="PUT", status=403, body=body, times=None))
    events = make_events("acme", 10)
    with pytest.raises(ArchiveWriteError, match="AccessDenied"):
        through_proxy().archive("acme", *window_of(events), events)
    assert _calls(proxy) == [("PUT", 403)] and stored.list_keys() == []


@pytest.mark.parametrize("times", [1, None])
def test_connection_cut_mid_upload_leaves_no_partial_object(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor, times: int | None
) -> None:
    proxy.add(Rule(action="reset", method="PUT", times=times))
    events = make_events("acme", 2000)
    archive = through_proxy(max_attempts=2)
    if times is None:
        with pytest.raises(ArchiveWriteError):
            archive.archive("acme", *window_of(events), events)
        assert stored.list_keys() == []
    else:
        receipt = archive.archive("acme", *window_of(events), events)
        assert written(stored) == list(receipt.keys) and archive.verify().ok


def test_probe_catches_a_store_that_ignores_if_none_match(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    through_proxy().probe()
    proxy.add(Rule(action="pass", method="PUT", strip_header="If-None-Match", times=None))
    with pytest.raises(PreconditionUnsupported, match="second create"):
        through_proxy().probe()
    assert stored.list_keys() == []


def test_identical_object_without_our_metadata_is_confirmed_by_download(
    through_proxy: Any, proxy: FaultProxy, stored: BotoBackdoor
) -> None:
    events = make_events("acme", 50)
    archive = through_proxy()
    (key,) = archive.archive("acme", *window_of(events), events).keys
    data = stored.get(key)
    stored.client.delete_object(Bucket=stored.bucket, Key=stored.prefix + key)
    stored.put(key, data)  # same bytes, written by another tool: no coldtier-sha256
    proxy.clear()
    assert not archive.archive("acme", *window_of(events), events).created
    assert _calls(proxy) == [("PUT", 412), ("HEAD", 200), ("GET", 200), ("PUT", 412)]  # receipt there too
