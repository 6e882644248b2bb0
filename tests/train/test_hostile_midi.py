"""Hostile MIDI files, made by byte surgery: each loads as far as it is valid or is skipped with a
one-line reason; none crashes or hangs the corpus reader."""

from __future__ import annotations

import random
import struct
import time

import pytest

from perform.tokens import Vocab
from train.corpus import load_corpus
from train.errors import CorpusError

VOCAB = Vocab()
BEAT = 480                                   # ticks per beat of the files below


def vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def header(fmt: int = 0, ntrks: int = 1, division: int = BEAT) -> bytes:
    return b"MThd" + struct.pack(">IHHh", 6, fmt, ntrks, division)


def chunk(body: bytes, length: int | None = None) -> bytes:
    return b"MTrk" + struct.pack(">I", len(body) if length is None else length) + body


def melody(pitches=(60, 62, 64, 65), beat_ticks: int = BEAT, velocity: int = 80) -> bytes:
    """One note per beat, each a beat long, then End of Track."""
    body = b""
    for p in pitches:
        body += b"\x00" + bytes([0x90, p, velocity]) + vlq(beat_ticks) + bytes([0x80, p, 0])
    return body + b"\x00\xff\x2f\x00"


def smf(*bodies: bytes, fmt: int = 0, division: int = BEAT) -> bytes:
    return header(fmt, len(bodies), division) + b"".join(chunk(b) for b in bodies)


def load_one(tmp_path, data: bytes, name: str = "hostile.mid", **kw):
    """(notes as (step, pitch, dur, velocity), the error naming the skip reason or None, warnings)."""
    path = tmp_path / name
    path.write_bytes(data)
    try:
        corpus = load_corpus([str(path)], VOCAB, cache_dir=tmp_path / "cache", workers=1, **kw)
    except CorpusError as err:                  # the one file was skipped: the error gives why
        return [], str(err), []
    notes = [(n.start_step, n.pitch, n.dur_steps, n.velocity)
             for song in corpus.songs for n in VOCAB.decode(song.ids)]
    return notes, None, [w for _, w in corpus.warnings]


FOUR = [(0, 60, 4, 72), (4, 62, 4, 72), (8, 64, 4, 72), (12, 65, 4, 72)]   # melody() read back


def test_the_plain_file_reads_back(tmp_path):
    assert load_one(tmp_path, smf(melody())) == (FOUR, None, [])


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file (0 bytes)"),
    (b"Hello, I am a text file named .mid\n" * 3, "not a MIDI file"),
    (b"MThd\x00\x00", "truncated MIDI header"),
    (header(division=0) + chunk(melody()), "0 ticks per quarter note"),
    (header(division=-25 * 256) + chunk(melody()), "0 ticks per SMPTE frame"),
    (smf(b"\x00\xff\x2f\x00"), "no notes"),
])
def test_unreadable_files_are_skipped_with_a_one_line_reason(tmp_path, data, reason):
    notes, why, _ = load_one(tmp_path, data)
    assert notes == [] and reason in why and "\n" not in why


def test_a_truncated_file_keeps_the_notes_before_the_cut(tmp_path):
    data = smf(melody())
    cut = data[:data.index(bytes([0x80, 64]))]          # in the third note, before its note-off
    notes, why, warnings = load_one(tmp_path, cut)
    assert notes[:2] == FOUR[:2] and notes[2][:2] == (8, 64)
    assert why is None and "read only as far as valid" in warnings[0]


def test_a_chunk_length_past_the_end_is_clamped(tmp_path):
    data = header() + chunk(melody(), length=1_000_000)
    notes, why, warnings = load_one(tmp_path, data)
    assert notes == FOUR and "says 1000000 bytes" in warnings[0]


def test_a_chunk_length_too_short_keeps_what_it_covers(tmp_path):
    data = header() + chunk(melody(), length=9)         # covers the first note-on and its off
    notes, why, _ = load_one(tmp_path, data)
    assert why is None and notes[0] == FOUR[0]


def test_running_status_across_a_meta_event(tmp_path):
    body = (b"\x00\x90\x3c\x50"                         # note-on 60
            b"\x00\xff\x01\x02hi"                       # a text meta event
            + vlq(BEAT) + b"\x3c\x00"                   # running status: note-on 60 vel 0 (off)
            + b"\x00\x3e\x50" + vlq(BEAT) + b"\x3e\x00"  # 62 on, off, still running status
            + b"\x00\xff\x2f\x00")
    notes, why, _ = load_one(tmp_path, smf(body))
    assert notes == FOUR[:2]


def test_format_2_reads_each_pattern(tmp_path):
    data = smf(melody((60, 62)), melody((70, 72)), fmt=2)
    notes, why, _ = load_one(tmp_path, data)
    assert notes == [(0, 60, 4, 72), (4, 62, 4, 72), (0, 70, 4, 72), (4, 72, 4, 72)]


def test_smpte_division_is_read_in_seconds_at_120_bpm(tmp_path):
    division = struct.unpack(">h", bytes([256 - 25, 40]))[0]     # 25 frames/s, 40 ticks/frame
    data = smf(melody(beat_ticks=500), division=division)       # 1000 ticks/s: 500 ticks a beat
    notes, why, _ = load_one(tmp_path, data)
    assert notes == FOUR


def test_an_absurd_delta_time_cuts_the_song_instead_of_making_a_giant_rest(tmp_path):
    body = melody((60, 62))[:-4] + vlq(0x0FFFFFFF) + b"\x90\x40\x50" + vlq(BEAT) + b"\x80\x40\x00"
    started = time.perf_counter()
    notes, why, warnings = load_one(tmp_path, smf(body + b"\x00\xff\x2f\x00"))
    assert time.perf_counter() - started < 30                     # generous: it takes milliseconds
    assert notes == FOUR[:2] and "cut at 65536 steps" in warnings[0]


def test_a_huge_track_count_in_the_header(tmp_path):
    data = header(fmt=1, ntrks=65535) + chunk(melody())
    assert load_one(tmp_path, data)[0] == FOUR
    assert load_one(tmp_path, data, tracks=[0])[0] == FOUR         # the mido path too


def test_thousands_of_tracks(tmp_path):
    bodies = [b"\x00\xff\x2f\x00"] + [vlq(i * BEAT // 4) + bytes([0x90, 40 + i % 40, 80])
                                      + vlq(BEAT // 4) + bytes([0x80, 40 + i % 40, 0])
                                      + b"\x00\xff\x2f\x00" for i in range(3000)]
    notes, why, _ = load_one(tmp_path, smf(*bodies, fmt=1))
    assert len(notes) == 3000 and notes[-1][0] == 2999


def test_data_bytes_over_127_are_clipped(tmp_path):
    data = smf(melody(velocity=200))
    notes, why, _ = load_one(tmp_path, data)
    top = VOCAB.bin_velocity(VOCAB.velocity_bin(127))
    assert notes == [(s, p, d, top) for s, p, d, _ in FOUR]


def test_a_riff_wrapped_file_and_trailing_garbage(tmp_path):
    data = smf(melody())
    riff = b"RIFF" + struct.pack("<I", len(data) + 12) + b"RMIDdata" + struct.pack("<I", len(data)) + data
    assert load_one(tmp_path, riff, name="wrapped.rmi")[0] == FOUR
    assert load_one(tmp_path, data + b"\x00garbage!")[0] == FOUR


def test_random_damage_never_crashes_or_hangs_a_run(tmp_path):
    """40 damaged copies of a file in one folder, read in parallel: each is read or skipped."""
    rng = random.Random(7)
    good = smf(melody(tuple(range(48, 80))), melody(tuple(range(60, 70))), fmt=1)
    folder = tmp_path / "damaged"
    folder.mkdir()
    (folder / "good.mid").write_bytes(good)
    for i in range(40):
        data = bytearray(good)
        for _ in range(rng.randint(1, 12)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[:rng.randrange(len(data))]
        (folder / f"d{i:02}.mid").write_bytes(bytes(data))
    started = time.perf_counter()
    corpus = load_corpus([str(folder)], VOCAB, cache_dir=tmp_path / "cache", workers=2)
    assert time.perf_counter() - started < 60
    assert corpus.files_ok + len(corpus.skipped) == 41 and corpus.files_ok >= 1
    assert all(reason and "\n" not in reason for _, reason in corpus.skipped)
