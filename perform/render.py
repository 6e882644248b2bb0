"""Offline rendering to a .mid file: no ports, no MIDI system needed (rtmidi is never opened).

    perform --out song.mid --bars 8
    perform --out song.mid --bars 4 --form "verse chorus verse chorus bridge chorus" --seed 7
    perform --out song.mid --bars 8 --prime phrase.mid

With a song form, every section is `bars` bars long and generated once, the first time its name
appears, continuing from everything before it; when the name recurs the same music is played again
(and fed to the model, so what follows a repeat knows it was heard). `--prime` feeds a MIDI file as
context first, and as the player's music for the steering (perform.steer: the key and register it
follows); the output holds only the new music.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import mido

from .errors import MidiFileError
from .quantize import notes_from_events
from .tokens import Note

TICKS_PER_BEAT = 480
DRUM_CHANNEL = 9
PRIME_MAX_STEPS = 1024      # a long prime file: only its last 1024 steps (64 bars of 4/4) are fed


def parse_form(text: str | None) -> list[str]:
    """'verse chorus verse' -> ['verse', 'chorus', 'verse'] (commas allowed); empty -> []."""
    return [word for word in (text or "").replace(",", " ").split() if word]


def read_prime(path: str | Path, steps_per_beat: int, max_dur_steps: int) -> list[Note]:
    """The notes of a MIDI file on the grid (drum channel 10 left out), starting at step 0; of a
    long file only the last PRIME_MAX_STEPS steps. Raises MidiFileError for a missing, unreadable or empty file."""
    path = Path(path)
    try:
        mid = mido.MidiFile(str(path), clip=True)
        events = _note_events(mid, steps_per_beat)
    except FileNotFoundError:
        raise MidiFileError(f"prime file {path} not found; pass an existing .mid file to --prime") from None
    except Exception as err:  # noqa: BLE001 - a hostile file makes mido raise many kinds
                              # (EOFError, ValueError, KeySignatureError, ...): all are "unreadable"
        detail = str(err) or ("it ends too early" if isinstance(err, EOFError) else type(err).__name__)
        raise MidiFileError(f"cannot read {path} as a MIDI file ({detail}); "
                            f"pass a standard .mid file to --prime") from err
    notes = notes_from_events(events, max_dur_steps)
    if not notes:
        raise MidiFileError(f"prime file {path} has no notes (outside the drum channel); "
                            f"pass a file with a melody or chords")
    first = max(notes[0].start_step, notes[-1].start_step + 1 - PRIME_MAX_STEPS)
    return [Note(n.start_step - first, n.pitch, n.dur_steps, n.velocity) for n in notes
            if n.start_step >= first]


def _note_events(mid: mido.MidiFile, steps_per_beat: int) -> list[tuple[float, int, int]]:
    if mid.ticks_per_beat <= 0:
        raise ValueError(f"ticks_per_beat is {mid.ticks_per_beat}")
    scale = steps_per_beat / mid.ticks_per_beat
    events = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type in ("note_on", "note_off") and msg.channel != DRUM_CHANNEL:
                velocity = msg.velocity if msg.type == "note_on" else 0
                events.append((tick * scale, msg.note, velocity))
    return events


def render(generator, bars: int, steps_per_bar: int, form: Sequence[str] = (),
           prime: Sequence[Note] = ()) -> list[Note]:
    """Generate `bars` bars (per section when a form is given). Notes start at step 0. The prime is
    what the player played: the generator's steering hears it (when it has `hear_player`)."""
    generator.reset()
    hear = getattr(generator, "hear_player", None)
    if hear is not None and prime:
        hear(prime)
    _feed(generator, prime, _end_step(prime))
    origin = generator.step_index
    section_steps = bars * steps_per_bar
    sections: dict[str, list[Note]] = {}
    out: list[Note] = []
    for index, name in enumerate(form or ["song"]):
        offset = index * section_steps
        if name in sections:
            _feed(generator, [_shift(n, offset) for n in sections[name]], section_steps, offset)
            out += [_shift(n, offset) for n in sections[name]]
            continue
        notes = []
        for _ in range(section_steps):
            step = generator.step_index - origin
            notes += [Note(step, n.pitch, n.dur_steps, n.velocity) for n in generator.next_step()]
        sections[name] = [_shift(n, -offset) for n in notes]
        out += notes
    return sorted(out)


def _end_step(notes: Sequence[Note]) -> int:
    return max((n.start_step + 1 for n in notes), default=0)


def _shift(note: Note, steps: int) -> Note:
    return Note(note.start_step + steps, note.pitch, note.dur_steps, note.velocity)


def _feed(generator, notes: Sequence[Note], num_steps: int, first_step: int = 0) -> None:
    by_step: dict[int, list[Note]] = {}
    for n in notes:
        by_step.setdefault(n.start_step, []).append(n)
    for step in range(first_step, first_step + num_steps):
        generator.feed_step(sorted(by_step.get(step, []), key=lambda n: n.pitch))


def write_midi(notes: Sequence[Note], path: str | Path, bpm: float, steps_per_beat: int,
               total_steps: int, channel: int = 0, beats_per_bar: int = 4) -> Path:
    """One-track .mid file with tempo and time signature, `total_steps` long; note durations are
    cut at the end. Written to a temporary name and renamed."""
    path = Path(path)
    to_ticks = TICKS_PER_BEAT // steps_per_beat if TICKS_PER_BEAT % steps_per_beat == 0 else None
    tick = (lambda s: s * to_ticks) if to_ticks else (lambda s: round(s * TICKS_PER_BEAT / steps_per_beat))
    timed: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        end = min(n.start_step + n.dur_steps, total_steps)
        if n.start_step >= total_steps or end <= n.start_step:
            continue
        timed.append((tick(n.start_step), 1, mido.Message("note_on", channel=channel, note=n.pitch,
                                                           velocity=min(max(n.velocity, 1), 127))))
        timed.append((tick(end), 0, mido.Message("note_off", channel=channel, note=n.pitch)))
    track = mido.MidiTrack([
        mido.MetaMessage("track_name", name="lstm-jam", time=0),
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
        mido.MetaMessage("time_signature", numerator=beats_per_bar, denominator=4, time=0)])
    last = 0
    for at, _, msg in sorted(timed, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=at - last))
        last = at
    track.append(mido.MetaMessage("end_of_track", time=max(tick(total_steps) - last, 0)))
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(track)
    if not path.parent.is_dir():
        raise MidiFileError(f"cannot write {path}: folder {path.parent} does not exist; create it first")
    tmp = path.with_name(path.name + ".tmp")
    try:
        mid.save(str(tmp))
        os.replace(tmp, path)
    except OSError as err:
        raise MidiFileError(f"cannot write {path}: {err}") from err
    return path
