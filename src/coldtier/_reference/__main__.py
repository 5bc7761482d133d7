"""``python -m coldtier._reference [--text] [--all] > docs/options.md``: print the options reference."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from . import reference


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in args if a not in ("--text", "--all")]
    if unknown:
        print(f"usage: python -m coldtier._reference [--text] [--all]; unknown {unknown}", file=sys.stderr)
        return 2
    sys.stdout.write(reference(plain="--text" in args, plugins="--all" in args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
