"""MIDI files to timed note events, measured in grid steps.

Readers, tried in order until one works:
1. symusic (a C++ parser, ~100x faster than mido) for ordinary files: format 0/1, ticks per quarter;
2. mido (clip=True: data bytes over 127 are clipped) for SMPTE division, format 2, picked tracks and
   whatever symusic refuses;
3. a salvage reader (train.corpus_salvage) that keeps every event up to the first broken byte, for
   truncated files and wrong chunk lengths.

Times are beats * steps_per_beat, a beat being a quarter note (ticks / ticks_per_quarter); tempo
changes do not move notes on the grid. SMPTE files (time in frames) are read at the file's first
tempo (120 BPM when it has none). Drums (channel 10, index 9) are left out.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Sequence

DRUM_CHANNEL = 9
DEFAULT_TEMPO_US = 500_000          # microseconds per beat: 120 BPM

Event = tuple[float, int, int]      # (time_steps, pitch, velocity); velocity 0 = note-off


class ReadSkip(Exception):
    """A file cannot be read; str(err) is the one-line reason shown to the user."""


class NoSuchTrack(ReadSkip):
    """`tracks` names a track the file lacks (no other reader is tried)."""


@dataclass
class MidiRead:
    """What a reader made of one file: songs (label -> events) and notes on how it went."""

    songs: dict[str, list[Event]] = field(default_factory=dict)
    reader: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Header:
    format: int
    ntrks: int
    division: int        # signed: > 0 ticks per quarter, < 0 SMPTE

    @property
    def smpte(self) -> bool:
        return self.division < 0

    def ticks_per_beat(self, tempo_us: int = DEFAULT_TEMPO_US) -> float:
        """Ticks in one beat; for SMPTE, frames/s * ticks/frame * seconds per beat."""
        if not self.smpte:
            return float(self.division)
        fps = -(self.division >> 8)
        fps = 29.97 if fps == 29 else fps
        ticks_per_frame = self.division & 0xFF
        return fps * ticks_per_frame * tempo_us / 1e6


def midi_bytes(data: bytes) -> bytes:
    """The Standard MIDI File inside `data` (RIFF RMID files wrap one). Raises ReadSkip."""
    if not data:
        raise ReadSkip("empty file (0 bytes)")
    if data.startswith(b"RIFF") and b"MThd" in data[:64]:
        data = data[data.index(b"MThd"):]
    if not data.startswith(b"MThd"):
        raise ReadSkip(f"not a MIDI file: starts with {data[:8]!r}, not the MThd header")
    if len(data) < 14:
        raise ReadSkip(f"truncated MIDI header: {len(data)} bytes, a header needs 14")
    return data


def read_header(data: bytes) -> Header:
    fmt, ntrks, division = struct.unpack(">HHh", data[8:14])
    if division == 0:
        raise ReadSkip("MIDI header says 0 ticks per quarter note; the file's timing is unusable")
    if division < 0 and division & 0xFF == 0:
        raise ReadSkip("MIDI header says 0 ticks per SMPTE frame; the file's timing is unusable")
    return Header(fmt, ntrks, division)


def read_midi(data: bytes, steps_per_beat: int, tracks: Sequence[int] | None = None) -> MidiRead:
    """Note events of a MIDI file's bytes. Format 2 gives one song per track (label "track<i>"),
    others one song (label ""). `tracks` picks track chunks by index (0 = the first MTrk).
    Raises ReadSkip with a one-line reason when nothing can be read."""
    from .corpus_salvage import salvage_events

    data = midi_bytes(data)
    header = read_header(data)
    failures: list[str] = []
    if tracks is None and header.format != 2 and not header.smpte:
        try:
            return MidiRead({"": symusic_events(data, steps_per_beat)}, "symusic")
        except Exception as err:  # noqa: BLE001 - any parser failure moves on to the next reader
            failures.append(f"symusic: {_one_line(err)}")
    try:
        return MidiRead(mido_events(data, header, steps_per_beat, tracks), "mido")
    except NoSuchTrack:
        raise
    except Exception as err:  # noqa: BLE001
        failures.append(f"mido: {_one_line(err)}")
    songs, where = salvage_events(data, header, steps_per_beat, tracks)
    if not any(songs.values()):
        raise ReadSkip("unreadable MIDI (" + "; ".join(failures) + f"; salvage: {where or 'no notes'})")
    warning = (f"read only as far as valid: {where}" if where else
               "read by the salvage reader, which found nothing wrong, after " + "; ".join(failures))
    return MidiRead(songs, "salvage", [warning])


def has_drum_notes(data: bytes) -> bool:
    """Whether a MIDI file has note-ons on the drum channel (10), which the corpus leaves out."""
    import mido
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception:  # noqa: BLE001 - a file mido cannot read: say nothing about drums
        return False
    return any(msg.type == "note_on" and msg.velocity > 0 and msg.channel == DRUM_CHANNEL
               for track in midi.tracks for msg in track)


def symusic_events(data: bytes, steps_per_beat: int) -> list[Event]:
    """All non-drum notes as events; offs first so equal-time off/on pairs are re-strikes."""
    import numpy as np
    import symusic

    score = symusic.Score.from_midi(data)
    scale = steps_per_beat / score.ticks_per_quarter
    offs: list[Event] = []
    ons: list[Event] = []
    for track in score.tracks:
        if track.is_drum:
            continue
        notes = track.notes.numpy()
        start = notes["time"].astype(np.int64)
        end = start + np.maximum(notes["duration"].astype(np.int64), 1)
        pitch = notes["pitch"].astype(np.int64).tolist()
        velocity = np.clip(notes["velocity"].astype(np.int64), 1, 127).tolist()
        ons += zip((start * scale).tolist(), pitch, velocity)
        offs += zip((end * scale).tolist(), pitch, [0] * len(pitch))
    return offs + ons


def mido_events(data: bytes, header: Header, steps_per_beat: int,
                tracks: Sequence[int] | None) -> dict[str, list[Event]]:
    import mido

    midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    if not midi.tracks:
        raise ReadSkip("no tracks")
    chosen = check_tracks(tracks, len(midi.tracks))
    scale = steps_per_beat / header.ticks_per_beat(_first_tempo(midi))
    per_track = {i: track_events(midi.tracks[i], scale) for i in chosen}
    return split_songs(per_track, header.format)


def track_events(track, scale: float) -> list[Event]:
    """Note events of one mido track (file order kept), drums left out."""
    events: list[Event] = []
    ticks = 0
    for msg in track:
        ticks += msg.time
        if msg.type not in ("note_on", "note_off") or msg.channel == DRUM_CHANNEL:
            continue
        velocity = msg.velocity if msg.type == "note_on" else 0
        events.append((ticks * scale, msg.note, min(velocity, 127)))
    return events


def split_songs(per_track: dict[int, list[Event]], fmt: int) -> dict[str, list[Event]]:
    """Format 2 tracks are independent patterns: one song each; otherwise all tracks merge."""
    if fmt == 2:
        return {f"track{i}": ev for i, ev in per_track.items() if ev}
    merged: list[Event] = []
    for events in per_track.values():
        merged += events
    return {"": merged}


def check_tracks(tracks: Sequence[int] | None, count: int) -> list[int]:
    if tracks is None:
        return list(range(count))
    bad = [t for t in tracks if not 0 <= t < count]
    if bad:
        raise NoSuchTrack(f"no track {bad[0]}: the file has tracks 0..{count - 1}")
    return list(tracks)


def _first_tempo(midi) -> int:
    for track in midi.tracks:
        for msg in track:
            if msg.type == "set_tempo":
                return msg.tempo
    return DEFAULT_TEMPO_US


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text[:160]
