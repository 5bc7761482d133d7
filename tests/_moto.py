"""moto's S3 server as pytest fixtures: one per session, a fresh bucket per test.

The server listens on 127.0.0.1 on an ephemeral port (a fixed port deadlocks
under xdist).  Tests never share a bucket, so no reset is needed between them;
the backdoor is a boto3 client of its own, never the code under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

import coldtier

__all__ = ["CREDENTIALS", "BotoBackdoor", "MotoRig", "archive_url", "fresh_bucket", "moto_url", "s3_client"]

#: What tests pass as keyword options; moto accepts any credentials.
CREDENTIALS = {"key": "AKIAMOTOTESTING", "secret": "moto-secret-do-not-leak"}


def archive_url(scheme: str, bucket: str, prefix: str, endpoint: str) -> str:
    """An ``s3://`` or ``r2://`` URL on moto (or a proxy in front of it) at ``endpoint``."""
    region = "&region=us-east-1" if scheme == "s3" else ""
    return f"{scheme}://{bucket}/{prefix}?endpoint_url={endpoint}{region}"


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_client(moto_url: str) -> Iterator[Any]:
    """A boto3 client on moto, independent of coldtier and s3fs."""
    client = boto3.client(
        "s3",
        endpoint_url=moto_url,
        region_name="us-east-1",
        aws_access_key_id=CREDENTIALS["key"],
        aws_secret_access_key=CREDENTIALS["secret"],
        config=Config(retries={"mode": "standard", "total_max_attempts": 2}),
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def fresh_bucket(s3_client: Any) -> str:
    """A new, empty bucket for this test."""
    name = f"ct-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


class BotoBackdoor:
    """A :class:`coldtier.testing.Backdoor` on one bucket/prefix through boto3."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""

    def list_keys(self) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        return sorted(o["Key"][len(self.prefix) :] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        body = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=data)

    def head(self, key: str) -> dict[str, Any]:
        head: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self.prefix + key)
        return head


class MotoRig:
    """The fixtures of coldtier.testing's suites for an ``s3://`` or ``r2://`` archive on moto.

    A fresh bucket per test, the archive under :attr:`prefix`; every suite
    (conformance, model, hostile input, wire faults) can be mixed in after it.
    """

    backend_name: ClassVar[str] = "s3"
    scheme: ClassVar[str] = "s3"
    prefix: ClassVar[str] = "cold/tier"

    @pytest.fixture
    def upstream(self, moto_url: str) -> str:
        return moto_url

    @pytest.fixture
    def make_archive_through(self, fresh_bucket: str) -> Any:
        def make(endpoint: str, **options: Any) -> coldtier.Archive:
            url = archive_url(self.scheme, fresh_bucket, self.prefix, endpoint)
            return coldtier.open_archive(url, **CREDENTIALS, **options)

        return make

    @pytest.fixture
    def make_archive(self, upstream: str, make_archive_through: Any) -> Any:
        return lambda **options: make_archive_through(upstream, **options)

    @pytest.fixture
    def backdoor(self, s3_client: Any, fresh_bucket: str) -> BotoBackdoor:
        return BotoBackdoor(s3_client, fresh_bucket, self.prefix)
