"""The tick clock: tick n is due at an absolute deadline, never at `sleep(period - elapsed)`.

    clock = TickClock(bpm=120, steps_per_beat=4)      # period_s = 0.125
    clock.start()
    clock.sleep_until(clock.deadline_s(1)); clock.mark(1)

Deadlines are `t_ref + (n - n_ref) * period_s`, so rounding errors never add up. A tempo change
moves the reference to the deadline of the tick where it happens (the grid bends there, it does not
drift). `now` and `sleep` are parameters so tests run on a fake clock. Ticks processed later than
`late_after_s` past their deadline are counted in `late_ticks`. With `spin_s`, the last stretch
before a deadline is spent yielding in a loop instead of sleeping (a sleep overshoots by ~0.1 ms).
"""

from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

from .errors import ConfigError


def period_s_from_bpm(bpm: float, steps_per_beat: int) -> float:
    """Seconds per grid step."""
    if not bpm > 0 or steps_per_beat < 1:
        raise ConfigError(f"tempo {bpm!r} bpm with {steps_per_beat!r} steps per beat is not playable; "
                          f"use a bpm from 10 to 400 and steps_per_beat >= 1")
    return 60.0 / (float(bpm) * steps_per_beat)


class TickClock:
    """Absolute-deadline grid clock in seconds of `now()` (default time.perf_counter)."""

    def __init__(self, bpm: float, steps_per_beat: int, now: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], object] = time.sleep, late_after_s: float = 0.002,
                 spin_s: float = 0.0) -> None:
        self.steps_per_beat = steps_per_beat
        self.bpm = float(bpm)
        self.period_s = period_s_from_bpm(bpm, steps_per_beat)
        self.now = now
        self.sleep = sleep
        self.late_after_s = late_after_s
        self.spin_s = spin_s          # the last stretch before a deadline is spun, not slept
        self.t_ref_s = 0.0
        self.n_ref = 0
        self.late_ticks = 0
        self.max_lateness_s = 0.0
        self.tempo_changes: list[tuple[float, float]] = []   # (at_steps, bpm), for recording

    def start(self, t0_s: float | None = None) -> float:
        """Tick 0 is due at `t0_s` (default: now). Returns t0_s."""
        self.t_ref_s = self.now() if t0_s is None else float(t0_s)
        self.n_ref = 0
        self.tempo_changes = [(0.0, self.bpm)]
        return self.t_ref_s

    def deadline_s(self, tick: float) -> float:
        """When tick (or fractional step) `tick` is due."""
        return self.t_ref_s + (tick - self.n_ref) * self.period_s

    def steps_at(self, time_s: float) -> float:
        """The grid position (in steps, fractional) of a time; inverse of deadline_s."""
        return self.n_ref + (time_s - self.t_ref_s) / self.period_s

    def set_bpm(self, bpm: float, at_tick: int) -> None:
        """Change tempo from tick `at_tick` on; deadlines before it are unchanged."""
        if float(bpm) == self.bpm:
            return
        self.t_ref_s = self.deadline_s(at_tick)
        self.n_ref = at_tick
        self.bpm = float(bpm)
        self.period_s = period_s_from_bpm(bpm, self.steps_per_beat)
        self.tempo_changes.append((float(at_tick), self.bpm))

    def anchor(self, tick: int, time_s: float) -> None:
        """Make `tick` due at `time_s` (following an external clock); later ticks follow from it."""
        self.t_ref_s = float(time_s)
        self.n_ref = tick

    def sleep_until(self, deadline_s: float, sleep: Callable[[float], object] | None = None) -> None:
        """Sleep towards an absolute deadline. `sleep` may return early (a wake-up); callers
        re-check the time, so nothing is lost."""
        remaining_s = deadline_s - self.now()
        if remaining_s > self.spin_s:
            (sleep or self.sleep)(remaining_s - self.spin_s)
        elif remaining_s > 0:
            while self.now() < deadline_s:     # sleeps overshoot by ~0.1 ms; this does not
                time.sleep(0)                   # (and lets the input thread run)

    def mark(self, tick: int) -> float:
        """Record that `tick` is being processed now; returns its lateness in seconds."""
        lateness_s = self.now() - self.deadline_s(tick)
        if lateness_s > self.late_after_s:
            self.late_ticks += 1
        self.max_lateness_s = max(self.max_lateness_s, lateness_s)
        return lateness_s


class PulseGrid:
    """The master's pulse grid from stamped MIDI clock pulses (--sync), robust to late stamps.

    Pulses reach us late by varying amounts (port periods, polling, scheduling), never early, so the
    grid follows the least delayed pulses: a first period from a least-squares fit of stamp against
    pulse index, then the line through the least delayed pulse of the first and of the last quarter of the
    window. A burst
    of late pulses does not drag the grid late. Needs `min_pulses` pulses before it answers.
    """

    def __init__(self, window: int = 96, min_pulses: int = 12) -> None:
        self.pulses: deque[tuple[int, float]] = deque(maxlen=window)
        self.min_pulses = min_pulses

    def reset(self) -> None:
        self.pulses.clear()

    def add(self, index: int, stamp_s: float) -> None:
        if self.pulses and index <= self.pulses[-1][0]:
            self.pulses.clear()               # the master jumped back: a new run
        self.pulses.append((index, stamp_s))

    def renumber(self, since_s: float, shift: int = 1) -> None:
        """Pulses stamped at or after `since_s` move `shift` on (a pulse before them was lost)."""
        self.pulses = deque(((i + shift, t) if t >= since_s else (i, t) for i, t in self.pulses),
                            maxlen=self.pulses.maxlen)

    def line(self) -> tuple[float, float] | None:
        """(phase_s, period_s): pulse i falls at phase_s + i * period_s; None until enough pulses."""
        n = len(self.pulses)
        if n < max(self.min_pulses, 4):
            return None
        mean_i = sum(i for i, _ in self.pulses) / n
        mean_t = sum(t for _, t in self.pulses) / n
        var = sum((i - mean_i) ** 2 for i, _ in self.pulses)
        period_s = sum((i - mean_i) * (t - mean_t) for i, t in self.pulses) / var
        if period_s <= 0:
            return None
        pulses = list(self.pulses)
        quarter = n // 4                      # the two are at least half the window apart
        early = min(pulses[:quarter], key=lambda p: p[1] - p[0] * period_s)
        late = min(pulses[n - quarter:], key=lambda p: p[1] - p[0] * period_s)
        period_s = (late[1] - early[1]) / (late[0] - early[0])
        if period_s <= 0:
            return None
        phase_s = min(t - i * period_s for i, t in pulses)
        return phase_s, period_s

    def pulse_s(self) -> float | None:
        """Seconds per pulse; None until enough pulses arrived."""
        line = self.line()
        return None if line is None else line[1]

    def time_of_pulse(self, index: float) -> float | None:
        """When pulse `index` falls (the stamps' clock)."""
        line = self.line()
        return None if line is None else line[0] + index * line[1]

    def index_at(self, time_s: float) -> float | None:
        """The (fractional) pulse index at a time."""
        line = self.line()
        return None if line is None else (time_s - line[0]) / line[1]


SYNC_TOLERANCE_S = 0.0002         # re-anchor on the master's clock when further off than this
SYNC_TEMPO_CHANGE = 0.005         # take the master's tempo when it differs by more than 0.5%


class MasterLock:
    """--sync: locks a TickClock onto a master's MIDI clock.

    `feed` every clock/transport message with its arrival stamp; `follow(tick, clock, now_s)` on
    each tick takes the master's tempo and moves the deadline of tick + 1 onto the master's next
    step. `locked` is False until the master runs and its grid is known, and again after stop.
    `follower` is a perform.midiclock.MidiClockFollower (transport, position).
    """

    def __init__(self, follower, steps_per_beat: int) -> None:
        self.follower = follower
        self.pulses = PulseGrid()
        self.pulses_per_step = 24 / steps_per_beat
        self.offset: int | None = None            # session tick - master step, once locked
        self._lost_seen = 0

    @property
    def locked(self) -> bool:
        return self.offset is not None

    def feed(self, msg, stamp_s: float) -> None:
        f = self.follower
        f.feed(msg, stamp_s)
        lost = getattr(f, "lost_pulses", 0)
        if lost != self._lost_seen:             # the follower renumbered after a lost pulse
            self.pulses.renumber(f.renumbered_since_s, lost - self._lost_seen)
            self._lost_seen = lost
        if msg.type != "clock":
            self.pulses.reset()             # start, stop, continue, song position: a new run
        elif f.running and f.last_pulse_index is not None:
            self.pulses.add(f.last_pulse_index, stamp_s)

    def follow(self, tick: int, clock: TickClock, now_s: float) -> None:
        if not self.follower.running:
            self.offset = None
            return
        pulse_s = self.pulses.pulse_s()
        if pulse_s is None or not 10.0 <= 60.0 / (24 * pulse_s) <= 400.0:
            return
        bpm = 60.0 / (24 * pulse_s)
        if abs(bpm - clock.bpm) > SYNC_TEMPO_CHANGE * clock.bpm:           # not every wobble
            clock.set_bpm(round(bpm, 2), tick)
        if self.offset is None:             # the next master step after now becomes tick + 1
            self.offset = tick + 1 - math.ceil(self.pulses.index_at(now_s) / self.pulses_per_step)
        target_s = self.pulses.time_of_pulse((tick + 1 - self.offset) * self.pulses_per_step)
        if abs(target_s - clock.deadline_s(tick + 1)) > SYNC_TOLERANCE_S:
            clock.anchor(tick + 1, target_s)
