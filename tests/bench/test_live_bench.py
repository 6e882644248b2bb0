"""bench/live.py's timing figures on made-up arrivals: a constant lateness shows, a note a whole
step late reads as a step late, and a step lost on the way is one tick of drift."""

import importlib.util
from pathlib import Path

import mido
import pytest

REPO = Path(__file__).resolve().parents[2]
PERIOD_S = 0.0625                    # 240 bpm, 4 steps a beat
T0_S = 1000.0
LOOP = {"min_ms": 0.5, "p99_ms": 1.0}
NOTE = mido.Message("note_on", note=60, velocity=90)


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_live", REPO / "bench" / "live.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def notes(lateness_s, steps=range(600)) -> list:
    """A note-on on each of `steps`, `lateness_s(k)` after its deadline."""
    return [(NOTE, T0_S + k * PERIOD_S + lateness_s(k)) for k in steps]


def test_a_constant_lateness_shows_against_the_reported_origin():
    live = load_bench()
    figures = live.timing_figures(notes(lambda k: 0.012), PERIOD_S, {"t0_s": T0_S}, LOOP,
                                  list(range(600)))
    assert figures["error_p50_ms"] == pytest.approx(12.0)
    assert figures["beyond_loopback_p99_ms"] == pytest.approx(11.0)
    assert figures["drift_ticks"] == 0 and figures["drift_of"] == "recorded notes"


def test_with_the_recorded_steps_a_note_a_step_late_reads_a_step_late():
    live = load_bench()
    late = notes(lambda k: 0.002 + (PERIOD_S if k >= 300 else 0.0))   # from note 300 on: a step lost
    played = list(range(600))
    figures = live.timing_figures(late, PERIOD_S, {"t0_s": T0_S}, LOOP, played)
    assert figures["error_max_ms"] == pytest.approx(2.0 + 1000 * PERIOD_S)
    assert figures["drift_ticks"] == 1
    unpaired = live.timing_figures(late, PERIOD_S, {"t0_s": T0_S}, LOOP, played[:-1])
    assert unpaired["steps_of_notes"].startswith("nearest") and unpaired["drift_ticks"] == 0


def test_clock_pulses_count_the_steps_for_drift():
    live = load_bench()
    pulse_s = PERIOD_S / 6                                  # 24 a beat, 4 steps a beat
    pulses = [(mido.Message("clock"), T0_S + n * pulse_s + 0.001 + (PERIOD_S if n >= 1800 else 0.0))
              for n in range(3600)]
    received = [(mido.Message("start"), T0_S)] + pulses + notes(lambda k: 0.001)
    received.sort(key=lambda pair: pair[1])
    figures = live.timing_figures(received, PERIOD_S, {"t0_s": T0_S}, LOOP)
    assert figures["drift_of"] == "clock pulses" and figures["drift_ticks"] == 1


def test_without_a_reported_origin_there_are_no_timing_figures():
    live = load_bench()
    assert "t0_s" in live.timing_figures(notes(lambda k: 0.0), PERIOD_S, {}, LOOP)["error"]


def test_the_steps_of_the_notes_are_read_from_performs_recording(tmp_path):
    from perform.record import INSTRUMENT, PLAYER, Recorder
    live = load_bench()
    recorder = Recorder(tmp_path / "jam.mid", steps_per_beat=4)
    recorder.add(PLAYER, 0.5, mido.Message("note_on", note=40, velocity=70))
    for step, pitch in ((1, 60), (1, 64), (5, 62), (9, 60)):
        recorder.add(INSTRUMENT, step, mido.Message("note_on", note=pitch, velocity=80))
        recorder.add(INSTRUMENT, step + 1, mido.Message("note_off", note=pitch))
    recorder.write([(0.0, 240.0)])
    assert live.recorded_note_steps(tmp_path / "jam.mid", 4) == [1, 1, 5, 9]
    assert live.recorded_note_steps(tmp_path / "missing.mid", 4) is None
