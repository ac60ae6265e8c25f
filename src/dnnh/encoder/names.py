"""The encoding engines' names and the one default, without importing torch.

The command line builds ``--engine`` from here (``dnnh --help`` loads no torch); the library,
the service and scoring take the same default. ``torch`` (fp32 eager) is the default because
its codes are the ones training validated and scoring writes, bit for bit, with nothing to
load or export first; ``auto`` (the fastest engine whose codes equal torch's on a sample of the
run's database, see :mod:`dnnh.encoder.auto`) and the others are chosen by name.
"""

from __future__ import annotations

#: The two networks a code can come from (a separate query network encodes queries).
ROLES = ("query", "database")
#: Every engine a backend can be built for (:data:`dnnh.encoder.backends.BACKENDS`, in this order).
ENGINES = ("torch", "torch-bf16", "onnxruntime", "onnxruntime-int8")
AUTO = "auto"
#: What ``engine=`` and ``--engine`` accept.
ENGINE_CHOICES = (AUTO, *ENGINES)
#: The engine every caller gets when it names none (see the module docstring).
DEFAULT_ENGINE = "torch"


def check_engine(engine: str | None) -> str:
    """``engine`` (None: the default) when it is one of :data:`ENGINE_CHOICES`, else a one-line ValueError."""
    engine = DEFAULT_ENGINE if engine is None else engine
    if engine not in ENGINE_CHOICES:
        raise ValueError(f"unknown engine {engine!r}; choose one of {ENGINE_CHOICES}")
    return engine
