"""Transition only: ``coldtier.jsonl`` is the public module (``benchmarks/case6_bytes.py`` still imports this)."""

from .jsonl import dump_event, dump_table, load_events, load_numbered

__all__ = ["dump_event", "dump_table", "load_events", "load_numbered"]
