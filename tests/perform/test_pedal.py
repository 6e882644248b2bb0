"""The sustain pedal (CC 64) as a pianist means it: released keys sound on until the pedal comes up
or the key is struck again; the model hears those lengths; --thru passes the pedal on."""
import mido

from perform.config import load_config
from perform.listener import PlayerTrack
from perform.session import Session
from perform.tokens import Note

from fakes import FakeClock, FakeGenerator, FakePort

PERIOD_S = 0.125          # 120 bpm, 4 steps a beat
T0 = 100.0


def test_a_key_released_under_the_pedal_sounds_until_the_pedal_comes_up():
    track = PlayerTrack(max_dur_steps=32)
    track.note_on(0, 60, 90)
    track.pedal(1, True)
    track.note_off(2, 60)
    assert not track.is_holding()                         # the key is up: turn taking goes on
    assert track.last_release_steps == 2
    assert track.notes_by_step(6)[0] == [Note(0, 60, 8, 90)]     # still sounding: provisional
    track.pedal(8, False)
    assert track.done == {0: [Note(0, 60, 8, 90)]}
    assert track.take_finished() == [Note(0, 60, 2, 90)]  # the key tracker heard it at the key's release


def test_without_the_pedal_the_note_ends_with_the_key_and_a_long_pedal_is_capped():
    track = PlayerTrack(max_dur_steps=32)
    track.note_on(0, 60, 90)
    track.note_off(2, 60)
    track.pedal(3, True)
    track.pedal(8, False)
    assert track.done == {0: [Note(0, 60, 2, 90)]}
    capped = PlayerTrack(max_dur_steps=16)
    capped.pedal(0, True)
    capped.note_on(0, 62, 80)
    capped.note_off(1, 62)
    capped.pedal(40, False)
    assert capped.done == {0: [Note(0, 62, 16, 80)]}


def test_striking_a_pedalled_key_again_ends_its_first_note():
    track = PlayerTrack(max_dur_steps=32)
    track.pedal(0, True)
    track.note_on(0, 60, 90)
    track.note_off(2, 60)
    track.note_on(5, 60, 70)                              # re-struck while the pedal holds it
    track.note_off(6, 60)
    track.pedal(9, False)
    assert track.done == {0: [Note(0, 60, 5, 90)], 5: [Note(5, 60, 4, 70)]}


def test_all_notes_off_ends_the_pedalled_notes_and_lifts_the_pedal():
    track = PlayerTrack(max_dur_steps=32)
    track.pedal(0, True)
    track.note_on(0, 60, 90)
    track.note_off(1, 60)
    track.release_all(4)
    assert track.done == {0: [Note(0, 60, 4, 90)]} and not track.pedal_down


def session(mode="duet", thru=False):
    cfg = load_config(None, {"perform": {"mode": mode}, "ports": {"thru": thru}})
    clock = FakeClock(T0)
    port = FakePort(clock)
    gen = FakeGenerator(lambda s: [])
    return clock, port, gen, Session(cfg, gen, port, now=clock.now, sleep=clock.sleep)


def send(clock, session, step, msg):
    clock.at(T0 + step * PERIOD_S, lambda: session.listener.callback(msg))


def test_live_the_model_hears_the_pedalled_length_and_thru_passes_the_pedal_on():
    clock, port, gen, s = session(thru=True)
    send(clock, s, 0, mido.Message("note_on", note=60, velocity=90))
    send(clock, s, 1, mido.Message("control_change", control=64, value=127))
    send(clock, s, 2, mido.Message("note_off", note=60))
    send(clock, s, 8, mido.Message("control_change", control=64, value=0))
    s.run(max_ticks=12)
    assert gen.heard()[0] == (Note(0, 60, 8, 90),)
    pedal = [(round((t - T0) / PERIOD_S), m.value) for t, m in port.sent
             if m.type == "control_change" and m.control == 64]
    assert pedal == [(1, 127), (8, 0)]                    # echoed the moment each arrived


def test_solo_does_not_listen_to_the_pedal_either():
    clock, port, gen, s = session(mode="solo")
    send(clock, s, 0, mido.Message("note_on", note=60, velocity=90))
    send(clock, s, 1, mido.Message("control_change", control=64, value=127))
    s.run(max_ticks=6)
    assert not s.player.pedal_down and all(notes == () for notes in gen.heard().values())
