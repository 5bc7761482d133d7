"""Case 11: ``coldtier archive`` of 1,000,000 JSON Lines events → local (in-process, one tenant).

Baseline: ``pyarrow.json.read_json`` of the same file (multi-threaded C++,
payloads read as structs, not kept as text, nothing checked) + ``write_table``
with coldtier's codec and row groups (its inferred types — structs, a
timestamp — do not take coldtier's per-column encodings), fsync, rename.
The CLI parses each line once in Python (shape, tenant, timestamp) and writes
payload and metadata back as compact JSON text; ``archive()`` then checks the
ids only (the JSON text is its own).  The baseline is an upper bound no
line-checking reader reaches: the ratio says what checking each line costs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.json as pajson

from coldtier import jsonl

from ._common import Row, cpu_note, interleave, median, sample_table, scratch
from .case1_arrow_local import bare_options, write_table_durably

EVENTS = 1_000_000


def write_lines(path: Path, events: int) -> None:
    with open(path, "wb") as f:
        for line in jsonl.dump_table(sample_table(events), "acme"):
            f.write(line)


def run(quick: bool = False) -> list[Row]:
    from coldtier.cli._main import run as cli

    reps = 1 if quick else 3
    with scratch("jsonl") as d:
        source = d / "events.jsonl"
        write_lines(source, EVENTS)
        size = os.path.getsize(source)
        counter = iter(range(10**6))

        def with_cli() -> None:
            root = d / f"archive{next(counter)}"
            root.mkdir()
            assert cli(["archive", str(root), str(source), "--tenant", "acme"]) == 0

        def bare() -> None:
            table = pajson.read_json(source)
            assert table.num_rows == EVENTS
            write_table_durably(table, str(d / f"bare{next(counter)}.parquet"), **bare_options())

        times = interleave({"cli": with_cli, "bare": bare}, reps, warmup=False)
    c, b = median(times["cli"]), median(times["bare"])
    return [
        Row(
            "11",
            f"coldtier archive, 1M JSON Lines events ({size / 2**20:.0f} MiB) → local; "
            "vs pyarrow.json.read_json + write_table",
            c,
            b,
            target="(reported)",
            note=f"{EVENTS / c / 1000:.0f}k events/s; " + cpu_note("cli", "bare"),
            samples=times,
        )
    ]
