"""Shared fixtures; emulator fixtures live beside the tests that need them."""

from __future__ import annotations

from tests._fakegcs import *  # noqa: F403 - fake-gcs-server fixtures for the GCS tests
from tests._moto import *  # noqa: F403 - moto fixtures for the S3 and R2 tests
