"""MIDI clock: follow a DAW's clock (--sync) and send our own (--send-clock).

MIDI clock is 24 pulses per beat (quarter note), plus start, stop, continue and the song position
pointer (counted in 16ths, 6 pulses each). After start the first pulse is beat 0; after a song
position pointer the next pulse is that position; after continue the next pulse follows the last.

Following: feed every message with its arrival time, then ask where a beat falls in time:

    follower = MidiClockFollower()
    follower.feed(msg, t_s)                     # from the input queue, stamped at arrival
    if follower.running and follower.tempo_bpm:
        deadline_s = follower.time_of_beat(n / steps_per_beat)   # tick n, anchored on the master

Sending: pulse n is due at `t0_s + n * pulse_s` (absolute deadlines; a tempo change re-anchors at
the next pulse, so nothing drifts). The caller's output loop sends what `pop_due` returns:

    sender = ClockSender(bpm=120)
    out.send(sender.start(t0_s))               # 'start'
    for deadline_s, msg in sender.pop_due(now()): out.send(msg)
    sleep_until(sender.next_deadline_s)
"""

from __future__ import annotations

from collections import deque

import mido

PULSES_PER_BEAT = 24
PULSES_PER_SIXTEENTH = 6
#: A gap between pulses longer than this means the master's clock paused: the tempo estimate restarts.
MAX_PULSE_GAP_S = 1.0
_CLOCK_TYPES = ("clock", "start", "stop", "continue", "songpos")
#: A last beat this much faster or slower than the window's fit is a tempo change (2%: far beyond
#: what a few ms of jitter does to a one-beat fit, about 0.3% at 240 bpm).
TEMPO_CHANGE = 0.02


#: A lost pulse is recognised after this many pulses in a row arrive about a period late, once
#: the window holds LOST_MIN_PULSES pulses.
LOST_RUN = 12
LOST_MIN_PULSES = 24
#: Lateness a pulse may have without anything being wrong (a JACK period, polling, a wake-up);
#: below 0.6 / 0.6 * JITTER_S a period (about 350 bpm) a lost pulse cannot be told from jitter.
JITTER_S = 0.004
LOST_MIN_PERIOD_S = JITTER_S / 0.6


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of stamp against pulse number (seconds per pulse)."""
    n = len(points)
    mean_i = sum(i for i, _ in points) / n
    mean_t = sum(t for _, t in points) / n
    num = sum((i - mean_i) * (t - mean_t) for i, t in points)
    den = sum((i - mean_i) ** 2 for i, _ in points)
    return num / den


def _period(points: list[tuple[int, float]]) -> float:
    """Seconds per pulse from stamps that are late by varying amounts, never early: a first
    least-squares slope, then the line through the least delayed pulse of the first and of the
    last quarter (a stall that delays a burst of pulses does not bend it; as clock.PulseGrid)."""
    slope = _slope(points)
    quarter = len(points) // 4
    if quarter < 2:
        return slope
    early = min(points[:quarter], key=lambda p: p[1] - p[0] * slope)
    late = min(points[-quarter:], key=lambda p: p[1] - p[0] * slope)
    return (late[1] - early[1]) / (late[0] - early[0])


def pulse_period_s(bpm: float) -> float:
    """Seconds between MIDI clock pulses at `bpm` beats (quarter notes) a minute."""
    return 60.0 / (bpm * PULSES_PER_BEAT)


class MidiClockFollower:
    """Tracks a master's transport (running), position (pulses, beats) and tempo (smoothed).

    The pulse period is fitted to the stamps of the last `window_pulses` pulses (two beats by
    default; see _period): many pulses, not two stamps a beat apart, so a port's jitter (a JACK
    period, a pulse now and then a few ms late) moves the tempo a few hundredths of a percent,
    not several percent. When the last beat alone says a tempo more than TEMPO_CHANGE away, the
    master changed tempo: that beat's fit is used, so a change is still followed within a beat.

    A pulse lost on the way (JACK drops a cycle's events when a client misses its deadline on a
    loaded machine) would number every later pulse one short: the position a pulse late for good
    and the tempo fit bent. So when LOST_RUN (12) pulses in a row each arrive about one period later
    than the fitted line says (0.6 to 1.4 periods, within 0.4 of a period of each other, give or
    take JITTER_S: a stall makes a falling series, a loss a flat one), one pulse was lost: they are renumbered, and
    `lost_pulses` and `renumbered_since_s` say so.
    """

    def __init__(self, window_pulses: int = 2 * PULSES_PER_BEAT,
                 max_gap_s: float = MAX_PULSE_GAP_S) -> None:
        if window_pulses < 1:
            raise ValueError("window_pulses must be >= 1")
        self.max_gap_s = max_gap_s
        self._pulse_s: float | None = None      # cached fit; None: not fitted since the last pulse
        self.running = False
        self.pulses_seen = 0
        self.last_pulse_s: float | None = None
        self.last_pulse_index: int | None = None  # position of the latest pulse, in pulses
        self._next_index = 0
        self._count = 0                           # pulses since the tempo window restarted
        self._times: deque[tuple[int, float]] = deque(maxlen=window_pulses + 1)   # (count, stamp)
        self._late: list[float] = []              # residuals of a run of pulses a period late
        self.lost_pulses = 0
        self.renumbered_since_s: float | None = None   # stamp of the first renumbered pulse

    def feed(self, msg: mido.Message, t_s: float) -> str | None:
        """Take one message stamped `t_s` (seconds). Returns its type if it is a clock message."""
        kind = msg.type
        if kind not in _CLOCK_TYPES:
            return None
        if kind == "clock":
            self._pulse(t_s)
        elif kind == "start":
            self.running, self._next_index = True, 0
        elif kind == "stop":
            self.running = False
        elif kind == "continue":
            self.running = True
        else:  # songpos: only meaningful while stopped, but honoured always
            self._next_index = msg.pos * PULSES_PER_SIXTEENTH
        return kind

    def _pulse(self, t_s: float) -> None:
        self.pulses_seen += 1
        if self._times and t_s - self._times[-1][1] > self.max_gap_s:
            self._times.clear()
            self._late.clear()
        self._watch_for_a_lost_pulse(t_s)
        self._times.append((self._count, t_s))
        self._count += 1
        self._pulse_s = None
        self.last_pulse_s = t_s
        if self.running:
            self.last_pulse_index = self._next_index
            self._next_index += 1

    def _watch_for_a_lost_pulse(self, t_s: float) -> None:
        """Renumber when this pulse ends a run of LOST_RUN pulses each about a period late."""
        if len(self._times) < LOST_MIN_PULSES:
            return
        period_s = self.pulse_s
        phase_s = min(t - i * period_s for i, t in self._times)      # the least delayed pulses
        late_s = t_s - phase_s - self._count * period_s
        run = self._late + [late_s]
        if (period_s < LOST_MIN_PERIOD_S or not 0.6 * period_s <= late_s <= 1.4 * period_s + JITTER_S
                or max(run) - min(run) > 0.4 * period_s + JITTER_S):
            self._late.clear()
            return
        self._late.append(late_s)
        if len(self._late) < LOST_RUN:
            return
        run = len(self._late) - 1                 # the earlier pulses of the run, already stored
        times = list(self._times)
        self._times = deque(times[:len(times) - run] + [(i + 1, t) for i, t in times[len(times) - run:]],
                            maxlen=self._times.maxlen)
        self.renumbered_since_s = times[len(times) - run][1]
        self._count += 1
        self._next_index += 1
        if self.last_pulse_index is not None:
            self.last_pulse_index += 1
        self.lost_pulses += 1
        self._late.clear()

    @property
    def pulse_s(self) -> float | None:
        """Seconds between recent pulses (fitted, see the class docstring); None until two pulses."""
        if len(self._times) < 2:
            return None
        if self._pulse_s is None:
            points = list(self._times)
            fit = _period(points)
            if len(points) > PULSES_PER_BEAT + 1:
                recent = _period(points[-(PULSES_PER_BEAT + 1):])
                if abs(recent - fit) > TEMPO_CHANGE * fit:
                    fit = recent
            self._pulse_s = fit
        return self._pulse_s

    @property
    def tempo_bpm(self) -> float | None:
        """The master's tempo in beats a minute; None until two pulses arrived."""
        pulse_s = self.pulse_s
        return None if not pulse_s else 60.0 / (pulse_s * PULSES_PER_BEAT)

    @property
    def position_beats(self) -> float | None:
        """Beat of the latest pulse since start (None before the first pulse after start)."""
        if self.last_pulse_index is None:
            return None
        return self.last_pulse_index / PULSES_PER_BEAT

    def next_position_beats(self) -> float:
        """Beat the next pulse will carry (where playback resumes after continue or a songpos)."""
        return self._next_index / PULSES_PER_BEAT

    def time_of_beat(self, beats: float) -> float | None:
        """When beat `beats` falls (seconds, the stamps' clock), extrapolated from the latest pulse
        at the current tempo; None until the position and the tempo are known."""
        if self.last_pulse_index is None or self.last_pulse_s is None or self.pulse_s is None:
            return None
        pulses_ahead = beats * PULSES_PER_BEAT - self.last_pulse_index
        return self.last_pulse_s + pulses_ahead * self.pulse_s


class ClockSender:
    """24-ppq clock at absolute deadlines: pulse n is due at `t0_s + n * pulse_s`.

    `pop_due(now_s)` hands back the pulses due by `now_s`; one more than `late_s` after its deadline
    is counted in `late_pulses`. `set_tempo` re-anchors at the next pulse, so a change never drifts.
    """

    def __init__(self, bpm: float, late_s: float = 0.001) -> None:
        if bpm <= 0:
            raise ValueError(f"bpm must be > 0, not {bpm}")
        self.bpm = float(bpm)
        self.late_s = late_s
        self.running = False
        self.late_pulses = 0
        self.pulses_sent = 0
        self._t0_s = 0.0
        self._n = 0  # index of the next pulse since the reference point t0_s

    @property
    def pulse_s(self) -> float:
        return pulse_period_s(self.bpm)

    @property
    def next_deadline_s(self) -> float | None:
        """When the next pulse is due; None while stopped."""
        return self._t0_s + self._n * self.pulse_s if self.running else None

    def start(self, t0_s: float, position_beats: float = 0.0) -> list[mido.Message]:
        """Begin with the first pulse at `t0_s`. Returns the messages to send now: 'start' from the
        top, or a song position pointer and 'continue' from `position_beats` (whole 16ths)."""
        self.running, self._t0_s, self._n = True, t0_s, 0
        if position_beats <= 0:
            return [mido.Message("start")]
        sixteenths = int(round(position_beats * 4))
        return [mido.Message("songpos", pos=min(sixteenths, 16383)), mido.Message("continue")]

    def stop(self) -> mido.Message:
        self.running = False
        return mido.Message("stop")

    def set_tempo(self, bpm: float) -> None:
        """Change tempo from the next pulse on: its deadline stays, later ones use the new period."""
        if bpm <= 0:
            raise ValueError(f"bpm must be > 0, not {bpm}")
        if self.running:
            self._t0_s, self._n = self._t0_s + self._n * self.pulse_s, 0
        self.bpm = float(bpm)

    def pop_due(self, now_s: float) -> list[tuple[float, mido.Message]]:
        """The (deadline_s, clock message) pairs due at or before `now_s`, oldest first."""
        due: list[tuple[float, mido.Message]] = []
        if not self.running:
            return due
        while True:
            deadline_s = self._t0_s + self._n * self.pulse_s
            if deadline_s > now_s:
                return due
            if now_s - deadline_s > self.late_s:
                self.late_pulses += 1
            due.append((deadline_s, mido.Message("clock")))
            self._n += 1
            self.pulses_sent += 1
