"""The comparison harness: every method at every code length on one saved split, one table.

``run_bench(data, out, methods, nbits, split=SplitSpec(...), training={...})`` is the entry point (``dnnh bench`` and
``benchmarks/reproduce.py`` are thin layers over it); ``METHODS`` / ``resolve_method`` are the
registry of method names; ``time_to_reach`` / ``compare_speed`` measure training speed as time
to a validation MAP; ``format_table`` / ``ResultRow`` format a methods x bits Markdown table.
"""

from dnnh.bench.harness import BenchResult, parse_bits, run_bench, shell_command
from dnnh.bench.methods import METHODS, Method, known_methods, resolve_method, resolve_methods
from dnnh.bench.report import ResultRow, format_table
from dnnh.bench.speed import compare_speed, time_to_reach

__all__ = ["BenchResult", "METHODS", "Method", "ResultRow", "compare_speed", "format_table", "known_methods",
           "parse_bits", "resolve_method", "resolve_methods", "run_bench", "shell_command", "time_to_reach"]
