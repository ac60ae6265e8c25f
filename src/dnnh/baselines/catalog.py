"""The shallow methods by name, without importing them (scikit-learn and torch load in seconds).

``dnnh bench --help`` and the bench's registry of methods list the baselines from here;
:data:`dnnh.baselines.SHALLOW_METHODS` maps the same names to the estimator classes (a test
checks that the two agree). ``pca-rr`` (PCA, a seeded random rotation, sign) is the training-free
baseline of the frozen-feature setting (issue 32); the other seven are the classical ones.
"""

from __future__ import annotations

#: name -> (module under dnnh.baselines, estimator class, supervised?)
SHALLOW_CATALOG: dict[str, tuple[str, str, bool]] = {
    "lsh": ("lsh", "LSH", False), "pcah": ("pcah", "PCAH", False), "itq": ("itq", "ITQ", False),
    "sh": ("sh", "SH", False), "cca-itq": ("cca_itq", "CCAITQ", True), "ksh": ("ksh", "KSH", True),
    "sdh": ("sdh", "SDH", True), "pca-rr": ("pca_rr", "PCARR", False),
}
SHALLOW_NAMES = tuple(SHALLOW_CATALOG)
