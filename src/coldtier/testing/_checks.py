"""What is physically stored, judged through a backdoor (no pytest needed)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from coldtier import SCHEMA, logical_digest

from ._backdoor import Backdoor

__all__ = ["FINAL_KEY_RE", "LEDGER_PREFIX", "RESERVED_PREFIX", "StoreCheck", "check_store", "written"]

#: Keys under this prefix belong to coldtier itself (the probe's canaries); no tenant can be named so.
RESERVED_PREFIX = "_coldtier~"
#: Where archive, repack and expire write their receipts: coldtier's own, and expected after every call.
LEDGER_PREFIX = f"{RESERVED_PREFIX}ledger/"
#: A final object key: ``<tenant>/<yyyy-mm>/archive.<tenant>.<start>-<end>.<digest>.parquet``.
FINAL_KEY_RE = re.compile(
    r"(?:.*/)?(?P<tenant>[A-Za-z0-9._-]+)/\d{4}-\d\d/archive\.(?P=tenant)\."
    r"\d{4}-\d\d-\d\dT\d{6}Z-\d{4}-\d\d-\d\dT\d{6}Z\.(?P<digest>[0-9a-f]{16})\.parquet"
)


@dataclass
class StoreCheck:
    """What is physically stored, seen through a backdoor."""

    final: list[str] = field(default_factory=list)  # keys that look like archive objects
    partial: list[str] = field(default_factory=list)  # final keys whose events do not match the name
    other: list[str] = field(default_factory=list)  # anything else (temp files, canaries)
    ledger: list[str] = field(default_factory=list)  # the ledger's receipts (DESIGN.md §10)

    @property
    def temp(self) -> list[str]:
        return [k for k in self.other if "/.~coldtier." in f"/{k}"]


def check_store(backdoor: Backdoor, ignore_prefix: str = RESERVED_PREFIX, under: str = "") -> StoreCheck:
    """Check every object under a final key (and under ``under``, if given) against the digest in its name.

    Format 2: the object must decode (with pyarrow, outside coldtier's read
    path) and its events must have the logical digest its name starts with.
    """
    check = StoreCheck()
    for key in backdoor.list_keys():
        if not key.startswith(under):
            continue
        if key.startswith(LEDGER_PREFIX):
            check.ledger.append(key)
            continue
        if key.startswith(ignore_prefix):
            check.other.append(key)
            continue
        m = FINAL_KEY_RE.fullmatch(key)
        if m is None:
            check.other.append(key)
            continue
        check.final.append(key)
        if _events_digest(backdoor.get(key)) != m["digest"]:
            check.partial.append(key)
    return check


def _events_digest(data: bytes) -> str | None:
    """The first 16 digits of the logical digest of an object's events; None if it does not decode."""
    try:
        table = pq.read_table(pa.BufferReader(data), use_threads=False)
        return logical_digest(table.select(list(SCHEMA.names)).cast(SCHEMA))[:16]
    except (pa.ArrowException, OSError, ValueError):
        return None


def written(backdoor: Backdoor) -> list[str]:
    """Every stored key but coldtier's own (the probe's canaries, the ledger's receipts)."""
    return [k for k in backdoor.list_keys() if not k.startswith(RESERVED_PREFIX)]
