"""Progress of long command-line work (demo generation, imports): one protocol and one terminal printer.

A line says only what is known: rows done, the total when it is known exactly (the demo's cycles), else the
share of the file read so far (an import reads a CSV whose row count nobody knows until the end), and a rate
measured from the first report of the stage, so the first chunk never shows an absurd rate.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Protocol, TextIO


class Progress(Protocol):
    """progress(stage, done, total, fraction=...): `total` None when unknown; `fraction` of the input read."""

    def __call__(self, stage: str, done: int, total: int | None, *, fraction: float | None = None) -> None: ...


#: a rate is shown once a stage has run this long: before that it is noise
MIN_SECONDS_FOR_RATE = 0.5


class ProgressPrinter:
    """Rows done, rate and time left on one terminal line (a line every few seconds when not a terminal)."""

    def __init__(self, stream: TextIO = sys.stderr, interval: float | None = None, unit: str = "rows"):
        self.stream = stream
        self.unit = unit  # what is counted: "rows", or "views" for the indicator views `vbhc import` precomputes
        self.tty = stream.isatty()
        # a terminal line is redrawn in place; a log gets a line every few seconds
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self._stage: str | None = None
        self._started = 0.0
        self._first_done = 0
        self._last = float("-inf")

    def __call__(self, stage: str, done: int, total: int | None, *, fraction: float | None = None) -> None:
        now = time.monotonic()
        if stage != self._stage:
            self.finish()
            self._stage, self._started, self._first_done, self._last = stage, now, done, float("-inf")
        finished = (total is not None and done >= total) or (fraction is not None and fraction >= 1)
        if now - self._last < self.interval and not finished:
            return
        self._last = now
        line = self.line(stage, done, total, fraction, now - self._started, done - self._first_done, unit=self.unit)
        if self.tty:
            self.stream.write("\r" + line.ljust(90))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    @staticmethod
    def line(
        stage: str,
        done: int,
        total: int | None,
        fraction: float | None,
        elapsed: float,
        done_since_start: int,
        *,
        unit: str = "rows",
    ) -> str:
        """The text of one progress line (a pure function, so it can be tested without a clock)."""
        parts = [f"{stage}: {done:,}" + (f"/{total:,}" if total is not None else "") + f" {unit}"]
        if total is None and fraction is not None:
            # rounded down: "100%" only once the whole file is read, never for 99.6% of it
            parts.append(f"{math.floor(min(max(fraction, 0.0), 1.0) * 100)}% of the file")
        if elapsed >= MIN_SECONDS_FOR_RATE and done_since_start > 0:
            rate = done_since_start / elapsed
            parts.append(f"{rate:,.0f} {unit}/s" if rate >= 10 else f"{rate:.2f} {unit}/s")
            left = None
            if total is not None and total > done:
                left = (total - done) / rate
            elif total is None and fraction is not None and 0 < fraction < 1:
                left = elapsed * (1 - fraction) / fraction
            if left is not None:
                parts.append(f"{left:,.0f} s left")
        return "  ".join(parts)

    def finish(self) -> None:
        if self._stage is not None and self.tty:
            self.stream.write("\n")
            self.stream.flush()
        self._stage = None
