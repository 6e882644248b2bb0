"""Ports: finding by name, errors that list what exists, virtual ports; real ports on a JACK server."""

from __future__ import annotations

import time

import mido
import pytest

from perform import ports
from perform.errors import PortError

from fakes import sounding

OUTS = ["FluidSynth:midi_00", "IAC Driver Bus 1", "IAC Driver Bus 2", "Synth"]


# ---- matching names (no MIDI system needed) ---------------------------------------------------


def test_find_port_by_case_insensitive_substring():
    assert ports.find_port("fluid", OUTS) == "FluidSynth:midi_00"
    assert ports.find_port("bus 2", OUTS) == "IAC Driver Bus 2"


def test_exact_name_wins_over_other_substring_matches():
    assert ports.find_port("synth", OUTS) == "Synth"


def test_no_match_lists_the_available_ports_and_suggests_list_ports():
    with pytest.raises(PortError) as err:
        ports.find_port("IAC Bus 3", OUTS)
    text = str(err.value)
    assert "'IAC Bus 3'" in text and "--list-ports" in text
    assert all(name in text for name in OUTS)


def test_several_matches_list_the_matches_only():
    with pytest.raises(PortError) as err:
        ports.find_port("iac", OUTS, kind="input")
    text = str(err.value)
    assert "IAC Driver Bus 1" in text and "IAC Driver Bus 2" in text and "--input" in text
    assert "FluidSynth" not in text


def test_no_ports_at_all_points_to_virtual_and_the_readme():
    with pytest.raises(PortError, match="--virtual"):
        ports.find_port("x", [])


def test_unknown_api_lists_the_valid_names():
    with pytest.raises(PortError) as err:
        ports.resolve_api("pulse")
    assert all(name in str(err.value) for name in ("jack", "alsa", "coremidi", "windows"))


def test_api_names_are_case_insensitive_and_empty_means_default():
    import rtmidi
    assert ports.resolve_api("") == rtmidi.API_UNSPECIFIED
    if "jack" in ports.api_names():
        assert ports.resolve_api("JACK") == rtmidi.API_UNIX_JACK


@pytest.mark.parametrize("api, names, chosen", [
    ("jack", ["system:midi_capture_1", "a2j:Keystation [20] (capture): Keystation MIDI 1",
              "lstm-jam:lstm-jam out", "lstm-jam-01:lstm-jam in", "RtMidiOut Client:player",
              "a2j:Midi Through [14] (capture): Midi Through Port-0", "Hydrogen:out",
              "Midi-Bridge:Arturia KeyStep 37 0 (capture): KeyStep 37 MIDI 1"],
     ["system:midi_capture_1", "a2j:Keystation [20] (capture): Keystation MIDI 1",
      "Midi-Bridge:Arturia KeyStep 37 0 (capture): KeyStep 37 MIDI 1"]),
    ("alsa", ["Midi Through:Midi Through Port-0 14:0", "Keystation 49:Keystation 49 MIDI 1 20:0",
              "lstm-jam:lstm-jam out 128:0", "VMPK Output:out 129:0"],
     ["Keystation 49:Keystation 49 MIDI 1 20:0"]),
    ("coremidi", ["IAC Driver Bus 1", "Arturia KeyStep 37", "lstm-jam:lstm-jam out"],
     ["Arturia KeyStep 37"]),
    ("windows", ["loopMIDI Port 1", "USB Keystation 61es 0"], ["USB Keystation 61es 0"]),
])
def test_default_inputs_are_hardware_only(api, names, chosen):
    assert ports.hardware_inputs(names, api) == chosen


def test_stamped_queue_is_bounded_and_counts_what_it_drops():
    clock = iter(range(5))
    queue = ports.StampedQueue(maxlen=3, now=lambda: float(next(clock)))
    for i in range(5):
        queue.put(mido.Message("note_on", note=60 + i))
    assert queue.dropped == 2
    drained = queue.drain()
    assert [(m.note, t) for m, t in drained] == [(60, 0.0), (61, 1.0), (62, 2.0)]
    assert len(queue) == 0


# ---- real ports on a JACK dummy server ----------------------------------------------------------


def _wait(pred, timeout_s=2.0):
    deadline = time.monotonic() + timeout_s
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.002)
    return pred()


def test_virtual_ports_are_named_after_the_instrument_and_seen_by_other_clients(jack_server):
    out = ports.open_output(None, api="jack", virtual=True, client_name="vtest")
    inp = ports.open_input(None, api="jack", virtual=True, client_name="vtest")
    try:
        assert (out.name, inp.name) == ("vtest out", "vtest in")
        inputs, outputs = ports.list_ports("jack")  # a fresh client: another program's view
        assert any(n.endswith(":vtest out") for n in inputs)
        assert any(n.endswith(":vtest in") for n in outputs)
    finally:
        out.close(), inp.close()
    inputs, outputs = ports.list_ports("jack")
    assert not any("vtest" in n for n in inputs + outputs)


def test_open_by_substring_delivers_messages_stamped_on_arrival(jack_server):
    queue = ports.StampedQueue()
    synth = ports.open_input("Synth In", api="jack", virtual=True, client_name="fakesynth")
    synth.callback = queue.put  # mido's convention: set after opening
    got = []
    try:
        out = ports.open_output("SYNTH in", api="jack", client_name="otest")
        try:
            assert out.name == "fakesynth:Synth In"
            sent_s = time.perf_counter()
            out.send(mido.Message("note_on", note=64, velocity=90))
            assert _wait(lambda: got.extend(queue.drain()) or got), "the note never arrived"
            received_s = time.perf_counter()
        finally:
            out.close()
    finally:
        synth.close()
    msg, t_s = got[0]
    assert (msg.type, msg.note, msg.velocity) == ("note_on", 64, 90)
    assert sent_s <= t_s <= received_s


def test_misspelled_name_errors_with_the_list_and_creates_no_port(jack_server):
    synth = ports.open_input("Synth In", api="jack", virtual=True, client_name="fakesynth")
    try:
        before = ports.list_ports("jack")
        with pytest.raises(PortError) as err:
            ports.open_output("Sinth", api="jack", client_name="otest")
        assert "fakesynth:Synth In" in str(err.value) and "--list-ports" in str(err.value)
        with pytest.raises(PortError):
            ports.open_input("Sinth", api="jack", client_name="otest")
        assert ports.list_ports("jack") == before
    finally:
        synth.close()


def test_closing_right_after_sending_loses_nothing(jack_server):
    """The last messages before a close are a panic's note-offs: they must all arrive."""
    queue = ports.StampedQueue()
    synth = ports.open_input("Synth In", api="jack", virtual=True, client_name="drain",
                             callback=queue.put)
    try:
        for _ in range(10):
            out = ports.open_output("drain:Synth In", api="jack", client_name="otest")
            time.sleep(0.05)  # JACK connects a new port within a period or so
            for pitch in range(20):
                out.send(mido.Message("note_off", note=pitch))
            out.send(mido.Message("control_change", control=123))
            out.close()
            assert _wait(lambda: len(queue) >= 21, timeout_s=1.0), f"{len(queue)} of 21 arrived"
            queue.drain()
    finally:
        synth.close()


def test_closing_ends_every_note_it_played_even_when_jack_lost_the_note_off(jack_server):
    """JACK's default (asynchronous) mode loses the MIDI of a cycle that a client misses on a busy
    machine, a note-off in the middle of a jam too: closing sends a note-off for every pitch the
    port played. (The lost note-off is played here by never sending it.)"""
    queue = ports.StampedQueue()
    synth = ports.open_input("Synth In", api="jack", virtual=True, client_name="sweep",
                             callback=queue.put)
    try:
        out = ports.open_output("sweep:Synth In", api="jack", client_name="otest")
        time.sleep(0.05)
        out.send(mido.Message("note_on", channel=0, note=60, velocity=90))   # its note-off: lost
        out.send(mido.Message("note_on", channel=2, note=64, velocity=90))
        out.send(mido.Message("note_off", channel=2, note=64))
        out.close()
        got: list[mido.Message] = []

        def silent() -> bool:
            got.extend(m for m, _ in queue.drain())
            return len(got) > 3 and sounding(got) == set()
        assert _wait(silent, timeout_s=1.0), f"still on: {sounding(got)}; arrived: {got}"
    finally:
        synth.close()


def test_several_matching_ports_is_an_error_listing_them(jack_server):
    a = ports.open_input("bus 1", api="jack", virtual=True, client_name="iac")
    b = ports.open_input("bus 2", api="jack", virtual=True, client_name="iac")
    try:
        with pytest.raises(PortError) as err:
            ports.open_output("iac", api="jack", client_name="otest")
        assert "bus 1" in str(err.value) and "bus 2" in str(err.value)
        ports.open_output("bus 2", api="jack", client_name="otest").close()
    finally:
        a.close(), b.close()


def test_default_input_takes_no_software_ports_and_says_so(jack_server):
    player = ports.open_output("player", api="jack", virtual=True, client_name="keyboard-app")
    try:
        group = ports.open_input(None, api="jack")
        try:
            assert group.names == [] and group.name == "(no input)"
        finally:
            group.close()
    finally:
        player.close()


def test_port_exists_notices_a_port_vanishing(jack_server):
    synth = ports.open_input("Synth In", api="jack", virtual=True, client_name="gone")
    name = "gone:Synth In"
    assert ports.port_exists(name, "jack", kind="output")
    synth.close()
    assert _wait(lambda: not ports.port_exists(name, "jack", kind="output"))
    assert not ports.wait_for_port(name, "jack", timeout_s=0.2)
