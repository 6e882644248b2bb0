"""The perform command: options, user errors (exit 2, no traceback), signals, offline render."""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import mido
import pytest
from mido.ports import BaseIOPort

import perform.cli as cli
import perform.ports as ports
from perform.tokens import Vocab

from fakes import FakeGenerator, sounding


class LivePort(BaseIOPort):
    """A real-time output that records what it gets (and can fail after n messages)."""

    def __init__(self, fail_after=None):
        self.sent = []
        self.fail_after = fail_after
        super().__init__("live fake")

    def _send(self, msg):
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise OSError("device unplugged")
        self.sent.append(msg)


class NoInput:
    names: list = []

    def close(self):
        pass


@pytest.fixture
def fake_model(monkeypatch):
    gens = []

    def load(cfg):
        gens.append(FakeGenerator(lambda s: [(48 + s % 24, 16, 90)]))
        return gens[-1], "FakeProvider", Vocab()
    monkeypatch.setattr(cli, "load_generator", load)
    return gens


@pytest.fixture
def fake_ports(monkeypatch):
    made = {}

    def open_output(name, api=None, virtual=False):
        made["out"] = LivePort(made.get("fail_after"))
        made["out_args"] = (name, api, virtual)
        return made["out"]
    monkeypatch.setattr(ports, "open_output", open_output)
    monkeypatch.setattr(ports, "open_input", lambda *a, **k: NoInput())
    return made


@pytest.mark.parametrize("argv, message", [
    (["--set", "clock.bmp=100"], "unknown key 'bmp'"),
    (["--set", "nonsense"], "table.key=value"),
    (["--bpm", "1000"], "clock.bpm"),
    (["--bars", "4"], "add --out"),
    (["--out", "x.mid", "--bars", "0"], "at least 1"),
    (["--config", "/nonexistent/config.toml"], "not found"),
    (["--key", "H major"], "steer.key = 'H major' is not a key; expected \"\" (follow the player) or"),
    (["--key-strength", "1.5"], "steer.key_strength = 1.5 is out of range; expected a number in [0, 1]"),
    (["--register-follow", "-0.1"], "steer.register_follow"),
    (["--density", "-2"], "steer.density = -2.0 is out of range; expected a number in [-1, 1]"),
    (["--pitch-temperature", "0"], "steer.pitch_temperature"),
    (["--rhythm-temperature", "-1"], "steer.rhythm_temperature"),
])
def test_user_errors_exit_2_with_a_message_and_no_traceback(argv, message, capsys, fake_model):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert err.count("\n") == 1                          # one line


def test_steering_options_reach_the_config():
    args = cli.build_parser().parse_args(["--key-strength", "0.8", "--key", "F# major", "--density", "-0.5",
                                          "--register-follow", "1", "--pitch-temperature", "0.7",
                                          "--rhythm-temperature", "1.2"])
    s = cli.config_from_args(args).steer
    assert (s.key_strength, s.key, s.density, s.register_follow) == (0.8, "F# major", -0.5, 1.0)
    assert (s.pitch_temperature, s.rhythm_temperature) == (0.7, 1.2)


SHIPPED = Path(__file__).resolve().parents[2] / "models" / "default.onnx"
E_MAJOR = {4, 6, 8, 9, 11, 1, 3}


def midi_tune(path, pitches):
    track = mido.MidiTrack()
    for p in pitches:
        track += [mido.Message("note_on", note=p, velocity=80), mido.Message("note_off", note=p, time=480)]
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(str(path))


def pitch_classes(path):
    return {m.note % 12 for m in mido.MidiFile(str(path)).tracks[0] if m.type == "note_on"}


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models/default.onnx is not there")
def test_render_with_key_strength_answers_in_the_prime_s_key_or_the_given_one(tmp_path):
    prime = tmp_path / "e.mid"
    midi_tune(prime, [64, 66, 68, 69, 71, 73, 75, 76, 71, 68, 64, 69, 73, 71, 66, 64])   # E major
    out = tmp_path / "answer.mid"
    base = ["--model", str(SHIPPED), "--out", str(out), "--bars", "4", "--seed", "3",
            "--temperature", "1.5", "--top-p", "1"]
    assert cli.main(base + ["--prime", str(prime), "--key-strength", "1"]) == 0
    heard = pitch_classes(out)
    assert len(heard) >= 5 and heard <= E_MAJOR
    assert cli.main(base + ["--prime", str(prime), "--key-strength", "1", "--key", "Eb minor"]) == 0
    heard = pitch_classes(out)
    assert len(heard) >= 5 and heard <= {3, 5, 6, 8, 10, 11, 1, 2}
    assert cli.main(base + ["--prime", str(prime)]) == 0                  # unsteered, hot: strays
    assert not pitch_classes(out) <= E_MAJOR


def test_missing_model_file_is_a_clear_error(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    rc = cli.main(["--model", str(tmp_path / "none.onnx"), "--out", str(tmp_path / "x.mid")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "none.onnx" in err


def test_render_with_form_writes_the_file(tmp_path, fake_model):
    out = tmp_path / "song.mid"
    assert cli.main(["--out", str(out), "--bars", "2", "--form", "a b a", "--bpm", "150"]) == 0
    mid = mido.MidiFile(str(out))
    assert mid.length == pytest.approx(6 * 4 * 60 / 150)
    assert [m.tempo for m in mid.tracks[0] if m.type == "set_tempo"] == [mido.bpm2tempo(150)]


def test_bad_prime_exits_2(tmp_path, capsys, fake_model):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    assert cli.main(["--out", str(tmp_path / "x.mid"), "--prime", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_options_reach_the_ports_and_the_session(tmp_path, fake_model, fake_ports):
    stats = tmp_path / "stats.json"
    rc = cli.main(["--port", "synth", "--api", "jack", "--mode", "solo", "--bpm", "400", "--channel", "5",
                   "--seconds", "0.2", "--quiet", "--stats-json", str(stats)])
    assert rc == 0
    assert fake_ports["out_args"] == ("synth", "jack", False)
    notes = [m for m in fake_ports["out"].sent if m.type == "note_on"]
    assert notes and {m.channel for m in notes} == {4}
    assert sounding(fake_ports["out"].sent) == set()
    import json
    figures = json.loads(stats.read_text())
    assert figures["ticks"] == int(0.2 / (60 / 400 / 4))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_jam_and_silences_every_note(signum, fake_model, fake_ports):
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signum))
    timer.start()
    started = time.perf_counter()
    rc = cli.main(["--port", "x", "--mode", "solo", "--bpm", "300", "--quiet"])
    timer.join()
    assert rc == 0 and time.perf_counter() - started < 5
    sent = fake_ports["out"].sent
    assert [m for m in sent if m.type == "note_on"], "notes should have been playing"
    assert sounding(sent) == set()
    assert sent[-1].type == "control_change" and sent[-1].control == 123


def test_a_second_signal_while_the_output_closes_does_not_cut_the_close_short(
        monkeypatch, fake_model, fake_ports):
    """Closing a JACK output delivers the final note-offs (perform.port_io): a second Ctrl-C then
    must not interrupt it."""
    closed = []

    def close_slowly(port):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        closed.append(port)
    monkeypatch.setattr(LivePort, "_close", close_slowly)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    rc = cli.main(["--port", "x", "--mode", "solo", "--bpm", "300", "--quiet"])
    timer.join()
    assert rc == 0 and closed == [fake_ports["out"]]


def test_output_port_failing_mid_jam_exits_2_with_a_message(capsys, fake_model, fake_ports):
    fake_ports["fail_after"] = 3
    rc = cli.main(["--port", "x", "--mode", "solo", "--bpm", "400", "--seconds", "2", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: " in err and "device unplugged" in err and "Traceback" not in err


def test_python_dash_m_perform_reports_errors_without_traceback():
    out = subprocess.run([sys.executable, "-m", "perform", "--set", "clock.bmp=1"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "Traceback" not in out.stderr


def test_status_line_shows_the_figures_at_most_ten_times_a_second():
    import io
    from perform.status import StatusLine
    t = [0.0]
    stream = io.StringIO()
    status = StatusLine(stream, max_hz=10, now=lambda: t[0])
    written = 0
    for i in range(300):                       # 300 ticks over 3 seconds
        t[0] = i * 0.01
        written += status.update("call", 120.0, "CPUExecutionProvider", 0.42, 3, "answering", [60, 64, 67])
    status.close()
    assert 28 <= written <= 30
    line = stream.getvalue().split("\r")[-1]
    for part in ("call", "120.0 bpm", "CPUExecutionProvider", "p99 0.42 ms", "late 3", "answering", "C4 E4 G4"):
        assert part in line
    quiet = io.StringIO()
    StatusLine(quiet, enabled=False).update("call", 120.0, "x", 0, 0, "listening", [])
    assert quiet.getvalue() == ""


def test_virtual_opens_virtual_ports_unless_a_real_input_is_named(monkeypatch, fake_model, fake_ports):
    opened = []
    monkeypatch.setattr(ports, "open_input", lambda name, api=None, virtual=False, callback=None:
                        opened.append((name, virtual)) or NoInput())
    assert cli.main(["--virtual", "--mode", "solo", "--seconds", "0.05", "--quiet"]) == 0
    assert fake_ports["out_args"] == (None, None, True) and opened[-1] == (None, True)
    assert cli.main(["--virtual", "--input", "keys", "--seconds", "0.05", "--quiet"]) == 0
    assert opened[-1] == ("keys", False)


def test_record_option_writes_the_jam(tmp_path, fake_model, fake_ports):
    path = tmp_path / "jam.mid"
    assert cli.main(["--port", "x", "--mode", "solo", "--bpm", "400", "--seconds", "0.2", "--quiet",
                     "--record", str(path)]) == 0
    mid = mido.MidiFile(str(path))
    assert [t.name for t in mid.tracks] == ["player", "instrument"]
    played = [m for m in fake_ports["out"].sent if m.type == "note_on"]
    recorded = [m for m in mid.tracks[1] if m.type == "note_on"]
    assert len(recorded) == len(played) > 0


def test_record_into_a_missing_folder_fails_before_playing(tmp_path, capsys, fake_model, fake_ports):
    assert cli.main(["--port", "x", "--record", str(tmp_path / "no" / "jam.mid")]) == 2
    assert "does not exist" in capsys.readouterr().err and "out" not in fake_ports


def test_call_mode_without_any_input_says_so(capsys, fake_model, fake_ports):
    assert cli.main(["--port", "x", "--seconds", "0.05", "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "Ctrl-C stops" in err and "hears no input" in err and "--input" in err


def test_input_dropped_by_a_full_queue_is_reported_at_exit(capsys, monkeypatch, fake_model, fake_ports):
    """A flood bigger than the input queue: what was dropped is counted and said at exit."""
    import mido
    import perform.listener as listener_module

    class FloodedInput(NoInput):
        def __init__(self, callback):
            for _ in range(5000):                  # before the loop drains anything
                callback(mido.Message("control_change", control=7, value=1))

    class SmallListener(listener_module.Listener):
        def __init__(self, **kwargs):
            super().__init__(maxsize=100, **kwargs)

    monkeypatch.setattr(listener_module, "Listener", SmallListener)
    monkeypatch.setattr(ports, "open_input", lambda *a, callback=None, **k: FloodedInput(callback))
    rc = cli.main(["--port", "x", "--input", "keys", "--mode", "duet", "--bpm", "400",
                   "--seconds", "0.1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "note: 4900 input messages were dropped" in err and "100 were heard" in err


# sampling options and --thru through the real CLI path (the real load_generator and model) -------
def render_notes(tmp_path, name, *options):
    out = tmp_path / name
    assert cli.main(["--model", str(SHIPPED), "--out", str(out), "--bars", "4", *options]) == 0
    return [(m.note, m.time) for m in mido.MidiFile(str(out)).tracks[0] if m.type == "note_on"]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models/default.onnx is not there")
@pytest.mark.parametrize("greedy", [["--top-k", "1"], ["--top-p", "0.001"], ["--temperature", "0.01"]])
def test_greedy_sampling_options_make_the_seed_irrelevant(tmp_path, greedy):
    # --top-k 1, a tiny --top-p and a tiny --temperature each leave only the likeliest token
    loose = [render_notes(tmp_path, f"loose{s}.mid", "--seed", str(s), "--top-p", "1") for s in (1, 2)]
    assert loose[0] != loose[1]
    tight = [render_notes(tmp_path, f"tight{s}.mid", "--seed", str(s), *greedy) for s in (1, 2)]
    assert tight[0] == tight[1] and tight[0]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models/default.onnx is not there")
def test_a_hotter_temperature_spreads_the_pitches(tmp_path):
    from perform.analysis import pitch_class_entropy

    def entropy_bits(temperature):
        notes = render_notes(tmp_path, "t.mid", "--seed", "4", "--top-p", "1",
                             "--temperature", str(temperature))
        return pitch_class_entropy([note for note, _ in notes])
    assert entropy_bits(0.3) + 0.3 < entropy_bits(2.0)


class FeedingInput:
    """An input port that plays one note into perform's callback once the session runs (no names:
    the port watch, which needs a MIDI system, has nothing to watch)."""

    names: list = []

    def __init__(self, callback):
        self.timer = threading.Timer(0.15, lambda: [callback(mido.Message("note_on", note=61, velocity=99)),
                                                   callback(mido.Message("note_off", note=61))])
        self.timer.start()

    def close(self):
        self.timer.cancel()


@pytest.mark.skipif(not SHIPPED.is_file(), reason="models/default.onnx is not there")
@pytest.mark.parametrize("thru", [True, False])
def test_thru_echoes_the_player_through_the_real_cli_path(monkeypatch, fake_ports, thru):
    monkeypatch.setattr(ports, "open_input",
                        lambda name=None, api=None, virtual=False, callback=None, **k: FeedingInput(callback))
    argv = ["--model", str(SHIPPED), "--port", "synth", "--input", "keys", "--mode", "call",
            "--seconds", "0.5", "--quiet", "--channel", "3"] + (["--thru"] if thru else [])
    assert cli.main(argv) == 0
    echoed = [m for m in fake_ports["out"].sent if m.type == "note_on" and m.note == 61 and m.velocity == 99]
    assert bool(echoed) == thru
    assert sounding(fake_ports["out"].sent) == set()


def test_the_status_line_computes_its_extra_figures_only_when_it_writes():
    import io
    from perform.status import StatusLine
    t, calls = [0.0], []

    def extra():
        calls.append(1)
        return "  key D minor 0.82"
    status = StatusLine(io.StringIO(), max_hz=10, now=lambda: t[0])
    for i in range(100):                       # 100 ticks over 1 second: 10 lines written
        t[0] = i * 0.01
        status.update("duet", 120.0, "cpu", 0.1, 0, "playing", [], extra)
    assert len(calls) == 10 and "key D minor 0.82" in status.stream.getvalue()
    StatusLine(io.StringIO(), enabled=False).update("duet", 120.0, "cpu", 0, 0, "playing", [], extra)
    assert len(calls) == 10                    # --quiet: never
