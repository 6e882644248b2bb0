"""`--record FILE.mid`: the jam as a two-track MIDI file (player, instrument) on one clock.

Events are kept in grid steps (the session's clock turns their times into steps, so tempo changes
are respected) and written as a type-1 file: track 0 "player" carries the tempo map, track 1
"instrument". The file is written to a temporary name and renamed, so a crash never leaves half a
file under the real name. Beside it goes a picture of the jam: `jam.mid` -> `jam.png`, a piano roll
with the player and the instrument in two colours (perform.pianoroll).
"""

from __future__ import annotations

import os
from pathlib import Path

import mido

from .errors import MidiFileError
from .pianoroll import spans_from_messages, write_piano_roll

TICKS_PER_BEAT = 480
PLAYER, INSTRUMENT = "player", "instrument"
RECORDED_TYPES = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "program_change"})


class Recorder:
    """Collects (steps, message) per track; `write` makes the .mid file."""

    def __init__(self, path: str | Path, steps_per_beat: int, beats_per_bar: int = 4) -> None:
        self.path = Path(path)
        self.png_path = self.path.with_suffix(".png")
        self.steps_per_beat, self.beats_per_bar = steps_per_beat, beats_per_bar
        self.events: dict[str, list[tuple[float, int, mido.Message]]] = {PLAYER: [], INSTRUMENT: []}
        self._order = 0
        if self.png_path == self.path:
            raise MidiFileError(f"cannot record to {self.path}: its piano roll goes to a .png beside "
                                f"it; name the recording FILE.mid")
        parent = self.path.parent if str(self.path.parent) else Path(".")
        if not parent.is_dir():
            raise MidiFileError(f"cannot record to {self.path}: folder {parent} does not exist; "
                                f"create it or pick another path")

    def add(self, track: str, at_steps: float, msg: mido.Message) -> None:
        """Add a message at grid position `at_steps` (negative positions are moved to 0)."""
        if msg.type in RECORDED_TYPES:
            self._order += 1
            self.events[track].append((max(at_steps, 0.0), self._order, msg))

    def write(self, tempo_changes: list[tuple[float, float]]) -> Path:
        """Write the file, then its piano roll (`png_path`); `tempo_changes` is [(at_steps, bpm),
        ...] starting at step 0."""
        mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        for name in (PLAYER, INSTRUMENT):
            track = mido.MidiTrack()
            track.append(mido.MetaMessage("track_name", name=name, time=0))
            timed = [(s, o, m) for s, o, m in self.events[name]]
            if name == PLAYER:
                timed += [(s, -1, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
                          for s, bpm in tempo_changes or [(0.0, 120.0)]]
            track.extend(self._delta(sorted(timed, key=lambda e: (e[0], e[1]))))
            mid.tracks.append(track)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            mid.save(str(tmp))
            os.replace(tmp, self.path)
        except OSError as err:
            raise MidiFileError(f"cannot write {self.path}: {err}") from err
        self.write_png()
        return self.path

    def write_png(self) -> Path:
        """The piano roll of what was recorded; a note still sounding ends at the last event."""
        timed = {name: [(s, m) for s, _, m in sorted(self.events[name], key=lambda e: (e[0], e[1]))]
                 for name in (PLAYER, INSTRUMENT)}
        end = max((e[0] for name in timed for e in timed[name][-1:]), default=0.0)
        write_piano_roll(self.png_path, spans_from_messages(timed[PLAYER], end),
                         spans_from_messages(timed[INSTRUMENT], end), self.steps_per_beat,
                         self.beats_per_bar)
        return self.png_path

    def _delta(self, timed):
        last_tick = 0
        for at_steps, _, msg in timed:
            tick = round(at_steps * TICKS_PER_BEAT / self.steps_per_beat)
            yield msg.copy(time=max(tick - last_tick, 0))
            last_tick = max(tick, last_tick)
