"""The live loop on a fake clock with a fake port: exact tick times, turn taking, every exit path."""

import io
import threading

import mido
import numpy as np
import pytest

from perform.config import load_config
from perform.errors import PortError
from perform.session import Session
from perform.tokens import Note

from fakes import FakeClock, FakeGenerator, FakePort, FlatEngine

PERIOD_S = 0.125          # 120 bpm, 4 steps a beat
T0 = 100.0


def make(mode="call", generator=None, port_kwargs=None, **tables):
    overrides = {"perform": {"mode": mode, **tables.pop("perform", {})}, **tables}
    cfg = load_config(None, overrides)
    clock = FakeClock(T0)
    port = FakePort(clock, **(port_kwargs or {}))
    gen = generator or FakeGenerator()
    session = Session(cfg, gen, port, now=clock.now, sleep=clock.sleep)
    return clock, port, gen, session


def at_step(clock, step, msg_or_action, session=None):
    """Deliver a player's message (or run an action) at grid position `step`."""
    if isinstance(msg_or_action, mido.Message):
        clock.at(T0 + step * PERIOD_S, lambda: session.listener.callback(msg_or_action))
    else:
        clock.at(T0 + step * PERIOD_S, msg_or_action)


def play(clock, session, pitch, on_step, off_step, velocity=90):
    at_step(clock, on_step, mido.Message("note_on", note=pitch, velocity=velocity), session)
    at_step(clock, off_step, mido.Message("note_off", note=pitch), session)


def steps_of(port, kind="note_on", channel=0):
    out = []
    for t, m in port.sent:
        if m.type != kind or getattr(m, "channel", channel) != channel:
            continue
        if kind != "note_on" or m.velocity > 0:
            out.append(round((t - T0) / PERIOD_S, 6))
    return out


def test_solo_plays_every_step_exactly_on_its_tick():
    clock, port, gen, session = make("solo", FakeGenerator(lambda s: [(60, 2, 100)] if s % 4 == 1 else []))
    session.run(max_ticks=20)
    assert steps_of(port) == [1, 5, 9, 13, 17]
    assert steps_of(port, "note_off") == [3, 7, 11, 15, 19]
    assert [m.velocity for _, m in port.sent if m.type == "note_on"] == [100] * 5


def test_stats_report_the_grid_origin_the_notes_are_timed_from():
    clock, port, gen, session = make("solo")               # a note every step
    stats = session.run(max_ticks=6)
    assert (stats["t0_s"], stats["period_s"]) == (T0, PERIOD_S)
    assert [(t - stats["t0_s"]) / stats["period_s"] for t, _ in port.notes_on()] == [1, 2, 3, 4, 5]


def test_call_answers_after_the_pause_at_the_exact_tick_for_answer_bars():
    clock, port, gen, session = make("call")
    for i, pitch in enumerate((60, 62, 64)):            # notes on steps 1, 3, 5; last off at 6
        play(clock, session, pitch, 2 * i + 1, 2 * i + 2)
    stats = session.run(max_ticks=60)
    # pause of 2 beats = 8 steps after the release at step 6 -> first answer note at step 14;
    # 2 bars of 4 beats = 32 steps of answer: steps 14..45, then it listens again.
    assert steps_of(port) == list(range(14, 46))
    assert stats["answers"] == 1 and len(stats["answer_compute_ms"]) == 1
    assert port.sounding_after() == set()


def test_pause_length_counts_from_the_release_and_rounds_up_to_a_step():
    clock, port, gen, session = make("call", perform={"answer_pause_beats": 1.0, "answer_bars": 1})
    play(clock, session, 60, 1.1, 6.3)                   # released at 6.3: pause ends at 10.3
    session.run(max_ticks=40)
    assert steps_of(port) == list(range(11, 27))


def test_no_answer_while_the_player_holds_a_note():
    clock, port, gen, session = make("call")
    play(clock, session, 48, 1, 30)                      # held far longer than the pause
    session.run(max_ticks=40)
    assert steps_of(port) == [38, 39]                    # answers only 8 steps after the release


def test_player_coming_back_stops_the_answer_and_releases_its_notes():
    long_notes = FakeGenerator(lambda s: [(72, 8, 80)] if s % 8 == 6 else [])
    clock, port, gen, session = make("call", long_notes)
    play(clock, session, 60, 1, 6)                       # answer starts at step 14
    play(clock, session, 62, 24.5, 26)                   # player returns while 72 (from 22) sounds
    session.run(max_ticks=50)
    assert steps_of(port) == [14, 22, 38, 46]            # a new answer from 26 + 8 = 34
    offs = steps_of(port, "note_off")
    assert 24.5 in offs                                  # released the moment the player came back
    assert all(not (24.5 < s < 34) for s in steps_of(port))
    assert port.sounding_after() == set()


def test_the_player_s_notes_reach_the_model_with_their_real_durations():
    clock, port, gen, session = make("duet", FakeGenerator(lambda s: []))
    play(clock, session, 60, 2, 7.4, velocity=100)       # held over many ticks, released at 7.4
    play(clock, session, 64, 2.3, 3)                     # a chord note, slightly late: step 2
    session.run(max_ticks=12)
    heard = gen.heard()
    assert heard[2] == (Note(2, 60, 5, 100), Note(2, 64, 1, 90))
    assert all(heard[s] == () for s in range(12) if s != 2)
    assert gen.restores >= 1                             # re-run from a snapshot, not from scratch


def test_duet_plays_alongside_and_merges_both_into_the_context():
    clock, port, gen, session = make("duet", FakeGenerator(lambda s: [(72, 1, 80)] if s == 4 else []))
    play(clock, session, 60, 4, 5)
    session.run(max_ticks=8)
    assert steps_of(port) == [4]
    assert gen.heard()[4] == (Note(4, 60, 1, 90), Note(4, 72, 1, 80))


def test_solo_ignores_the_player():
    clock, port, gen, session = make("solo", FakeGenerator(lambda s: []))
    play(clock, session, 60, 2, 3)
    session.run(max_ticks=6)
    assert all(notes == () for notes in gen.heard().values())


# steering: the answer in the player's key -------------------------------------------------------------
C_TUNE = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60, 65, 69, 67, 62, 60]


def steered(mode, **steer):
    """A session with a real generator on a flat-logit engine, steered; its status in a string."""
    from perform.config import SteerConfig
    from perform.generator import Generator
    from perform.sampling import Sampler
    from perform.status import StatusLine
    from perform.steer import Steerer
    gen = Generator(FlatEngine(), Sampler(top_p=1.0, seed=4),
                    steering=Steerer(SteerConfig(**steer), FlatEngine.vocab))
    cfg = load_config(None, {"perform": {"mode": mode}})
    clock = FakeClock(T0)
    port = FakePort(clock)
    stream = io.StringIO()
    session = Session(cfg, gen, port, now=clock.now, sleep=clock.sleep,
                      status=StatusLine(stream, max_hz=1000, now=clock.now))
    for i, pitch in enumerate(C_TUNE):                  # quarter notes from step 1 to step 65
        play(clock, session, pitch, 1 + 4 * i, 4 + 4 * i)
    return clock, port, gen, session, stream


def test_duet_answers_in_the_key_the_player_plays_and_shows_it():
    clock, port, gen, session, stream = steered("duet", key_strength=1.0)
    session.run(max_ticks=100)
    late = {m.note % 12 for t, m in port.sent if m.type == "note_on" and t > T0 + 20 * PERIOD_S}
    early = {m.note % 12 for t, m in port.sent if m.type == "note_on" and t < T0 + 4 * PERIOD_S}
    assert late == {0, 2, 4, 5, 7, 9, 11}               # C major, every degree of it
    assert early - late                                 # before the first note ends: no key yet
    assert "key C major 0." in stream.getvalue().split("\r")[-1]


def test_solo_neither_hears_the_player_nor_steers_to_them():
    clock, port, gen, session, stream = steered("solo", key_strength=1.0)
    session.run(max_ticks=100)
    assert gen.steering.key() is None
    assert len({m.note % 12 for _, m in port.sent if m.type == "note_on"}) == 12
    assert "key -" in stream.getvalue().split("\r")[-1]


def test_the_key_tracker_counts_a_re_run_note_once():
    clock, port, gen, session, stream = steered("call")
    session.run(max_ticks=12)                           # C4 held 1..4, D4 from 5, E4 from 9 (held)
    tracker = gen.steering.tracker
    assert session.folder.reruns >= 1 and tracker.step == 12
    decay = tracker.decay_per_step
    expected = np.zeros(12)
    expected[0], expected[2] = 3 * decay ** 11, 3 * decay ** 7
    assert tracker.profile == pytest.approx(expected)


# every exit path silences every note --------------------------------------------------------------
def long_note_session(**kw):
    return make("solo", FakeGenerator(lambda s: [(60 + s, 32, 90)] if s < 4 else []), **kw)


def assert_silenced(port):
    assert port.sounding_after() == set()
    assert [m for _, m in port.sent if m.type == "note_on"], "the test should have sounded notes"
    last = port.sent[-1][1]
    assert last.type == "control_change" and last.control == 123


def test_normal_end_silences_sounding_notes():
    clock, port, gen, session = long_note_session()
    session.run(max_ticks=8)
    assert_silenced(port)
    assert steps_of(port, "note_off") == [7, 7, 7]       # the last tick processed


def test_keyboard_interrupt_silences_sounding_notes():
    clock, port, gen, session = long_note_session()

    def interrupt():
        raise KeyboardInterrupt
    at_step(clock, 6.5, interrupt)
    with pytest.raises(KeyboardInterrupt):
        session.run()
    assert_silenced(port)


def test_stop_event_ends_the_run_and_silences():
    clock, port, gen, session = long_note_session()
    stop = threading.Event()
    at_step(clock, 5.5, stop.set)
    stats = session.run(stop_event=stop)
    assert stats["ticks"] == 6
    assert_silenced(port)


def test_a_stop_asked_before_the_run_starts_ends_it_at_once():
    clock, port, gen, session = long_note_session()
    session.stop()                    # Ctrl-C while the ports were still opening
    assert session.run(max_ticks=50)["ticks"] == 0


def test_generator_exception_silences_sounding_notes():
    gen = FakeGenerator(lambda s: [(60 + s, 32, 90)], fail_at_step=5)
    clock, port, gen, session = make("solo", gen)
    with pytest.raises(RuntimeError, match="model exploded"):
        session.run()
    assert_silenced(port)


def test_output_send_failure_is_a_port_error_and_notes_are_still_released():
    clock, port, gen, session = long_note_session(port_kwargs={"fail_after": 2, "failures": 1})
    with pytest.raises(PortError, match="output port failed"):
        session.run(max_ticks=10)
    assert_silenced(port)


# options and live controls ---------------------------------------------------------------------------
def test_channel_option_and_thru():
    clock, port, gen, session = make("solo", FakeGenerator(lambda s: [(72, 1, 80)] if s == 2 else []),
                                     ports={"channel": 3, "thru": True})
    at_step(clock, 1.3, mido.Message("note_on", channel=0, note=40, velocity=99), session)
    session.run(max_ticks=4)
    assert steps_of(port, channel=2) == [2]
    assert steps_of(port, channel=0) == [1.3]            # echoed the moment it arrived
    assert port.sounding_after() == set()                # the held thru note is ended on exit


def cc(clock, session, step, control, value):
    at_step(clock, step, mido.Message("control_change", control=control, value=value), session)


def test_mute_control_silences_and_unmute_resumes():
    clock, port, gen, session = make("solo", FakeGenerator(lambda s: [(60, 4, 80)] if s % 2 == 0 else []))
    cc(clock, session, 3.5, 21, 127)
    cc(clock, session, 8.5, 21, 0)
    session.run(max_ticks=14)
    assert steps_of(port) == [2, 10, 12]
    assert 3.5 in steps_of(port, "note_off")


def test_mode_temperature_answer_length_and_panic_controls():
    clock, port, gen, session = make("call", FakeGenerator(lambda s: [(60, 40, 80)] if s == 2 else []))
    cc(clock, session, 0.5, 1, 127)                      # temperature to 2.0
    cc(clock, session, 0.6, 22, 0)                       # answers 1 bar long
    cc(clock, session, 0.7, 20, 127)                     # mode -> solo
    cc(clock, session, 4.5, 23, 127)                     # panic
    session.run(max_ticks=6)
    assert gen.sampler.temperature == pytest.approx(2.0)
    assert session.controls.answer_bars == 1 and session.mode == "solo"
    assert steps_of(port) == [2]
    assert 4.5 in steps_of(port, "control_change")
    assert 4.5 in steps_of(port, "note_off")


def test_send_clock_sends_24_pulses_a_beat_between_start_and_stop():
    clock, port, gen, session = make("solo", FakeGenerator(lambda s: []), clock={"send_clock": True})
    session.run(max_ticks=9)                              # ticks 0..8: 2 beats and a bit
    kinds = [m.type for _, m in port.sent if m.type in ("start", "clock", "stop")]
    assert kinds[0] == "start" and kinds[-1] == "stop"
    pulses = steps_of(port, "clock")
    assert pulses[:7] == pytest.approx([0, 1 / 6, 2 / 6, 0.5, 4 / 6, 5 / 6, 1], abs=1e-6)
    assert len([p for p in pulses if p < 8]) == 48


# with a real (tiny, untrained) exported model ---------------------------------------------------
TINY_CHECKPOINT = """
import sys, torch
from perform.config import Config
from perform.tokens import Vocab
from train.checkpoint import save_checkpoint
from train.model import JamLSTM
torch.manual_seed(3)
cfg = Config()
vocab = Vocab.from_grid(cfg.grid)
args = dict(vocab_size=vocab.size, embed_dim=16, hidden_size=32, num_layers=1, dropout=0.0)
save_checkpoint(sys.argv[1], {"state_dict": JamLSTM(**args).state_dict(), "model_args": args,
                              "vocab": vocab.to_dict(), "config": cfg.to_dict()})
"""


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    pytest.importorskip("torch")
    import subprocess
    import sys
    folder = tmp_path_factory.mktemp("tiny")
    ckpt, onnx_path = folder / "tiny.pt", folder / "tiny.onnx"
    subprocess.run([sys.executable, "-c", TINY_CHECKPOINT, str(ckpt)], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "export", str(ckpt), "-o", str(onnx_path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return onnx_path


def real_generator(path, seed=5):
    from perform.engine import Engine
    from perform.generator import Generator
    from perform.sampling import Sampler
    return Generator(Engine(path, ("CPUExecutionProvider",)), Sampler(seed=seed))


def test_folding_a_held_note_equals_feeding_it_from_scratch(tiny_onnx):
    gen = real_generator(tiny_onnx)
    clock, port, _, session = make("call", gen)
    play(clock, session, 60, 1, 9.2)                     # held over 8 ticks: re-run as it grows
    play(clock, session, 67, 3.4, 4)
    session.run(max_ticks=12)
    assert session.folder.reruns >= 3 and port.notes_on() == []     # still listening at step 12
    fresh = real_generator(tiny_onnx)
    heard = {1: [Note(1, 60, 8, 90)], 3: [Note(3, 67, 1, 90)]}
    for step in range(12):
        fresh.feed_step(heard.get(step, []))
    assert gen.step_index == fresh.step_index == 12
    assert gen.snapshot().logits == pytest.approx(fresh.snapshot().logits, abs=1e-5)


def test_a_real_model_answers_in_grammar_and_repeats_with_a_seed(tiny_onnx):
    runs = []
    for _ in range(2):
        clock, port, gen, session = make("duet", real_generator(tiny_onnx, seed=11))
        play(clock, session, 60, 2, 5)
        session.run(max_ticks=24)
        runs.append([(round(t, 9), str(m)) for t, m in port.sent])
        pitches = [m.note for _, m in port.sent if m.type == "note_on"]
        assert pitches and all(21 <= p <= 108 for p in pitches)
        assert port.sounding_after() == set()
    assert runs[0] == runs[1]


def test_render_with_a_real_model_from_the_command_line(tiny_onnx, tmp_path):
    from perform.cli import main
    out = tmp_path / "song.mid"
    assert main(["--model", str(tiny_onnx), "--out", str(out), "--bars", "1", "--form", "a b a",
                 "--seed", "2", "--bpm", "100"]) == 0
    mid = mido.MidiFile(str(out))
    assert mid.length == pytest.approx(3 * 4 * 60 / 100)
    notes, tick = [], 0
    for msg in mid.tracks[0]:
        tick += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            notes.append((tick, msg.note))
    bar = 4 * mid.ticks_per_beat
    first = [(t, p) for t, p in notes if t < bar]
    third = [(t - 2 * bar, p) for t, p in notes if t >= 2 * bar]
    assert first and first == third


def test_sync_follows_the_master_clock_tempo_and_grid_and_stops_with_it():
    from perform.midiclock import MidiClockFollower
    cfg = load_config(None, {"perform": {"mode": "solo"}, "clock": {"bpm": 120, "sync": True}})
    clock = FakeClock(T0)
    port = FakePort(clock)
    session = Session(cfg, FakeGenerator(lambda s: [(60, 1, 80)]), port, now=clock.now,
                      sleep=clock.sleep, clock_follower=MidiClockFollower())
    start_s, pulse_s, step_s = T0 + 0.31, 60 / 100 / 24, 60 / 100 / 4   # the master: 100 bpm
    send = session.listener.callback
    clock.at(start_s - 0.001, lambda: send(mido.Message("start")))
    for k in range(24 * 8):                                             # 8 beats of clock
        clock.at(start_s + k * pulse_s, lambda: send(mido.Message("clock")))
    clock.at(start_s + 24 * 8 * pulse_s, lambda: send(mido.Message("stop")))
    session.run(max_ticks=60)
    ons = [t for t, m in port.sent if m.type == "note_on"]
    assert not [t for t in ons if t < start_s]                           # nothing before start
    assert len(ons) >= 28                                                # it played along ...
    for t in ons:                                                        # ... on the master's grid
        steps = (t - start_s) / step_s
        assert abs(steps - round(steps)) * step_s < 0.0011, (t - start_s, steps)
    assert max(ons) < start_s + 8 * 4 * step_s + step_s                  # and stopped with it
    assert session.clock.bpm == pytest.approx(100, abs=0.1)
    assert port.sounding_after() == set()


def test_the_input_queue_is_bounded_counts_drops_and_ignores_floods_of_unused_messages():
    from perform.listener import Listener
    listener = Listener(maxsize=10, now=lambda: 1.0)
    for _ in range(15):
        listener.callback(mido.Message("note_on", note=60, velocity=10))
    for _ in range(1000):
        listener.callback(mido.Message("sysex", data=[1, 2, 3]))
        listener.callback(mido.Message("aftertouch", value=3))
    assert (listener.received, listener.dropped, listener.ignored) == (10, 5, 2000)
    assert [stamp for stamp, _ in listener.drain()] == [1.0] * 10
    assert listener.drain() == []


def test_after_the_output_fails_a_new_port_resumes_on_the_grid():
    gen = FakeGenerator(lambda s: [(60 + s % 12, 1, 80)])
    clock, port, gen, session = make("solo", gen, port_kwargs={"fail_after": 6})
    with pytest.raises(PortError):
        session.run(max_ticks=40)
    failed_at = session.tick
    clock.t += 0.3                                       # time to find the port again
    new_port = FakePort(clock)
    session.replace_output(new_port)
    session.run(max_ticks=failed_at + 8)
    ons = [(t - clock.t) for t, m in new_port.sent if m.type == "note_on"]
    assert len(ons) == 7 and new_port.sounding_after() == set()
    gaps = [round(b - a, 9) for a, b in zip(ons, ons[1:])]
    assert gaps == [PERIOD_S] * 6                         # one step apart, on the new grid


def test_sync_stays_on_the_master_grid_when_pulses_arrive_late_by_varying_amounts():
    import random
    from perform.midiclock import MidiClockFollower
    rng = random.Random(7)
    cfg = load_config(None, {"perform": {"mode": "solo"}, "clock": {"bpm": 240, "sync": True}})
    clock = FakeClock(T0)
    port = FakePort(clock)
    session = Session(cfg, FakeGenerator(lambda s: [(60, 1, 80)]), port, now=clock.now,
                      sleep=clock.sleep, clock_follower=MidiClockFollower())
    start_s, pulse_s = T0 + 0.2, 60 / 150 / 24                        # the master: 150 bpm
    send = session.listener.callback
    clock.at(start_s - 0.001, lambda: send(mido.Message("start")))
    for k in range(24 * 12):
        late_s = 0.017 if k % 10 == 3 else rng.uniform(0, 0.003)        # ports and polling
        clock.at(start_s + k * pulse_s + late_s, lambda: send(mido.Message("clock")))
    session.run(max_ticks=90)
    end_s = start_s + 24 * 12 * pulse_s                                 # the master's last pulse
    ons = [t for t, m in port.sent if m.type == "note_on" and start_s + 24 * pulse_s < t < end_s]
    assert len(ons) >= 40
    errors_ms = [1000 * abs((t - start_s) / (6 * pulse_s) - round((t - start_s) / (6 * pulse_s))) * 6 * pulse_s
                 for t in ons]
    assert max(errors_ms) < 1.1, [round(e, 2) for e in errors_ms]


def test_a_slow_model_step_does_not_hold_back_clock_pulses(tiny_onnx):
    gen = real_generator(tiny_onnx, seed=3)
    clock, port, _, session = make("solo", gen, clock={"send_clock": True, "bpm": 240})

    class SlowEngine:                                    # every model step takes 1 ms
        def __init__(self, engine):
            self.engine = engine

        def step(self, token, state):
            clock.t += 0.001
            return self.engine.step(token, state)

        def __getattr__(self, name):
            return getattr(self.engine, name)
    gen.engine._engine = SlowEngine(gen.engine._engine)
    session.run(max_ticks=40)
    pulse_s = 60 / 240 / 24
    pulses = [t for t, m in port.sent if m.type == "clock"]
    assert len(pulses) > 200
    lateness_ms = [1000 * ((t - T0) - round((t - T0) / pulse_s) * pulse_s) for t in pulses]
    assert max(lateness_ms) <= 1.0 + 1e-6, sorted(lateness_ms)[-5:]
    assert session.step_latency.percentile_ms(50) > pulse_s * 1000   # steps did take long
