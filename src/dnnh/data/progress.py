"""Progress through a stream of images: a bar on a terminal, a plain line every half minute in a log.

Why both: a tqdm bar redraws one line with carriage returns, which in a log file is noise, so
with stderr redirected the bars used to be switched off and an epoch or the encoding of 70,000
images ran in silence for up to 25 minutes (issue 36.15). :class:`Progress` draws the bar where
stderr is a terminal and otherwise writes ``what: 12,000/70,000 images, 812 img/s`` every
:data:`LINE_EVERY_S` seconds.

Anything costly to report (a loss read off a GPU makes the host wait for it) is passed as a
callable, called only when a line or the bar's note is actually written: at most once per
:meth:`Progress.update`, at most every :data:`NOTE_EVERY_S` seconds on a bar.
"""

from __future__ import annotations

import sys
import time
from typing import Callable

from tqdm.auto import tqdm

#: Seconds between two plain progress lines (stderr not a terminal).
LINE_EVERY_S = 30.0
#: Seconds between two updates of a bar's note (the loss of the last batch, say).
NOTE_EVERY_S = 0.5


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Progress:
    """Progress through ``total`` images named ``what`` (see the module docstring); nothing when not ``shown``.

    ``log``: where plain lines go (default stderr); ``bar``: force the bar (True) or the lines
    (False) instead of asking whether stderr is a terminal.
    """

    def __init__(self, total: int, what: str, shown: bool = True, log: Callable[[str], None] | None = None,
                 bar: bool | None = None) -> None:
        self.total, self.what, self.done = int(total), what, 0
        self.shown = shown
        use_bar = shown and (sys.stderr.isatty() if bar is None else bar)
        self.bar = tqdm(total=self.total, desc=what, unit="img", leave=False) if use_bar else None
        self.log = log or _stderr_line
        self.started = self.last = time.perf_counter()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int, note: Callable[[], str] | None = None) -> None:
        """``n`` more images done; ``note()`` (e.g. ``"loss 0.4321"``) only when it is written."""
        self.done += n
        if not self.shown:
            return
        now = time.perf_counter()
        if self.bar is not None:
            self.bar.update(n)
            if note is not None and now - self.last >= NOTE_EVERY_S:
                self.bar.set_postfix_str(note(), refresh=False)
                self.last = now
        elif now - self.last >= LINE_EVERY_S:
            extra = f", {note()}" if note is not None else ""
            rate = self.done / max(now - self.started, 1e-9)
            self.log(f"{self.what}: {self.done:,}/{self.total:,} images, {rate:.0f} img/s{extra}")
            self.last = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
