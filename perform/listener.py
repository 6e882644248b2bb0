"""The input side: the port callback stamps and enqueues; the engine drains and quantizes.

`Listener.callback` is what the MIDI port calls: it stamps the message with `now()` and puts it in a
bounded queue (a full queue drops the message and counts it), then wakes the engine. Nothing else
happens in the callback. `PlayerTrack` turns the drained note events into notes on the grid with the
rules of perform.quantize; a held note gets a provisional duration until it is released.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable

import mido

from .quantize import merge_same_step, quantize_duration, quantize_step
from .tokens import Note

# Messages the instrument never uses; dropped in the callback so a flood of them costs nothing.
IGNORED_TYPES = frozenset({"sysex", "active_sensing", "polytouch", "aftertouch", "quarter_frame",
                           "tune_request", "song_select"})
#: MIDI clock and transport: used only when following a master clock (--sync).
CLOCK_TYPES = frozenset({"clock", "start", "stop", "continue", "songpos"})


class Listener:
    """A bounded queue of (stamp_s, message) fed by the input port's callback."""

    def __init__(self, maxsize: int = 4096, now: Callable[[], float] = time.perf_counter,
                 ignored: frozenset[str] = IGNORED_TYPES) -> None:
        self.now = now
        self.ignored_types = ignored
        self._queue: queue.Queue = queue.Queue(maxsize)
        self._arrived = threading.Event()
        self.dropped = 0        # queue full
        self.ignored = 0        # types the instrument does not use
        self.received = 0

    def callback(self, msg: mido.Message) -> None:
        """Stamp and enqueue. Never blocks."""
        stamp_s = self.now()
        if msg.type in self.ignored_types:
            self.ignored += 1
            return
        try:
            self._queue.put_nowait((stamp_s, msg))
        except queue.Full:
            self.dropped += 1
            return
        self.received += 1
        self._arrived.set()

    def drain(self) -> list[tuple[float, mido.Message]]:
        """Everything queued so far, oldest first."""
        out = []
        while True:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout_s: float) -> None:
        """Sleep up to `timeout_s`, returning early when a message arrives."""
        if self._arrived.wait(timeout_s):
            self._arrived.clear()

    def wake(self) -> None:
        """Make a pending `wait` return (e.g. to stop)."""
        self._arrived.set()


def provisional_steps(held_steps: int, max_dur_steps: int) -> int:
    """The duration fed for a held note: its length so far rounded up to a power of two (capped).
    It changes only log2(cap) times while held, so the model's context is re-run rarely."""
    dur = 1
    while dur < held_steps:
        dur *= 2
    return min(dur, max_dur_steps)


class PlayerTrack:
    """The player's notes on the grid, from note events timed in (fractional) steps."""

    def __init__(self, max_dur_steps: int) -> None:
        self.max_dur_steps = max_dur_steps
        self.held: dict[int, tuple[float, int]] = {}      # pitch -> (on_steps, velocity)
        self.done: dict[int, list[Note]] = {}              # start step -> finished notes
        self.finished: list[Note] = []                     # finished since take_finished()
        self.last_release_steps: float | None = None
        self.last_onset_steps: float | None = None
        self.onsets = 0

    def note_on(self, time_steps: float, pitch: int, velocity: int) -> None:
        """Rules 4 and 5: velocity 0 is an off; a re-struck pitch ends the sounding note first."""
        if velocity == 0:
            self.note_off(time_steps, pitch)
            return
        if pitch in self.held:
            self._finish(pitch, time_steps)
        self.held[pitch] = (time_steps, velocity)
        self.last_onset_steps = time_steps
        self.onsets += 1

    def note_off(self, time_steps: float, pitch: int) -> None:
        """Rule 6: an off without a sounding note is ignored."""
        if pitch in self.held:
            self._finish(pitch, time_steps)
            if not self.held:
                self.last_release_steps = time_steps

    def _finish(self, pitch: int, off_steps: float) -> None:
        on_steps, velocity = self.held.pop(pitch)
        dur = quantize_duration(on_steps, off_steps, self.max_dur_steps)
        start = quantize_step(on_steps)
        note = Note(start, pitch, dur, velocity)
        self.done.setdefault(start, []).append(note)
        self.finished.append(note)

    def take_finished(self) -> list[Note]:
        """The notes finished since the last call, each once (for perform.steer's tracker)."""
        out, self.finished = self.finished, []
        return out

    def release_all(self, time_steps: float) -> None:
        """End every held note (e.g. the input port vanished)."""
        for pitch in list(self.held):
            self.note_off(time_steps, pitch)

    def is_holding(self) -> bool:
        return bool(self.held)

    def notes_by_step(self, now_steps: float) -> dict[int, list[Note]]:
        """Finished notes, plus held ones with a provisional duration (capped ones are final)."""
        out = {step: list(notes) for step, notes in self.done.items()}
        for pitch, (on_steps, velocity) in self.held.items():
            start = quantize_step(on_steps)
            held = quantize_duration(on_steps, now_steps, self.max_dur_steps)
            dur = provisional_steps(held, self.max_dur_steps)
            out.setdefault(start, []).append(Note(start, pitch, dur, velocity))
        return {step: merge_same_step(notes) for step, notes in out.items()}

    def forget_before(self, step: int) -> list[Note]:
        """Drop finished notes starting before `step`; returns them."""
        old = [s for s in self.done if s < step]
        return [n for s in sorted(old) for n in self.done.pop(s)]
