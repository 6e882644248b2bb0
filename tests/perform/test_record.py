"""--record: a two-track .mid (player, instrument) on one clock with its tempo."""

import mido
import pytest

from perform.config import load_config
from perform.errors import MidiFileError
from perform.record import Recorder
from perform.session import Session

from fakes import FakeClock, FakeGenerator, FakePort

PERIOD_S = 60 / 100 / 4          # 100 bpm, 4 steps a beat


def track_notes(track):
    """(tick, type, pitch) of the note messages of a track, in absolute ticks."""
    tick, out = 0, []
    for msg in track:
        tick += msg.time
        if msg.type in ("note_on", "note_off"):
            kind = "on" if msg.type == "note_on" and msg.velocity > 0 else "off"
            out.append((tick, kind, msg.note))
    return out


def test_a_jam_is_recorded_as_player_and_instrument_tracks_with_the_tempo(tmp_path):
    cfg = load_config(None, {"clock": {"bpm": 100}, "perform": {"answer_bars": 1, "answer_pause_beats": 1}})
    clock = FakeClock(50.0)
    port = FakePort(clock)
    path = tmp_path / "jam.mid"
    gen = FakeGenerator(lambda s: [(72, 2, 80)] if s % 4 == 0 else [])
    session = Session(cfg, gen, port, now=clock.now, sleep=clock.sleep,
                      recorder=Recorder(path, steps_per_beat=4))
    cb = session.listener.callback
    clock.at(50.0 + 1 * PERIOD_S, lambda: cb(mido.Message("note_on", note=60, velocity=90)))
    clock.at(50.0 + 3.5 * PERIOD_S, lambda: cb(mido.Message("note_off", note=60)))
    session.run(max_ticks=30)

    mid = mido.MidiFile(str(path))
    assert mid.type == 1 and len(mid.tracks) == 2
    assert [m.name for t in mid.tracks for m in t if m.type == "track_name"] == ["player", "instrument"]
    assert [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"] == [mido.bpm2tempo(100)]
    per_step = mid.ticks_per_beat // 4
    assert track_notes(mid.tracks[0]) == [(1 * per_step, "on", 60), (round(3.5 * per_step), "off", 60)]
    # answer after release at 3.5 + a beat (4 steps) -> from step 8 (7.5 rounded up), 16 steps long
    ons = [t // per_step for t, kind, _ in track_notes(mid.tracks[1]) if kind == "on"]
    assert ons == [8, 12, 16, 20]
    offs = [t / per_step for t, kind, _ in track_notes(mid.tracks[1]) if kind == "off"]
    assert offs == [10, 14, 18, 22]


def test_tempo_changes_are_written_where_they_happened(tmp_path):
    rec = Recorder(tmp_path / "t.mid", steps_per_beat=4)
    rec.add("player", 0.0, mido.Message("note_on", note=60, velocity=90))
    rec.add("player", 8.0, mido.Message("note_off", note=60))
    rec.add("instrument", 4.0, mido.Message("note_on", note=67, velocity=80))
    rec.add("instrument", 6.0, mido.Message("note_off", note=67))
    rec.add("player", 2.0, mido.Message("clock"))                  # not music: not recorded
    rec.write([(0.0, 120.0), (4.0, 60.0)])
    mid = mido.MidiFile(str(tmp_path / "t.mid"))
    tempos = []
    tick = 0
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "set_tempo":
            tempos.append((tick, round(mido.tempo2bpm(msg.tempo))))
    assert tempos == [(0, 120), (480, 60)]
    assert mid.length == pytest.approx(0.5 + 1.0)                  # 1 beat at 120, 1 at 60
    assert track_notes(mid.tracks[1]) == [(480, "on", 67), (720, "off", 67)]


def test_recording_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MidiFileError, match="does not exist"):
        Recorder(tmp_path / "nope" / "jam.mid", 4)
