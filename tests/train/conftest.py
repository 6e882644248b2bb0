"""Fixtures for the corpus tests: MIDI files written with mido inside each test."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

TICKS_PER_BEAT = 480


def midi_track(notes, ticks_per_beat: int = TICKS_PER_BEAT) -> mido.MidiTrack:
    """notes: (start_beats, dur_beats, pitch, velocity[, channel]). Offs before ons at one tick."""
    timed = []
    for note in notes:
        start, dur, pitch, velocity = note[:4]
        channel = note[4] if len(note) > 4 else 0
        on, off = round(start * ticks_per_beat), round((start + dur) * ticks_per_beat)
        timed.append((on, 1, mido.Message("note_on", note=pitch, velocity=velocity, channel=channel)))
        timed.append((off, 0, mido.Message("note_off", note=pitch, velocity=0, channel=channel)))
    track, now = mido.MidiTrack(), 0
    for tick, _, msg in sorted(timed, key=lambda t: (t[0], t[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    return track


@pytest.fixture
def write_midi(tmp_path):
    """write_midi(name, [notes_of_track0, notes_of_track1, ...], type=1) -> Path of a .mid file."""

    def write(name: str, tracks, *, type: int = 1, ticks_per_beat: int = TICKS_PER_BEAT,
              folder: Path | None = None) -> Path:
        midi = mido.MidiFile(type=type, ticks_per_beat=ticks_per_beat)
        for notes in tracks:
            midi.tracks.append(midi_track(notes, ticks_per_beat))
        path = (folder or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        midi.save(path)
        return path

    return write
