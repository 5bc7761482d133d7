"""The S3 backend against moto: conformance suite, options, faults, request count."""

from __future__ import annotations

from typing import Any

import pytest

import coldtier
from coldtier.testing import ArchiveTests
from tests._moto import CREDENTIALS, BotoBackdoor


class TestS3(ArchiveTests):
    @pytest.fixture
    def make_archive(self, moto_url: str, fresh_bucket: str):
        url = f"s3://{fresh_bucket}/cold/tier?endpoint_url={moto_url}&region=us-east-1"
        return lambda **options: coldtier.open_archive(url, **CREDENTIALS, **options)

    @pytest.fixture
    def backdoor(self, s3_client: Any, fresh_bucket: str) -> BotoBackdoor:
        return BotoBackdoor(s3_client, fresh_bucket, "cold/tier")
