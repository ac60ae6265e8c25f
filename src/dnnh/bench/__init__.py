"""The comparison harness: every method at every code length on one saved split, one table.

``run_bench(data, out, methods, nbits, split=SplitSpec(...), training={...})`` is the entry point (``dnnh bench`` and
``benchmarks/reproduce.py`` are thin layers over it); ``METHODS`` / ``resolve_method`` are the
registry of method names; ``time_to_reach`` / ``compare_speed`` measure training speed as time
to a validation MAP; ``format_table`` / ``ResultRow`` format a methods x bits Markdown table.

The names load on first use (PEP 562): ``dnnh bench --help`` reads :mod:`dnnh.bench.methods`
without importing the harness (torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnnh.bench.harness import BenchResult, parse_bits, run_bench, shell_command
    from dnnh.bench.methods import METHODS, Method, known_methods, resolve_method, resolve_methods
    from dnnh.bench.report import ResultRow, format_table
    from dnnh.bench.speed import compare_speed, time_to_reach

_LAZY = {
    "BenchResult": "harness", "parse_bits": "harness", "run_bench": "harness", "shell_command": "harness",
    "METHODS": "methods", "Method": "methods", "known_methods": "methods", "resolve_method": "methods",
    "resolve_methods": "methods", "ResultRow": "report", "format_table": "report",
    "compare_speed": "speed", "time_to_reach": "speed",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"dnnh.bench.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'dnnh.bench' has no attribute {name!r}")


__all__ = ["BenchResult", "METHODS", "Method", "ResultRow", "compare_speed", "format_table", "known_methods",
           "parse_bits", "resolve_method", "resolve_methods", "run_bench", "shell_command", "time_to_reach"]
