"""Test-only builders, kept out of the installed package (issue 21.9).

``pyproject.toml`` puts ``tests/`` on pytest's ``pythonpath``, so tests import these as
``support.builders`` (dataset files in their published layouts, PNG bytes), ``support.problems``
(random and clustered codes, separable classes) and ``support.serving`` (the service's token
and test client). The slow references that benchmarks also use stay in :mod:`dnnh.testing.reference`.
"""
