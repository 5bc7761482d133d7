"""Case 13: 1,000,000 events, encrypted (PME, per-tenant key) vs plaintext, archive and read, local.

Baseline: the same coldtier call on the same archive settings without
``encryption`` (the cost of encryption itself is the question; case 1 and
case 5 compare plaintext coldtier with bare pyarrow).  The keyring is a
``file://`` keyring without a master (the tenant key is read and unwrapped
from disk for every object, as in production); targets from issue 13:
archive at most 1.3 times plaintext, read at most 1.3 times.
"""

from __future__ import annotations

from datetime import UTC, datetime

import coldtier

from ._common import CPU, Row, interleave, median, sample_table, scratch

EVENTS = 1_000_000
START = datetime(2024, 3, 1, tzinfo=UTC)
END = datetime(2024, 3, 2, tzinfo=UTC)


def run(quick: bool = False) -> list[Row]:
    table = sample_table(EVENTS)
    reps = 3 if quick else 5
    rows = []
    with scratch("keys") as keys, scratch("plain") as plain_root, scratch("sealed") as sealed_root:
        ring = (keys / "keyring").as_uri()

        def archive(**options: object) -> None:
            with scratch("write") as d:
                receipt = coldtier.open_archive(str(d), **options).archive("acme", START, END, table)
                assert receipt.events == EVENTS

        times = interleave({"plain": lambda: archive(), "encrypted": lambda: archive(encryption=ring)}, reps)
        rows.append(_row("13", "1M events, Arrow → local, encrypted vs plaintext archive", times))

        plain = coldtier.open_archive(str(plain_root))
        sealed = coldtier.open_archive(str(sealed_root), encryption=ring)
        plain.archive("acme", START, END, table)
        sealed.archive("acme", START, END, table)

        def read(archive: coldtier.Archive) -> None:
            assert archive.read("acme").num_rows == EVENTS

        reads = interleave({"plain-read": lambda: read(plain), "encrypted-read": lambda: read(sealed)}, reps)
        rows.append(_row("13", "1M events, local → Arrow, encrypted vs plaintext read", reads))
    return rows


def _row(case: str, what: str, times: dict[str, list[float]]) -> Row:
    base_name, name = list(times)
    base, t = median(times[base_name]), median(times[name])
    return Row(
        case,
        what,
        t,
        base,
        target="target ≤ 1.30",
        passed=t / base <= 1.30,
        note=f"CPU {median(CPU[name]):.2f} s vs {median(CPU[base_name]):.2f} s",
        samples={name: times[name], base_name: times[base_name]},
    )
