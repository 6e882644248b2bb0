import mido
import pytest

from perform.errors import PortError
from perform.scheduler import INST, THRU, Scheduler

from fakes import FakeClock, FakePort


def make():
    clock = FakeClock(t0_s=0.0)
    port = FakePort(clock)
    return clock, port, Scheduler(port, clock.now)


def test_messages_go_out_at_their_deadlines_in_order():
    clock, port, sched = make()
    sched.note(1.0, 1.5, 0, 60, 90)
    sched.note(0.5, 2.0, 0, 64, 70)
    for t in (0.4, 0.5, 1.0, 1.49, 1.5, 2.0):
        clock.t = t
        sched.send_due()
    assert [(t, m.type, m.note) for t, m in port.sent] == [
        (0.5, "note_on", 64), (1.0, "note_on", 60), (1.5, "note_off", 60), (2.0, "note_off", 64)]
    assert sched.sounding[INST] == set()


def test_a_repeated_pitch_is_not_cut_short_by_the_old_note_off():
    clock, port, sched = make()
    sched.note(0.0, 2.0, 0, 60, 90)        # long note
    sched.note(1.0, 1.5, 0, 60, 90)        # same pitch again while the first sounds
    for t in (0.0, 1.0, 1.5, 2.0, 3.0):
        clock.t = t
        sched.send_due()
    assert [(t, m.type) for t, m in port.sent] == [
        (0.0, "note_on"), (1.0, "note_off"), (1.0, "note_on"), (1.5, "note_off")]


def test_release_silences_only_the_owner_and_drops_its_pending_notes():
    clock, port, sched = make()
    sched.note(0.0, 4.0, 0, 60, 90)
    sched.note(2.0, 3.0, 0, 62, 90)
    sched.send_now(mido.Message("note_on", channel=1, note=40, velocity=100), THRU)
    clock.t = 1.0
    sched.send_due()
    sched.release(INST)
    clock.t = 5.0
    sched.send_due()
    types = [(m.type, m.note) for _, m in port.sent]
    assert types == [("note_on", 40), ("note_on", 60), ("note_off", 60)]
    assert sched.sounding[THRU] == {(1, 40)}


def test_panic_ends_every_note_then_all_notes_off_on_each_channel():
    clock, port, sched = make()
    sched.note(0.0, 4.0, 2, 60, 90)
    sched.send_now(mido.Message("note_on", channel=1, note=40, velocity=100), THRU)
    sched.send_due()
    sched.panic(extra_channels=(5,))
    assert port.sounding_after() == set()
    offs = [m for _, m in port.sent if m.type == "note_off"]
    ccs = [m.channel for _, m in port.sent if m.type == "control_change" and m.control == 123]
    assert {(m.channel, m.note) for m in offs} == {(2, 60), (1, 40)}
    assert ccs == [1, 2, 5]
    assert port.sent[-1][1].type == "control_change"        # after the note-offs


def test_send_failure_is_a_port_error_and_panic_still_tries_everything():
    clock, port, sched = make()
    sched.note(0.0, 4.0, 0, 60, 90)
    sched.note(0.0, 4.0, 0, 64, 90)
    sched.send_due()
    port.fail_after = len(port.sent)
    with pytest.raises(PortError, match="output port failed"):
        sched.panic()
    assert sched.send_errors == 3                          # two note-offs and CC 123 all tried


def test_panic_lifts_the_sustain_pedal_before_all_notes_off():
    # an echoed pedal left down holds every note it caught: CC 123 does not release those
    clock, port, sched = make()
    sched.send_now(mido.Message("control_change", channel=3, control=64, value=127), THRU)
    sched.note(0.0, 4.0, 3, 60, 90)
    sched.send_due()
    sched.panic()
    ccs = [(m.control, m.value) for _, m in port.sent if m.type == "control_change" and m.channel == 3]
    assert ccs == [(64, 127), (64, 0), (123, 0)]
    sched.send_now(mido.Message("control_change", channel=3, control=64, value=0), THRU)
    port.sent.clear()
    sched.panic()                                      # the pedal is up: nothing to lift
    assert [m.control for _, m in port.sent if m.type == "control_change"] == [123]
