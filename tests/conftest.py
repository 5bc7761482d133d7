"""Shared fixtures; emulator fixtures live beside the tests that need them."""

from __future__ import annotations
