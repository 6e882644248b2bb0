"""The input side: the port callback stamps and enqueues; the engine drains and quantizes.

`Listener.callback` is what the MIDI port calls: it stamps the message with `now()` and puts it in a
bounded queue (a full queue drops the message and counts it), then wakes the engine. Nothing else
happens in the callback. `PlayerTrack` turns the drained note events into notes on the grid with the
rules of perform.quantize; a held note gets a provisional duration until it is released. The sustain
pedal (CC 64) counts as a pianist means it: a key released while the pedal is down goes on sounding,
and its note ends when the pedal comes up or the key is struck again.
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
        self.pedalled: dict[int, tuple[float, int]] = {}  # released keys the pedal holds, the same
        self.pedal_down = False
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
        if pitch in self.pedalled:
            self._finish(pitch, time_steps, pedalled=True)
        self.held[pitch] = (time_steps, velocity)
        self.last_onset_steps = time_steps
        self.onsets += 1

    def note_off(self, time_steps: float, pitch: int) -> None:
        """Rule 6: an off without a sounding note is ignored. With the pedal down the note goes on
        sounding (the key counts as released: turn taking goes by the keys)."""
        if pitch in self.held:
            if self.pedal_down:
                on_steps, velocity = self.pedalled[pitch] = self.held.pop(pitch)
                self.finished.append(self._note(on_steps, time_steps, pitch, velocity))
            else:
                self._finish(pitch, time_steps)
            if not self.held:
                self.last_release_steps = time_steps

    def pedal(self, time_steps: float, down: bool) -> None:
        """The sustain pedal (CC 64, down at a value >= 64): lifting it ends the notes it held."""
        self.pedal_down = down
        if not down:
            for pitch in list(self.pedalled):
                self._finish(pitch, time_steps, pedalled=True)

    def _note(self, on_steps: float, off_steps: float, pitch: int, velocity: int) -> Note:
        dur = quantize_duration(on_steps, off_steps, self.max_dur_steps)
        return Note(quantize_step(on_steps), pitch, dur, velocity)

    def _finish(self, pitch: int, off_steps: float, pedalled: bool = False) -> None:
        """End a sounding note. A pedalled one was already in `finished` since its key came up."""
        on_steps, velocity = (self.pedalled if pedalled else self.held).pop(pitch)
        note = self._note(on_steps, off_steps, pitch, velocity)
        self.done.setdefault(note.start_step, []).append(note)
        if not pedalled:
            self.finished.append(note)

    def take_finished(self) -> list[Note]:
        """The notes whose keys came up since the last call, each once (for perform.steer's
        tracker; a pedalled note with its length to the key's release)."""
        out, self.finished = self.finished, []
        return out

    def release_all(self, time_steps: float) -> None:
        """End every held and pedalled note, the pedal up (e.g. the input port vanished)."""
        self.pedal(time_steps, False)
        for pitch in list(self.held):
            self.note_off(time_steps, pitch)

    def is_holding(self) -> bool:
        return bool(self.held)

    def notes_by_step(self, now_steps: float) -> dict[int, list[Note]]:
        """Finished notes, plus held and pedalled ones with a provisional duration (capped ones
        are final)."""
        out = {step: list(notes) for step, notes in self.done.items()}
        for pitch, (on_steps, velocity) in (self.held | self.pedalled).items():
            start = quantize_step(on_steps)
            held = quantize_duration(on_steps, now_steps, self.max_dur_steps)
            dur = provisional_steps(held, self.max_dur_steps)
            out.setdefault(start, []).append(Note(start, pitch, dur, velocity))
        return {step: merge_same_step(notes) for step, notes in out.items()}

    def forget_before(self, step: int) -> list[Note]:
        """Drop finished notes starting before `step`; returns them."""
        old = [s for s in self.done if s < step]
        return [n for s in sorted(old) for n in self.done.pop(s)]
