"""The one progress bar of the project (dependency-free), and ETA formatting.

On a terminal the bar redraws one line in place:

    train  42% |############..................| 42/100 [0:12, 3.50 step/s, ETA 0:17] loss 0.41

Elsewhere (CI logs, files) it is silent, so the caller's one log line per
loop is the record, or, with `plain_every`, writes a plain line each time
another such fraction of the work is done (`desc: 42/100 step (42%)`), so
that a log file stays readable. `TileProgress` drives one bar per tile from
the window callback of `core.inference.TilePredictor`.
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
    """Progress over `total` units of work.

    Args:
      total: number of units of work.
      desc: a short label printed before the bar.
      unit: name of a unit, for the rate.
      stream: where to draw (stderr by default).
      enabled: redraw in place even if `stream` is not a terminal (tests,
        tools that always show a bar).
      plain_every: when not redrawing, a plain line per this fraction of the
        work (and at the end); 0: silent.
    """

    def __init__(self, total: int, desc: str = "", unit: str = "it",
                 stream: Optional[TextIO] = None, enabled: Optional[bool] = None,
                 plain_every: float = 0.0):
        self.total = max(1, int(total))
        self.desc, self.unit = desc, unit
        self.stream = stream or sys.stderr
        tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = tty if enabled is None else enabled
        self.plain_every = plain_every
        self.done = 0
        self._last_plain, self._ended = -1, False
        self._start = time.perf_counter()

    def eta_seconds(self) -> float:
        elapsed = time.perf_counter() - self._start
        if self.done == 0:
            return float("nan")
        return elapsed / self.done * (self.total - self.done)

    def update(self, done: int, extra: str = "") -> None:
        """Sets the units done so far and redraws (or writes a plain line)."""
        self.done = min(int(done), self.total)
        frac = self.done / self.total
        if self.enabled:
            elapsed = max(time.perf_counter() - self._start, 1e-9)
            fill = int(frac * 30)
            eta = self.eta_seconds()
            eta_text = format_duration(eta) if eta == eta else "?"
            self.stream.write(
                f"\r{self.desc}{' ' if self.desc else ''}{100 * frac:3.0f}% "
                f"|{'#' * fill}{'.' * (30 - fill)}| {self.done}/{self.total} "
                f"[{format_duration(elapsed)}, {self.done / elapsed:.2f} {self.unit}/s, "
                f"ETA {eta_text}] {extra}")
            self.stream.flush()
        elif self.plain_every > 0:
            bucket = int(frac / self.plain_every + 1e-9)
            end = self.done == self.total and not self._ended
            if bucket != self._last_plain or end:
                self.stream.write(f"{self.desc}: {self.done}/{self.total} {self.unit} "
                                  f"({100 * self.done // self.total}%)\n")
                self.stream.flush()
                self._last_plain, self._ended = bucket, self._ended or end

    def __call__(self, done: int, total: int) -> None:
        """The `(done, total)` callback form (`core.inference.Progress`)."""
        self.total = max(1, int(total))
        self.update(done)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


class TileProgress:
    """Progress across tiles: `start_tile(index, name)`, then pass the
    object as the `progress` callback of `core.inference.TilePredictor`, which
    calls it with (windows done, windows of the tile). One ProgressBar per
    tile, `tile i/n name`, a plain line every 10 % when not on a terminal."""

    def __init__(self, num_tiles: int, stream: Optional[TextIO] = None,
                 enabled: Optional[bool] = None):
        self.num_tiles, self.stream, self.enabled = num_tiles, stream, enabled
        self.bar: Optional[ProgressBar] = None

    def start_tile(self, index: int, name: str) -> None:
        self.bar = ProgressBar(1, desc=f"tile {index + 1}/{self.num_tiles} {name}",
                               unit="windows", stream=self.stream, enabled=self.enabled,
                               plain_every=0.1)

    def __call__(self, done: int, total: int) -> None:
        self.bar(done, total)
        if done >= total:
            self.bar.close()
