"""A retention pass: archive expired events, and delete the originals only after success.

The store hands each tenant's expired window to coldtier *before* deleting it.
``archive`` returns only when every object is durable; on any error the pass
keeps the originals and tries again next time (a repeat is idempotent).
"""

from __future__ import annotations

import logging
import sys
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

import coldtier

log = logging.getLogger("retention")


def retention_pass(
    archive: coldtier.Archive,
    expired: Iterable[tuple[str, datetime, datetime, list[coldtier.Event]]],
    delete_originals: Callable[[str, datetime, datetime], None],
) -> tuple[int, int]:
    """Archive each expired window, then delete it; returns (archived, kept)."""
    archived = kept = 0
    for tenant, start, end, events in expired:
        try:
            receipt = archive.archive(tenant, start, end, events)
        except coldtier.InvalidRequest as exc:
            log.error("refused %s [%s, %s]: %s; keeping the originals", tenant, start, end, exc)
            kept += 1
            continue
        except coldtier.ColdTierError as exc:  # ArchiveWriteError, IntegrityError, ...
            log.warning("not archived %s [%s, %s]: %s; keeping the originals", tenant, start, end, exc)
            kept += 1
            continue
        delete_originals(tenant, start, end)  # only now: the archive is durable
        log.info("archived %s: %d events in %s", tenant, receipt.events, receipt.keys)
        archived += 1
    return archived, kept


def sample_events(tenant: str, day: datetime, count: int) -> list[coldtier.Event]:
    """``count`` orders of one tenant, a minute apart from ``day``: what the store would hand over."""
    return [
        coldtier.Event(
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"retention-example/{tenant}/{day:%Y-%m-%d}/{i}"),
            event_type="order.created" if i % 2 == 0 else "order.paid",
            entity_id=f"order-{i // 2}",
            tenant_id=tenant,
            payload={"order": i // 2, "amount": round(10 + i * 0.25, 2)},
            timestamp=day + timedelta(minutes=i),
        )
        for i in range(count)
    ]


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    url = sys.argv[1] if len(sys.argv) > 1 else "demo-archive"
    store: dict[tuple[str, datetime], list[coldtier.Event]] = {}
    for tenant in ("acme", "globex"):
        day = datetime(2024, 1, 1, tzinfo=UTC)
        store[(tenant, day)] = sample_events(tenant, day, 500)

    def expired() -> Iterable[tuple[str, datetime, datetime, list[coldtier.Event]]]:
        for (tenant, day), events in list(store.items()):
            yield tenant, day, day + timedelta(days=1) - timedelta(microseconds=1), events

    def delete(tenant: str, start: datetime, end: datetime) -> None:
        del store[(tenant, start)]

    done, kept = retention_pass(coldtier.open_archive(url), expired(), delete)
    print(f"archived {done} windows, kept {kept}; originals left: {len(store)}")
