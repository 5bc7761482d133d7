"""Deterministic sample events for tests, examples and benchmarks."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa

from coldtier import Event

__all__ = ["make_events", "make_table", "window_of"]

_TYPES = ("order.created", "order.paid", "order.shipped", "user.login", "user.updated")


def make_events(
    tenant_id: str,
    count: int,
    *,
    start: datetime = datetime(2024, 3, 1, tzinfo=UTC),
    step: timedelta = timedelta(seconds=7),
    seed: int = 0,
) -> list[Event]:
    """``count`` realistic events of one tenant, ``step`` apart from ``start``."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        kind = _TYPES[rng.randrange(len(_TYPES))]
        events.append(
            Event(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                event_type=kind,
                entity_id=f"{kind.split('.')[0]}-{rng.randrange(1000)}",
                tenant_id=tenant_id,
                payload={
                    "n": i,
                    "amount": rng.randrange(10_000) / 100,
                    "note": "café ☕",
                    "tags": ["a", "b"][: rng.randrange(3)],
                },
                timestamp=start + step * i,
                metadata={"source": "test", "trace": rng.randrange(1 << 30)} if i % 3 else None,
                version=1 + i % 3,
            )
        )
    return events


def window_of(events: list[Event]) -> tuple[datetime, datetime]:
    """The tightest window holding ``events``."""
    stamps = [e.timestamp for e in events]
    return min(stamps), max(stamps)


def make_table(
    count: int, *, start_us: int = 1_709_251_200_000_000, step_us: int = 1_000, seed: int = 0
) -> pa.Table:
    """A large Arrow batch built column-wise (fast), timestamps ``step_us`` apart."""
    import numpy as np  # noqa: PLC0415 - only the benchmarks and large tests need numpy

    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, size=(count, 16), dtype=np.uint8)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    hexed = [bytes(row).hex() for row in raw]
    ids = [f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in hexed]
    kinds = rng.integers(0, len(_TYPES), size=count)
    amounts = rng.integers(0, 100_000, size=count)
    entities = rng.integers(0, 5_000, size=count)
    return pa.table(
        {
            "event_id": pa.array(ids, pa.string()),
            "event_type": pa.array([_TYPES[k] for k in kinds], pa.string()),
            "entity_id": pa.array([f"entity-{e}" for e in entities], pa.string()),
            "payload": pa.array(
                [f'{{"n":{i},"amount":{a / 100},"currency":"EUR"}}' for i, a in enumerate(amounts)],
                pa.string(),
            ),
            "timestamp": pa.array(start_us + np.arange(count, dtype=np.int64) * step_us, pa.timestamp("us")),
            "metadata": pa.array(
                [None if i % 3 == 0 else '{"source":"bench"}' for i in range(count)], pa.string()
            ),
            "version": pa.array(np.ones(count, dtype=np.uint64), pa.uint64()),
        }
    )
