"""Checks that several layers make the same way: one place, one message.

A code length is ``nbits`` everywhere in the package. ``bits`` was its name in
:class:`~dnnh.config.TrainConfig`, :class:`~dnnh.nn.DNNH` and the hash heads before; code
written against that spelling keeps working through :func:`accept_old_bits_keyword`.
(``bits`` on its own names 0/1 arrays.)
"""

from __future__ import annotations

import functools
import math
import numbers
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from dnnh.errors import InputError

F = TypeVar("F", bound=Callable[..., None])

#: What a device is named by (``cuda:N`` too): see :mod:`dnnh.devices`.
DEVICE_CHOICES = ("auto", "cpu", "cuda")


class DeviceError(InputError):
    """A device that is misnamed, or asked for and not here, said in one line (the CLI prints it)."""


_DEVICE_NAME = re.compile(r"^(auto|cpu|cuda)(?::(\d+))?$")


def parse_device(spec: str) -> tuple[str, int | None]:
    """``"cuda:1"`` -> ``("cuda", 1)``; refuses anything but auto, cpu, cuda, cuda:N (any case).

    Nothing is stripped: ``"cpu "`` or ``""`` is refused, not read as cpu or auto (issue 36.10).
    """
    match = _DEVICE_NAME.fullmatch(str(spec).lower())
    if match is None or (match.group(2) is not None and match.group(1) != "cuda"):
        raise DeviceError(f"device must be one of {', '.join(DEVICE_CHOICES)} or cuda:N, got {spec!r}")
    return match.group(1), None if match.group(2) is None else int(match.group(2))


def check_nbits(nbits: Any, name: str = "nbits") -> int:
    """``nbits`` as an int, or a ValueError saying that a code length is a positive integer."""
    ok = (not isinstance(nbits, bool) and isinstance(nbits, numbers.Real) and nbits > 0
          and int(nbits) == nbits)
    if not ok:
        raise ValueError(f"{name} (the code length) must be a positive integer, got {nbits!r}")
    return int(nbits)


@dataclass(frozen=True)
class Interval:
    """Where a number setting may lie; NaN and the infinities never do (a NaN margin trained a NaN model
    to exit 0 and wrote ``NaN``, which is not JSON, into config.json).

    ``what`` names the kind of number in messages ("a probability"); ``integer``: whole numbers only.
    One object serves the library's check (:meth:`check`) and the command line's parse-time type
    (:func:`dnnh.cli.common.number_in`), so the two accept the same values.
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    what: str = ""
    integer: bool = False

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            return False
        if self.integer and int(value) != value:
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def __str__(self) -> str:
        """``in [0, 1)``, ``>= 0``, ``> 0``; integers as ``1..4096``."""
        if self.low is not None and self.high is not None:
            if self.integer and not (self.low_open or self.high_open):
                return f"{self.low:g}..{self.high:g}"
            return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "finite"

    def check(self, name: str, value: Any) -> None:
        """InputError (a ValueError) ``"name must be <what> <range>, got value"`` unless ``value`` is in here."""
        if value not in self:
            what = f"{self.what} " if self.what else ""
            odd = " (not a finite number)" if isinstance(value, numbers.Real) and not math.isfinite(value) else ""
            raise InputError(f"{name} must be {what}{self}, got {value!r}{odd}")


def accept_old_bits_keyword(init: F) -> F:
    """Wrap a constructor whose code length is ``nbits`` so that ``bits=`` still works."""
    @functools.wraps(init)
    def wrapper(self, *args: Any, bits: Any = None, **kwargs: Any) -> None:
        if bits is not None:  # given positionally as well, ``init`` says "multiple values for nbits"
            if "nbits" in kwargs:
                raise TypeError("give the code length once, as nbits (bits is its old name)")
            kwargs["nbits"] = bits
        init(self, *args, **kwargs)
    return wrapper  # type: ignore[return-value]
