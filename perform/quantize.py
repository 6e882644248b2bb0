"""Quantization: timed note-on/off events to notes on the grid.

The rules (each is tested in tests/perform/test_quantize.py):
1. An onset goes to the nearest step (half a step rounds up).
2. A note's end goes to the nearest step too; its duration is end - start, at least one step.
3. A duration longer than the cap is cut to the cap.
4. A note-on with velocity 0 is a note-off.
5. A pitch struck again while it sounds ends the sounding note at the new onset, then starts anew.
6. A note-off with no sounding note of that pitch is ignored.
7. A note still sounding when the events end is ended at `end_steps` (default: the last event).
8. Two notes of one pitch that land on one step are one note: the longer (then louder) is kept.
Events at the same time are taken in the order given (a file's order), so an off then an on of the
same pitch at one time is a re-strike, not a zero-length note.
"""

from __future__ import annotations

from typing import Iterable

from .tokens import Note


def quantize_step(time_steps: float) -> int:
    """Nearest step, half rounding up (not banker's rounding)."""
    return int(time_steps + 0.5) if time_steps >= 0 else -int(-time_steps + 0.5)


def notes_from_events(events: Iterable[tuple[float, int, int]], max_dur_steps: int,
                      end_steps: float | None = None) -> list[Note]:
    """(time_steps, pitch, velocity) events, velocity 0 meaning note-off, to sorted notes.

    `time_steps` is time measured in grid steps (beats * steps_per_beat, or seconds / period_s).
    Events need not be sorted; equal times keep their given order.
    """
    ordered = sorted(enumerate(events), key=lambda item: (item[1][0], item[0]))
    sounding: dict[int, tuple[float, int]] = {}     # pitch -> (onset time_steps, velocity)
    raw: list[tuple[float, float, int, int]] = []    # (on, off, pitch, velocity)
    last_time = 0.0
    for _, (time_steps, pitch, velocity) in ordered:
        last_time = max(last_time, time_steps)
        if pitch in sounding:
            on, vel = sounding.pop(pitch)
            raw.append((on, time_steps, pitch, vel))
        if velocity > 0:
            sounding[pitch] = (time_steps, velocity)
    end = last_time if end_steps is None else end_steps
    for pitch, (on, vel) in sounding.items():
        raw.append((on, max(end, on), pitch, vel))
    return merge_same_step(
        Note(quantize_step(on), pitch, quantize_duration(on, off, max_dur_steps), vel)
        for on, off, pitch, vel in raw)


def quantize_duration(on_steps: float, off_steps: float, max_dur_steps: int) -> int:
    """Rules 2 and 3: quantized end minus quantized start, within 1..max_dur_steps."""
    return min(max(quantize_step(off_steps) - quantize_step(on_steps), 1), max_dur_steps)


def merge_same_step(notes: Iterable[Note]) -> list[Note]:
    """Rule 8: one note per (step, pitch), the longer then louder kept; sorted."""
    best: dict[tuple[int, int], Note] = {}
    for n in notes:
        key = (n.start_step, n.pitch)
        old = best.get(key)
        if old is None or (n.dur_steps, n.velocity) > (old.dur_steps, old.velocity):
            best[key] = n
    return sorted(best.values())
