"""A dependency-free progress bar for terminals, and ETA formatting.

On a terminal the bar redraws one line in place; elsewhere (CI logs, files)
it stays silent and the caller's one log line per loop is the record.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


def format_duration(seconds: float) -> str:
    """4000.5 -> '1:06:40'; 75 -> '1:15'."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ProgressBar:
    """`done/total [#####.....] 42% rate/s ETA m:ss` redrawn in place.

    Args:
      total: number of units of work.
      desc: a short label printed before the bar.
      unit: name of a unit, for the rate.
      stream: where to draw (stderr by default).
      enabled: draw even if `stream` is not a terminal (tests).
    """

    def __init__(self, total: int, desc: str = "", unit: str = "it",
                 stream: Optional[TextIO] = None, enabled: Optional[bool] = None):
        self.total = max(1, int(total))
        self.desc = desc
        self.unit = unit
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.done = 0
        self._start = time.perf_counter()

    def eta_seconds(self) -> float:
        elapsed = time.perf_counter() - self._start
        if self.done == 0:
            return float("nan")
        return elapsed / self.done * (self.total - self.done)

    def update(self, done: int, extra: str = "") -> None:
        """Sets the units done so far and redraws."""
        self.done = min(int(done), self.total)
        if not self.enabled:
            return
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        frac = self.done / self.total
        bar = "#" * int(frac * 30) + "." * (30 - int(frac * 30))
        eta = self.eta_seconds()
        eta_text = format_duration(eta) if eta == eta else "?"
        self.stream.write(
            f"\r{self.desc} {self.done}/{self.total} [{bar}] {frac:4.0%} "
            f"{self.done / elapsed:.2f} {self.unit}/s ETA {eta_text} {extra}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
