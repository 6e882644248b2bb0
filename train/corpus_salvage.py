"""A forgiving MIDI reader: every note event up to the first broken byte of each track.

Used when symusic and mido both refuse a file (truncated, wrong chunk lengths). It trusts nothing:
chunk lengths are clamped to the bytes present, chunks other than MTrk are stepped over, the header's
track count is ignored (the chunks present are read), running status carries across meta and sysex
events (as many writers assume), data bytes over 127 are clipped, and a track stops at the first
event it cannot make sense of. Linear in the file's size; it cannot hang.
"""

from __future__ import annotations

import struct
from typing import Sequence

from .midi_read import DEFAULT_TEMPO_US, DRUM_CHANNEL, Event, Header, check_tracks, split_songs

# Data bytes after a status byte, for the system messages that may (wrongly) appear in a file.
SYSTEM_DATA_BYTES = {0xF1: 1, 0xF2: 2, 0xF3: 1}


class _Broken(Exception):
    pass


def salvage_events(data: bytes, header: Header, steps_per_beat: int,
                   tracks: Sequence[int] | None) -> tuple[dict[str, list[Event]], str]:
    """(songs, where it stopped): note events per song, as midi_read.split_songs makes them."""
    raw_tracks, problems = _read_chunks(data)
    chosen = check_tracks(tracks, len(raw_tracks)) if raw_tracks else []
    tempo_us = next((tempo for _, tempo in raw_tracks if tempo), DEFAULT_TEMPO_US)
    scale = steps_per_beat / header.ticks_per_beat(tempo_us)
    per_track = {i: [(ticks * scale, pitch, vel) for ticks, channel, pitch, vel in raw_tracks[i][0]
                     if channel != DRUM_CHANNEL] for i in chosen}
    where = "; ".join(problems)                  # empty: the salvage reader met no problem
    if not raw_tracks:
        where = "; ".join(problems) or "no MTrk chunk"
    return split_songs(per_track, header.format), where


def _read_chunks(data: bytes):
    """[(events, first_tempo_us)] per MTrk chunk, and a list of the problems met."""
    header_len = struct.unpack(">I", data[4:8])[0]
    pos = 8 + header_len if 6 <= header_len < len(data) else 14
    out, problems = [], []
    while pos + 8 <= len(data):
        name, size = data[pos:pos + 4], struct.unpack(">I", data[pos + 4:pos + 8])[0]
        start, end = pos + 8, pos + 8 + size
        if end > len(data):
            problems.append(f"chunk {len(out)} says {size} bytes, only {len(data) - start} left")
            end = len(data)
        if name == b"MTrk":
            events, tempo, stop = _read_track(data, start, end)
            if stop is not None:
                problems.append(f"track {len(out)} breaks at byte {stop}")
            out.append((events, tempo))
        pos = end
    if pos < len(data) and len(data) - pos < 8:
        problems.append(f"{len(data) - pos} stray bytes at the end")
    return out, problems


def _read_track(data: bytes, pos: int, end: int):
    """(events [(ticks, channel, pitch, velocity)], first tempo or None, byte it broke at or None)."""
    events, tempo, ticks, status = [], None, 0, None
    while pos < end:
        at = pos
        try:
            delta, pos = _varlen(data, pos, end)
            ticks += delta
            byte = _byte(data, pos, end)
            if byte >= 0x80:
                pos += 1
                if byte < 0xF0:
                    status = byte
            elif status is None:
                raise _Broken
            else:
                byte = status
            if byte == 0xFF:
                kind = _byte(data, pos, end)
                length, pos = _varlen(data, pos + 1, end)
                if kind == 0x51 and length == 3 and tempo is None and pos + 3 <= end:
                    tempo = int.from_bytes(data[pos:pos + 3], "big") or None
                pos = _skip(pos, length, end)
            elif byte in (0xF0, 0xF7):
                length, pos = _varlen(data, pos, end)
                pos = _skip(pos, length, end)
            elif byte >= 0xF0:
                pos = _skip(pos, SYSTEM_DATA_BYTES.get(byte, 0), end)
            else:
                pos = _channel_message(data, pos, end, byte, ticks, events)
        except _Broken:
            return events, tempo, at
    return events, tempo, None


def _channel_message(data: bytes, pos: int, end: int, status: int, ticks: int, events: list) -> int:
    kind, channel = status & 0xF0, status & 0x0F
    count = 1 if kind in (0xC0, 0xD0) else 2
    if pos + count > end:
        raise _Broken
    if kind in (0x80, 0x90):
        pitch, velocity = min(data[pos], 127), min(data[pos + 1], 127)
        events.append((ticks, channel, pitch, velocity if kind == 0x90 else 0))
    return pos + count


def _varlen(data: bytes, pos: int, end: int) -> tuple[int, int]:
    value = 0
    for _ in range(4):
        byte = _byte(data, pos, end)
        pos += 1
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, pos
    raise _Broken


def _byte(data: bytes, pos: int, end: int) -> int:
    if pos >= end:
        raise _Broken
    return data[pos]


def _skip(pos: int, length: int, end: int) -> int:
    if pos + length > end:
        raise _Broken
    return pos + length
