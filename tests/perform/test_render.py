"""Offline rendering: notes, tempo, bars, song-form repetition, --prime."""

import subprocess
import sys

import mido
import pytest

from perform.errors import MidiFileError
from perform.render import parse_form, read_prime, render, write_midi
from perform.tokens import Note

from fakes import FakeGenerator


def file_notes(path):
    """(start_tick, pitch, dur_ticks) of every note in a .mid file."""
    mid = mido.MidiFile(str(path))
    out, on = [], {}
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity > 0:
                on[msg.note] = tick
            elif msg.type in ("note_on", "note_off") and msg.note in on:
                start = on.pop(msg.note)
                out.append((start, msg.note, tick - start))
    return sorted(out)


def test_render_writes_the_bars_at_the_tempo_with_the_model_s_notes(tmp_path):
    gen = FakeGenerator(lambda s: [(60 + s % 12, 2, 100)] if s % 4 == 0 else [])
    notes = render(gen, bars=2, steps_per_bar=16)
    assert [n.start_step for n in notes] == [0, 4, 8, 12, 16, 20, 24, 28]
    path = write_midi(notes, tmp_path / "song.mid", bpm=90, steps_per_beat=4, total_steps=32)
    mid = mido.MidiFile(str(path))
    assert mid.length == pytest.approx(2 * 4 * 60 / 90)          # exactly two bars of 4/4
    tempos = [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"]
    assert tempos == [mido.bpm2tempo(90)]
    got = [(m.note, m.velocity) for m in mid.tracks[0] if m.type == "note_on"]
    assert got[:3] == [(60, 100), (64, 100), (68, 100)]
    ticks = [start for start, _, _ in file_notes(path)]
    assert ticks == [s * 120 for s in (0, 4, 8, 12, 16, 20, 24, 28)]


def test_notes_ringing_past_the_end_are_cut_at_the_last_bar(tmp_path):
    notes = [Note(14, 60, 8, 90)]
    path = write_midi(notes, tmp_path / "a.mid", 120, 4, total_steps=16)
    assert file_notes(path) == [(14 * 120, 60, 2 * 120)]
    assert mido.MidiFile(str(path)).length == pytest.approx(2.0)


def test_song_form_repeats_a_section_when_its_name_recurs():
    gen = FakeGenerator(lambda s: [(40 + s % 50, 1, 80)])
    form = parse_form("verse chorus verse, bridge")
    assert form == ["verse", "chorus", "verse", "bridge"]
    notes = render(gen, bars=1, steps_per_bar=8, form=form)
    section = lambda k: [(n.start_step - 8 * k, n.pitch) for n in notes if 8 * k <= n.start_step < 8 * k + 8]
    assert section(2) == section(0)                       # verse again: the same music
    assert section(1) != section(0) and section(3) not in (section(0), section(1))
    kinds = [kind for _, _, kind in gen.context]
    assert kinds == ["gen"] * 16 + ["fed"] * 8 + ["gen"] * 8   # the repeat is fed as context
    assert len(notes) == 32


def make_midi(path, events, ticks_per_beat=96):
    """events: (tick, type, pitch, velocity, channel)."""
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    last = 0
    for tick, kind, pitch, vel, channel in sorted(events, key=lambda e: e[0]):
        track.append(mido.Message(kind, note=pitch, velocity=vel, channel=channel, time=tick - last))
        last = tick
    mid.tracks.append(track)
    mid.save(str(path))
    return path


def test_prime_is_read_on_the_grid_and_fed_before_generating(tmp_path):
    path = make_midi(tmp_path / "p.mid", [
        (96, "note_on", 60, 90, 0), (192, "note_off", 60, 0, 0),        # a beat of rest, a beat
        (192, "note_on", 64, 70, 0), (216, "note_off", 64, 0, 0),
        (200, "note_on", 36, 100, 9), (300, "note_off", 36, 0, 9)])     # drums are left out
    prime = read_prime(path, steps_per_beat=4, max_dur_steps=32)
    assert prime == [Note(0, 60, 4, 90), Note(4, 64, 1, 70)]
    gen = FakeGenerator(lambda s: [(72, 1, 80)])
    notes = render(gen, bars=1, steps_per_bar=4, prime=prime)
    assert gen.context[0] == (0, (Note(0, 60, 4, 90),), "fed")
    assert gen.context[4] == (4, (Note(4, 64, 1, 70),), "fed")
    assert [kind for _, _, kind in gen.context] == ["fed"] * 5 + ["gen"] * 4
    assert [n.start_step for n in notes] == [0, 1, 2, 3]              # output: the new music only


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    (b"", "cannot read"),
    (b"MThd\x00\x00\x00\x06\x00\x01\x00\x01", "cannot read"),         # truncated header
    (bytes(range(256)) * 4, "cannot read"),
])
def test_bad_prime_files_raise_a_clear_error(tmp_path, content, match):
    path = tmp_path / "bad.mid"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MidiFileError, match=match):
        read_prime(path, 4, 32)


def test_a_prime_without_notes_is_an_error(tmp_path):
    path = make_midi(tmp_path / "drums.mid", [(0, "note_on", 36, 100, 9), (10, "note_off", 36, 0, 9)])
    with pytest.raises(MidiFileError, match="no notes"):
        read_prime(path, 4, 32)


def test_offline_render_needs_no_midi_system(tmp_path):
    """--out renders with rtmidi unusable: it is never imported."""
    code = f"""
import sys
sys.modules['rtmidi'] = None          # importing rtmidi now fails
sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
import fakes, perform.cli as cli
from perform.tokens import Vocab
cli.load_generator = lambda cfg: (fakes.FakeGenerator(), 'fake', Vocab())
rc = cli.main(['--out', {str(tmp_path / 'x.mid')!r}, '--bars', '2'])
print(rc, 'rtmidi' in sys.modules and sys.modules['rtmidi'] is not None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["0", "False"], out.stderr
    assert len(file_notes(tmp_path / "x.mid")) == 32


def test_a_long_prime_keeps_only_its_last_1024_steps(tmp_path):
    events = []
    for k in range(600):                                 # a note every 2 steps: 1200 steps
        events += [(k * 48, "note_on", 60 + k % 12, 90, 0), (k * 48 + 24, "note_off", 60 + k % 12, 0, 0)]
    prime = read_prime(make_midi(tmp_path / "long.mid", events), 4, 32)
    assert prime[0].start_step == 1 and prime[-1].start_step == 1023   # the window is 0..1023
    assert len(prime) == 512 and prime[-1].pitch == 60 + 599 % 12


def test_writing_into_a_missing_folder_or_reading_a_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MidiFileError, match="does not exist"):
        write_midi([Note(0, 60, 1, 90)], tmp_path / "no" / "x.mid", 120, 4, 16)
    with pytest.raises(MidiFileError, match="cannot read"):
        read_prime(tmp_path, 4, 32)


def test_a_prime_with_a_corrupt_key_signature_is_a_clear_error(tmp_path):
    path = make_midi(tmp_path / "k.mid", [(0, "note_on", 60, 90, 0), (96, "note_off", 60, 0, 0)])
    data = bytearray(path.read_bytes())
    track = data.index(b"MTrk") + 8
    meta = bytes([0x00, 0xFF, 0x59, 0x02, 0xE8, 0xC0])          # 24 flats, mode 192
    data[track:track] = meta
    length = int.from_bytes(data[track - 4:track], "big") + len(meta)
    data[track - 4:track] = length.to_bytes(4, "big")
    path.write_bytes(bytes(data))
    with pytest.raises(MidiFileError, match="cannot read"):
        read_prime(path, 4, 32)
