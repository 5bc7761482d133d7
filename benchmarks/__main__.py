"""Run every benchmark case and print one table: ``python -m benchmarks [--quick] [CASE ...]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path

from ._common import Row, machine

CASES = {
    "1": "case1_arrow_local",
    "2": "case2_events_local",
    "3": "case3_arrow_s3",
    "4": "case4_stream_memory",
    "5": "case5_read_day",
    "6": "case6_bytes",
    "7": "case7_small_batches",
    "8": "case8_shared_archive",
    "9": "case9_reads_at_scale",
    "10": "case10_events_stream",
    "11": "case11_cli_jsonl",
    "12": "case12_verify_scale",
    "13": "case13_encryption",
    "otel": "case_otel",
}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value:.3f} s"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.2f} {unit}"


def table(rows: list[Row]) -> str:
    lines = [
        "| case | what | coldtier | baseline | ratio | target | met | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.2f}"
        met = {True: "yes", False: "**no**", None: ""}[r.passed]
        what = r.what + (f" — {r.note}" if r.note else "")
        cells = [r.case, what, fmt(r.coldtier, r.unit), fmt(r.baseline, r.unit), ratio, r.target, met, r.load]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "cases", nargs="*", metavar="CASE", help=f"cases to run, of {', '.join(CASES)} (default: all)"
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--json", type=Path, help="also write the rows and the machine as JSON here")
    args = parser.parse_args()
    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()), flush=True)
    rows: list[Row] = []
    began = time.perf_counter()
    for case in args.cases or list(CASES):
        module = importlib.import_module(f"benchmarks.{CASES[case]}")
        started = time.perf_counter()
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\ncase {case}: {(module.__doc__ or '').splitlines()[0]}  [load {load}]", flush=True)
        got = module.run(quick=args.quick)
        for r in got:
            r.load = load.split()[0]
        for r in got:
            ratio = "" if r.ratio is None else f"  ratio {r.ratio:.2f}"
            target = f"  ({r.target}: {'met' if r.passed else 'NOT met'})" if r.target else ""
            print(
                f"  {r.what}: coldtier {fmt(r.coldtier, r.unit)}, baseline {fmt(r.baseline, r.unit)}{ratio}{target}"
                + (f"  [{r.note}]" if r.note else ""),
                flush=True,
            )
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
        rows.extend(got)
    print(f"\nall cases in {time.perf_counter() - began:.0f} s; load average now {machine()['load']}\n")
    print(table(rows))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "rows": [{**r.__dict__, "ratio": r.ratio} for r in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
