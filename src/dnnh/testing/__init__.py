"""Slow, obviously right references and synthetic problems, for the tests and the benchmarks.

Like ``numpy.testing``, this ships with the package so that tests and ``benchmarks/`` import the
same references without path tricks. Nothing here is used by the library itself, and nothing
here shares code with what it checks: :mod:`dnnh.testing.reference` recomputes retrieval
metrics and index answers from their definitions with plain loops; :mod:`dnnh.testing.problems`
makes inputs whose right answers are known (random and clustered codes, separable classes).
"""
