"""``python -m coldtier.cli``."""

from ._main import main

main()
