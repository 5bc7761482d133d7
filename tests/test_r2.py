"""The R2 backend: the shipped suites against moto, and what makes R2 different."""

from __future__ import annotations

import re
from typing import Any

import pytest

import coldtier
from coldtier import InvalidRequest
from coldtier.testing import (
    ArchiveTests,
    FaultProxy,
    HostileInputTests,
    ModelTests,
    WireFaultTests,
    make_events,
    window_of,
)
from tests._moto import CREDENTIALS, BotoBackdoor, MotoRig, archive_url
from tests._reliability import Figures


class R2Rig(MotoRig):
    backend_name = scheme = "r2"
    prefix = "cold"


class TestR2(R2Rig, ArchiveTests):
    pass


class TestR2Model(R2Rig, Figures, ModelTests):
    # The S3 code path with R2's settings (region auto, checksums when required);
    # test_s3.py draws 25 schedules on it, at about 4 s each on moto.
    max_examples = 5


class TestR2Hostile(R2Rig, Figures, HostileInputTests):
    pass


class TestR2WireFaults(R2Rig, Figures, WireFaultTests):
    # R2 is the S3 code path with other settings: the random schedules suffice
    # (test_s3.py runs the rest, which takes seconds per case in backoff).
    test_faults_past_the_retry_budget_fail_clearly_in_bounded_time = None
    test_slow_responses_below_the_timeout_only_cost_time = None
    test_slow_responses_past_the_timeout_fail_in_bounded_time = None


def test_puts_are_signed_for_region_auto_with_only_our_checksum(moto_url: str, fresh_bucket: str) -> None:
    events = make_events("acme", 10)
    with FaultProxy(moto_url) as proxy:
        archive = coldtier.open_archive(archive_url("r2", fresh_bucket, "p", proxy.url), **CREDENTIALS)
        archive.archive("acme", *window_of(events), events)
        put, _receipt = proxy.requests("PUT")  # the object, then the ledger's receipt
    headers = {k.lower(): v for k, v in put.headers.items()}
    assert re.search(r"Credential=[^/]+/\d{8}/auto/s3/aws4_request", headers["authorization"])
    assert headers["if-none-match"] == "*"
    assert "x-amz-checksum-sha256" in headers
    # when_required: botocore adds no CRC of its own and no trailer encoding
    assert [h for h in headers if h.startswith("x-amz-checksum-")] == ["x-amz-checksum-sha256"]
    assert "x-amz-sdk-checksum-algorithm" not in headers and "aws-chunked" not in headers.get(
        "content-encoding", ""
    )


@pytest.mark.parametrize(
    ("options", "host"),
    [
        ({"account_id": "0123456789abcdef0123456789abcdef"}, "0123456789abcdef0123456789abcdef"),
        ({"account_id": "abc123", "jurisdiction": "eu"}, "abc123.eu"),
        ({"account_id": "abc123", "jurisdiction": "fedramp"}, "abc123.fedramp"),
    ],
)
def test_endpoint_from_account_and_jurisdiction(options: dict[str, str], host: str) -> None:
    archive: Any = coldtier.open_archive("r2://bucket/prefix", **options)
    assert archive.store._fs.endpoint_url == f"https://{host}.r2.cloudflarestorage.com"
    assert archive.description() == "r2://bucket/prefix"
    assert options["account_id"] not in repr(archive)


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("account_id=abc&object_lock_mode=COMPLIANCE&object_lock_days=3", "Object Lock"),
        ("account_id=abc&object_lock_days=3", "Object Lock"),
        ("account_id=abc&sse=aws:kms", "SSE-KMS"),
        ("account_id=abc&kms_key_id=k", "SSE-KMS"),
        ("", "account_id"),
        ("account_id=evil.example.com/x", "account_id"),
        ("account_id=abc&jurisdiction=mars", "jurisdiction"),
        ("account_id=abc&storage_class=GLACIER", "storage_class"),
        ("account_id=abc&region=us-east-1", "unknown option 'region'.*account_id.*jurisdiction"),
    ],
)
def test_refused_options(query: str, match: str) -> None:
    with pytest.raises(InvalidRequest, match=match):
        coldtier.open_archive(f"r2://bucket/prefix?{query}")


def test_storage_class_infrequent_access(moto_url: str, fresh_bucket: str, s3_client: Any) -> None:
    events = make_events("acme", 10)
    url = archive_url("r2", fresh_bucket, "p", moto_url) + "&storage_class=STANDARD_IA"
    (key,) = coldtier.open_archive(url, **CREDENTIALS).archive("acme", *window_of(events), events).keys
    assert BotoBackdoor(s3_client, fresh_bucket, "p").head(key)["StorageClass"] == "STANDARD_IA"
