"""Write the figures of the last reliability run into RELIABILITY.md.

    python -m tests.reliability_report [FIGURES.json] [RELIABILITY.md]

Reads the counts the reliability tests saved (``.reliability/last-run.json``
by default, see ``tests/_reliability.py``) and replaces the table between the
``<!-- figures -->`` and ``<!-- /figures -->`` markers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests._reliability import FIGURES_PATH

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- figures -->", "<!-- /figures -->"
COLUMNS = [
    ("area", "Area"),
    ("backend", "Backend"),
    ("trials", "Trials"),
    ("faults", "Faults injected"),
    ("inputs", "Inputs tried"),
    ("events_checked", "Events checked"),
    ("errors_raised", "Clear errors raised"),
    ("events_lost", "Events lost"),
    ("partial_objects", "Partial objects seen"),
]


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value % 1 else f"{int(value):,}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(rows: list[dict[str, object]]) -> str:
    lines = [
        "| " + " | ".join(title for _, title in COLUMNS) + " |",
        "|" + "|".join("---" if i < 2 else "--:" for i in range(len(COLUMNS))) + "|",
    ]
    totals: dict[str, float] = {}
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(key, 0)) for key, _ in COLUMNS) + " |")
        for key, _ in COLUMNS[2:]:
            totals[key] = totals.get(key, 0) + float(row.get(key, 0) or 0)  # type: ignore[arg-type]
    lines.append(
        "| **total** | | " + " | ".join(f"**{_cell(totals.get(key, 0))}**" for key, _ in COLUMNS[2:]) + " |"
    )
    runs = sorted({str(r.get("run", "")) for r in rows})
    notes = [f"- *{r['area']}, {r['backend']}*: {r['note']}" for r in rows if r.get("note")]
    text = "\n".join(lines)
    text += f"\n\nRun(s): {', '.join(runs)} (UTC).\n"
    if notes:
        text += "\n" + "\n".join(notes) + "\n"
    return text


def main(argv: list[str]) -> int:
    figures = Path(argv[0]) if argv else FIGURES_PATH
    target = Path(argv[1]) if len(argv) > 1 else ROOT / "RELIABILITY.md"
    rows = json.loads(figures.read_text())["rows"]
    document = target.read_text()
    head, _, rest = document.partition(START)
    _, _, tail = rest.partition(END)
    target.write_text(f"{head}{START}\n{table(rows)}{END}{tail}")
    lost = sum(int(r.get("events_lost", 0)) for r in rows)
    partial = sum(int(r.get("partial_objects", 0)) for r in rows)
    print(f"{len(rows)} rows written to {target}; events lost {lost}, partial objects {partial}")
    return 1 if lost or partial else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
