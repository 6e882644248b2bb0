"""Scores music21 reads (MusicXML, .mxl, ABC, Humdrum kern) to timed note events in grid steps.

Offsets and durations are quarter lengths (one beat); ties are joined first. Grace notes (no
duration) and unpitched percussion are left out. A note without a velocity gets DEFAULT_VELOCITY.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .midi_read import Event, ReadSkip, check_tracks

SCORE_SUFFIXES = (".mxl", ".xml", ".musicxml", ".abc", ".krn")
DEFAULT_VELOCITY = 80


def read_score(path: str | Path, steps_per_beat: int,
               tracks: Sequence[int] | None = None) -> dict[str, list[Event]]:
    """One song (label "") with the events of every part, or of the parts `tracks` picks."""
    from music21 import converter

    try:
        score = converter.parse(str(path), forceSource=True)   # no music21 pickle cache
    except Exception as err:  # noqa: BLE001 - music21 raises many kinds
        text = " ".join(str(err).split())[:160] or type(err).__name__
        raise ReadSkip(f"music21 cannot parse it: {text}") from err
    parts = list(getattr(score, "parts", [])) or [score]
    events: list[Event] = []
    for index in check_tracks(tracks, len(parts)):
        events += part_events(parts[index], steps_per_beat)
    return {"": events}


def part_events(part, steps_per_beat: int) -> list[Event]:
    """Note-off events first, so a note ending where the same pitch starts again is a re-strike."""
    from music21 import chord, note, percussion

    offs: list[Event] = []
    ons: list[Event] = []
    for element in part.stripTies().flatten().notes:
        length = float(element.duration.quarterLength)
        if length <= 0:
            continue
        if isinstance(element, chord.Chord) and not isinstance(element, percussion.PercussionChord):
            pitches = [p.midi for p in element.pitches]
        elif isinstance(element, note.Note):
            pitches = [element.pitch.midi]
        else:
            continue
        velocity = element.volume.velocity or DEFAULT_VELOCITY
        on = float(element.offset) * steps_per_beat
        off = on + length * steps_per_beat
        for pitch in pitches:
            ons.append((on, pitch, int(min(max(velocity, 1), 127))))
            offs.append((off, pitch, 0))
    return offs + ons
