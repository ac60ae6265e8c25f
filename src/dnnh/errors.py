"""The errors a user can cause, under one base class, so the command line tells them from our bugs.

Every class here is a :class:`DnnhError`. The command line prints a ``DnnhError`` (and the
``ValueError``, ``FileNotFoundError`` and ``OSError`` the standard library and older code raise
for bad input) as one line; anything else, a ``TypeError`` from our own code included, is an
internal error with a hint to rerun with ``--debug``. Each class also derives from the builtin
that code catching errors before this module existed expects (``ValueError`` mostly), so no
``except ValueError`` anywhere changes behaviour.
"""

from __future__ import annotations


class DnnhError(Exception):
    """A user-facing error whose message says what was expected and what to do."""


class InputError(DnnhError, ValueError):
    """Bad input: an argument, option or setting outside what is accepted."""


class InputTypeError(DnnhError, TypeError):
    """Input of the wrong kind (an array of the wrong dtype, say): a ``TypeError`` to library callers."""


class DataError(DnnhError, ValueError):
    """Bad data: a file or folder that is not in the format it should be, or cannot be read as one."""


class ChangedDataError(DataError):
    """Data that is not what a run or index was made from (its fingerprint or size changed)."""


class LockedError(DnnhError, ValueError):
    """A folder another dnnh process is writing (:mod:`dnnh.locks`)."""


class DivergedError(DnnhError, FloatingPointError):
    """Training whose loss or weights became NaN or infinite: stopped, its last good checkpoint kept."""


__all__ = ["ChangedDataError", "DataError", "DivergedError", "DnnhError", "InputError", "InputTypeError",
           "LockedError"]
