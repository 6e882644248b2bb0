"""A picture of the jam: a piano roll PNG, time across and pitch up, the player and the instrument in
two colours. numpy and zlib only (a PNG is RGB rows, zlib-compressed, in CRC-checked chunks).

    write_piano_roll("jam.png", player=spans, instrument=spans, steps_per_beat=4)
    spans_from_messages([(steps, msg), ...])     # recorded note and pedal messages -> spans
    spans_from_notes(notes, offset_steps=0)      # perform.tokens.Note -> spans

A span is (start_steps, end_steps, pitch). Grey lines mark the beats (darker: the bars); the rows
of the Cs are shaded. Four pixels a step and a semitone, fewer a step for a long jam (MAX_WIDTH).
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import MidiFileError

PLAYER_COLOUR = (31, 119, 180)          # blue
INSTRUMENT_COLOUR = (230, 97, 0)        # orange
BACKGROUND, C_ROW, BEAT_LINE, BAR_LINE = (255, 255, 255), (236, 236, 236), (222, 222, 222), (170, 170, 170)
PX_PER_STEP, PX_PER_PITCH = 4, 4
MAX_WIDTH = 8192
MARGIN_PITCHES, MIN_PITCHES = 2, 25
SUSTAIN = 64

Span = tuple[float, float, int]


@dataclass(frozen=True)
class Layout:
    """Where a step and a pitch are in the picture."""

    first_step: float
    px_per_step: float
    low_pitch: int
    high_pitch: int
    width: int
    height: int

    def x(self, steps: float) -> int:
        return int(math.floor((steps - self.first_step) * self.px_per_step))

    def y(self, pitch: int) -> int:
        """The top row of `pitch` (higher pitches are higher up)."""
        return (self.high_pitch - pitch) * PX_PER_PITCH


def spans_from_notes(notes, offset_steps: float = 0.0) -> list[Span]:
    return [(n.start_step + offset_steps, n.start_step + n.dur_steps + offset_steps, n.pitch) for n in notes]


def spans_from_messages(timed: Iterable[tuple[float, object]], end_steps: float | None = None) -> list[Span]:
    """Notes from (steps, mido message) pairs in time order, the sustain pedal (CC 64) folded in
    as a pianist means it: a key released while the pedal is down sounds until the pedal comes up
    or the key is struck again. A note still sounding at the end ends at `end_steps` (default:
    the last message)."""
    sounding: dict[tuple[int, int], float] = {}       # (channel, pitch) -> start
    pedalled: set[tuple[int, int]] = set()             # released keys the pedal holds
    pedal_down: set[int] = set()
    spans: list[Span] = []
    last = 0.0

    def end(key, at):
        spans.append((sounding.pop(key), at, key[1]))
        pedalled.discard(key)
    for at, msg in timed:
        last = max(last, at)
        kind = msg.type
        if kind == "control_change" and msg.control == SUSTAIN:
            if msg.value >= 64:
                pedal_down.add(msg.channel)
            else:
                pedal_down.discard(msg.channel)
                for key in [k for k in pedalled if k[0] == msg.channel]:
                    end(key, at)
        elif kind in ("note_on", "note_off"):
            key = (msg.channel, msg.note)
            if kind == "note_on" and msg.velocity > 0:
                if key in sounding:
                    end(key, at)
                sounding[key] = at
            elif key in sounding and key not in pedalled:
                if msg.channel in pedal_down:
                    pedalled.add(key)
                else:
                    end(key, at)
    for key in list(sounding):
        end(key, max(last if end_steps is None else end_steps, sounding[key]))
    return spans


def layout_for(spans: Sequence[Span], steps_per_beat: int, beats_per_bar: int) -> Layout:
    bar = steps_per_beat * beats_per_bar
    first = min(0.0, math.floor(min((s for s, _, _ in spans), default=0.0)))
    last = max(first + bar, max((e for _, e, _ in spans), default=0.0))
    pps = min(float(PX_PER_STEP), MAX_WIDTH / (last - first))
    pitches = [p for _, _, p in spans] or [60]
    low, high = min(pitches) - MARGIN_PITCHES, max(pitches) + MARGIN_PITCHES
    missing = MIN_PITCHES - (high - low + 1)
    if missing > 0:
        low, high = low - missing // 2, high + missing - missing // 2
    low, high = max(low, 0), min(high, 127)
    return Layout(first, pps, low, high, max(int(math.ceil((last - first) * pps)), 1),
                  (high - low + 1) * PX_PER_PITCH)


def draw(player: Sequence[Span], instrument: Sequence[Span], steps_per_beat: int = 4,
         beats_per_bar: int = 4) -> tuple[np.ndarray, Layout]:
    """(height, width, 3) uint8 RGB picture and its layout. The instrument is drawn over the player."""
    lay = layout_for(list(player) + list(instrument), steps_per_beat, beats_per_bar)
    img = np.empty((lay.height, lay.width, 3), dtype=np.uint8)
    img[:] = BACKGROUND
    for pitch in range(lay.low_pitch, lay.high_pitch + 1):
        if pitch % 12 == 0:
            img[lay.y(pitch):lay.y(pitch) + PX_PER_PITCH] = C_ROW
    if lay.px_per_step * steps_per_beat >= 3:          # lines closer than that would be a grey wash
        first_beat = math.ceil(lay.first_step / steps_per_beat)
        last_beat = int((lay.first_step + lay.width / lay.px_per_step) / steps_per_beat)
        for beat in range(first_beat, last_beat + 1):
            x = lay.x(beat * steps_per_beat)
            if 0 <= x < lay.width:
                img[:, x] = BAR_LINE if beat % beats_per_bar == 0 else BEAT_LINE
    for spans, colour in ((player, PLAYER_COLOUR), (instrument, INSTRUMENT_COLOUR)):
        for start, stop, pitch in spans:
            if not lay.low_pitch <= pitch <= lay.high_pitch:
                continue
            x0 = lay.x(start)
            x1 = max(lay.x(stop), x0 + 1)
            if x1 - x0 >= 3:
                x1 -= 1                                 # a gap between repeated notes
            y0 = lay.y(pitch)
            img[y0:y0 + PX_PER_PITCH - 1, x0:x1] = colour
    return img, lay


def encode_png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of a (height, width, 3) uint8 array."""
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # each row: filter type 0, then RGB
    rows[:, 1:] = rgb.reshape(height, 3 * width)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + chunk(b"IEND", b""))


def write_piano_roll(path: str | Path, player: Sequence[Span] = (), instrument: Sequence[Span] = (),
                     steps_per_beat: int = 4, beats_per_bar: int = 4) -> Layout:
    """Write the PNG (to a temporary name, then renamed); returns its layout. Raises MidiFileError
    when it cannot be written."""
    path = Path(path)
    img, lay = draw(player, instrument, steps_per_beat, beats_per_bar)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_bytes(encode_png(img))
        os.replace(tmp, path)
    except OSError as err:
        raise MidiFileError(f"cannot write the piano roll {path}: {err}; check the folder exists "
                            f"and is writable") from err
    return lay
