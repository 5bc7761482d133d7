"""The engine's own options, shared by every backend (``max_object_bytes``, ``workers``, ...)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._crypto import Cipher
from .._errors import InvalidRequest
from .._options import ENGINE_OPTIONS
from ..store import ObjectStore

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True)
class Settings:
    """How the engine splits, encodes and parallelises; see ``ENGINE_OPTIONS`` for each meaning."""

    max_object_bytes: int = ENGINE_OPTIONS["max_object_bytes"].default
    object_events: int = ENGINE_OPTIONS["object_events"].default
    row_group_events: int = ENGINE_OPTIONS["row_group_events"].default
    compression: str = ENGINE_OPTIONS["compression"].default
    compression_level: int | None = None
    workers: int = min(4, os.cpu_count() or 1)  # ENGINE_OPTIONS["workers"].default says so
    encryption: Cipher | None = None  # per-tenant keys (coldtier._crypto); None: plaintext objects
    ledger: bool = ENGINE_OPTIONS["ledger"].default

    @classmethod
    def for_store(cls, store: type[ObjectStore] | ObjectStore, options: Mapping[str, Any]) -> Settings:
        """The settings ``options`` ask for, with the store's defaults and limits applied."""
        given = {k: v for k, v in options.items() if k in cls.__dataclass_fields__}
        if store.default_object_bytes is not None:
            given.setdefault("max_object_bytes", store.default_object_bytes)
        if given.get("compression") is None:
            given.pop("compression", None)
        if given.get("encryption") is not None:
            given["encryption"] = Cipher.of(given["encryption"])
        settings = cls(**given)
        limit = store.max_put_bytes
        if limit is not None and settings.max_object_bytes > limit:
            raise InvalidRequest(f"max_object_bytes must be at most {limit} (one put to {store.scheme}://)")
        return settings

    def encoding(self) -> dict[str, Any]:
        """Keyword arguments of :func:`coldtier._format.encode`."""
        return {
            "compression": self.compression,
            "compression_level": self.compression_level,
            "row_group_events": self.row_group_events,
        }
