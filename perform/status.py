"""The one-line live status on stderr, at most `max_hz` updates a second; `--quiet` turns it off.

    call  120.0 bpm  CPUExecutionProvider  step p99 0.41 ms  late 0  | answering  C4 E4 G4
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Callable, Iterable, TextIO

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    return f"{NAMES[pitch % 12]}{pitch // 12 - 1}"


class LatencyWindow:
    """The last `size` step latencies; p50/p99 in milliseconds."""

    def __init__(self, size: int = 512) -> None:
        self.values_s: deque[float] = deque(maxlen=size)

    def add(self, seconds: float) -> None:
        self.values_s.append(seconds)

    def percentile_ms(self, q: float) -> float:
        if not self.values_s:
            return 0.0
        ordered = sorted(self.values_s)
        return 1000.0 * ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


class StatusLine:
    """Rewrites one line (carriage return) no more often than `max_hz`."""

    def __init__(self, stream: TextIO | None = None, max_hz: float = 10.0, enabled: bool = True,
                 now: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.min_gap_s = 1.0 / max_hz if max_hz > 0 else float("inf")
        self.enabled = enabled and max_hz > 0
        self.now = now
        self._last_s = float("-inf")
        self._width = 0
        self.updates = 0

    def update(self, mode: str, bpm: float, provider: str, p99_ms: float, late_ticks: int,
               state: str, last_notes: Iterable[int], extra: str | Callable[[], str] = "") -> bool:
        """Show the status if enough time has passed; returns whether it was written. `extra` may
        be a function: it is then called only when a line is written."""
        t = self.now()
        if not self.enabled or t - self._last_s < self.min_gap_s:
            return False
        self._last_s = t
        extra = extra() if callable(extra) else extra
        notes = " ".join(note_name(p) for p in last_notes) or "-"
        line = (f"{mode:<5} {bpm:6.1f} bpm  {provider}  step p99 {p99_ms:.2f} ms  late {late_ticks}"
                f"  | {state:<9} {notes}{extra}")
        pad = max(self._width - len(line), 0)
        self._width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.updates += 1
        return True

    def close(self) -> None:
        if self.enabled and self.updates:
            self.stream.write("\n")
            self.stream.flush()
