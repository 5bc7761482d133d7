"""coldtier against the bare libraries: ``python -m benchmarks`` (or ``make bench``).

Each case lives in its own module with a ``run(quick: bool) -> list[Row]``;
``__main__`` runs them in order and prints one table.  Timings interleave
coldtier and its baseline in the same process, several repetitions each, and
report medians and their ratio (coldtier / baseline; below 1 is faster).
"""
