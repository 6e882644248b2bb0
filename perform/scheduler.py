"""Output: a heap of (deadline_s, seq, message), the only writer to the output port.

Every note-on is tracked until its note-off is sent, per owner ("inst" for the instrument, "thru"
for the player's echoed notes), so any stop can silence exactly what sounds: `release(owner)` sends
note-offs for that owner's sounding notes and drops its pending messages; `panic()` does it for
everyone, then all-notes-off (CC 123) on every channel used. A send that fails (the port vanished)
raises PortError after the scheduler has marked the note, so a later panic still tries to end it.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import Callable

import mido

from .errors import PortError

INST, THRU = "inst", "thru"
LATENESS_KEPT = 1 << 14
SUSTAIN, ALL_NOTES_OFF = 64, 123          # control numbers the panic sends, value 0


class Scheduler:
    """Sends messages at absolute deadlines (seconds of `now()`); tracks sounding notes."""

    def __init__(self, port, now: Callable[[], float],
                 on_sent: Callable[[float, mido.Message, str], None] | None = None) -> None:
        self.port = port
        self.now = now
        self.on_sent = on_sent            # (deadline_s, msg, owner): e.g. the recorder
        self._heap: list[list] = []       # [deadline_s, seq, msg, owner, alive]
        self._seq = itertools.count()
        self._pending_off: dict[tuple[str, int, int], list] = {}
        self.sounding: dict[str, set[tuple[int, int]]] = {INST: set(), THRU: set()}
        self.channels_used: set[int] = set()
        self.pedal_down: set[int] = set()      # channels whose sustain pedal was sent down (thru)
        self.sent = 0
        self.send_errors = 0
        self.lateness_s: deque[float] = deque(maxlen=LATENESS_KEPT)  # of the latest scheduled sends

    # scheduling ----------------------------------------------------------------------------------
    def at(self, deadline_s: float, msg: mido.Message, owner: str = INST) -> None:
        """Send `msg` at `deadline_s`."""
        entry = [deadline_s, next(self._seq), msg, owner, True]
        heapq.heappush(self._heap, entry)
        if msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
            self._pending_off[(owner, msg.channel, msg.note)] = entry

    def note(self, on_s: float, off_s: float, channel: int, pitch: int, velocity: int,
             owner: str = INST) -> None:
        """A note from `on_s` to `off_s`. If an earlier note of this pitch would still sound at
        `on_s`, it is ended just before (so its note-off cannot cut the new note short)."""
        key = (owner, channel, pitch)
        old = self._pending_off.get(key)
        if old is not None and old[4] and old[0] > on_s:
            old[4] = False
            self.at(on_s, mido.Message("note_off", channel=channel, note=pitch), owner)
        self.at(on_s, mido.Message("note_on", channel=channel, note=pitch, velocity=velocity), owner)
        self.at(off_s, mido.Message("note_off", channel=channel, note=pitch), owner)

    def next_deadline_s(self) -> float | None:
        while self._heap and not self._heap[0][4]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pending(self) -> int:
        return sum(1 for e in self._heap if e[4])

    # sending -------------------------------------------------------------------------------------
    def send_due(self) -> int:
        """Send every message due by now, in deadline order. Returns how many were sent."""
        count = 0
        while True:
            deadline_s = self.next_deadline_s()
            if deadline_s is None or deadline_s > self.now():
                return count
            entry = heapq.heappop(self._heap)
            _, _, msg, owner, _ = entry
            if msg.type in ("note_on", "note_off"):
                key = (owner, msg.channel, msg.note)
                if self._pending_off.get(key) is entry:
                    del self._pending_off[key]
            self.lateness_s.append(self.now() - deadline_s)
            self.send_now(msg, owner, deadline_s)
            count += 1

    def send_now(self, msg: mido.Message, owner: str = INST, stamp_s: float | None = None) -> None:
        """Send at once (thru, panic). Raises PortError when the port fails."""
        self._track(msg, owner)
        try:
            self.port.send(msg)
        except Exception as err:  # noqa: BLE001 - rtmidi raises plain errors when a port vanishes
            self.send_errors += 1
            raise PortError(f"sending {msg.type} to the output port failed: {err}; is the port or "
                            f"the synth still there? (check with --list-ports)") from err
        self.sent += 1
        if self.on_sent is not None:
            self.on_sent(self.now() if stamp_s is None else stamp_s, msg, owner)

    def _track(self, msg: mido.Message, owner: str) -> None:
        if msg.type == "control_change" and msg.control == SUSTAIN:
            (self.pedal_down.add if msg.value >= 64 else self.pedal_down.discard)(msg.channel)
            return
        if msg.type not in ("note_on", "note_off"):
            return
        key = (msg.channel, msg.note)
        self.channels_used.add(msg.channel)
        if msg.type == "note_on" and msg.velocity > 0:
            self.sounding[owner].add(key)
        else:
            self.sounding[owner].discard(key)

    # stopping ------------------------------------------------------------------------------------
    def cancel(self, owner: str) -> None:
        """Drop every pending message of `owner` (note-ons not yet played, their note-offs too)."""
        for entry in self._heap:
            if entry[3] == owner:
                entry[4] = False
        for key in [k for k in self._pending_off if k[0] == owner]:
            del self._pending_off[key]

    def release(self, owner: str = INST) -> None:
        """Silence `owner` now: pending messages dropped, note-off for each sounding note."""
        self.cancel(owner)
        first_error: PortError | None = None
        for channel, pitch in sorted(self.sounding[owner]):
            try:
                self.send_now(mido.Message("note_off", channel=channel, note=pitch), owner)
            except PortError as err:
                self.sounding[owner].discard((channel, pitch))
                first_error = first_error or err
        if first_error is not None:
            raise first_error

    def panic(self, extra_channels: tuple[int, ...] = ()) -> None:
        """Note-off for every sounding note of every owner, sustain off (CC 64 = 0) on every channel
        whose pedal was sent down (an echoed pedal left down holds notes that all-notes-off does
        not release), then all-notes-off (CC 123) on every channel used. Tries every message even when some fail; raises the first
        failure after."""
        errors: list[PortError] = []
        for owner in self.sounding:
            try:
                self.release(owner)
            except PortError as err:
                errors.append(err)
        for channel in sorted(self.pedal_down):
            try:
                self.send_now(mido.Message("control_change", channel=channel, control=SUSTAIN, value=0))
            except PortError as err:
                errors.append(err)
        for channel in sorted(self.channels_used | set(extra_channels)):
            try:
                self.send_now(mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF,
                                           value=0))
            except PortError as err:
                errors.append(err)
        if errors:
            raise errors[0]
