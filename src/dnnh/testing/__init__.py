"""Slow, obviously right references, for the tests and the benchmarks.

Like ``numpy.testing``, this ships with the package: ``benchmarks/baselines_digits.py`` scores
its table with :func:`dnnh.testing.reference.brute_force_map`, and a benchmark is a script run
against the installed package, with no test folder on its path. Nothing here is used by the
library itself, and nothing here shares code with what it checks: :mod:`dnnh.testing.reference`
recomputes retrieval metrics and index answers from their definitions with plain loops (numpy
only). The test-only builders (dataset files, synthetic problems, the service's test client)
live in ``tests/support/`` and are not shipped.
"""
