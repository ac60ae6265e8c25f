"""Stopping a training run at a chosen epoch, as a crash or Ctrl-C would, for resume tests."""

from __future__ import annotations

from typing import Callable


class Interrupt(Exception):
    """Raised by :func:`stop_after`'s hook; a test expects it, so no real error is mistaken for it."""


def stop_after(epoch_to_stop: int) -> Callable[[int, dict], None]:
    """An ``on_epoch_end`` hook that raises :class:`Interrupt` once epoch ``epoch_to_stop`` is saved."""
    def hook(epoch: int, record: dict) -> None:
        if epoch == epoch_to_stop:
            raise Interrupt
    return hook
