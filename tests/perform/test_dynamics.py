"""Dynamics (perform.dynamics): the answer as loud as the player, the model's own, or fixed; a model
that does not say which velocities it was trained on is asked."""
import io

import mido
import numpy as np
import pytest

from perform.config import Config, SteerConfig, load_config
from perform.controls import Controls
from perform.dynamics import parse_velocity
from perform.errors import ConfigError
from perform.generator import Generator, trained_velocity_bins
from perform.render import render
from perform.sampling import Sampler
from perform.session import Session
from perform.status import StatusLine
from perform.steer import Steerer
from perform.tokens import Note, Vocab

from fakes import FakeClock, FakePort, FlatEngine

V = Vocab()


class OneBinEngine:
    """Like the chorale model: any note, always velocity bin 4 (72), unless `bins` says otherwise.
    `metadata` as an .onnx file has it (None: a stand-in engine without any)."""

    vocab = V

    def __init__(self, metadata=None, bins=(4,)):
        self.metadata = metadata
        self.bins = bins
        self.fed = []

    def initial_state(self):
        return 0

    def step(self, token, state):
        self.fed.append(int(token))
        x = np.zeros(V.size, np.float32)
        x[V.vel_base:V.size] = -30.0
        x[[V.vel_base + b for b in self.bins]] = 0.0
        return x, state + 1


class AccentEngine:
    """A model with dynamics: draws velocity bins 2..6 at random."""

    vocab = V
    metadata = {"corpus": {"velocity_bins": [2, 3, 4, 5, 6]}}

    def initial_state(self):
        return 0

    def step(self, token, state):
        x = np.zeros(V.size, np.float32)
        x[V.vel_base:V.size] = -30.0
        x[V.vel_base + 2:V.vel_base + 7] = 0.0
        return x, state + 1


def generator(engine, velocity="auto", seed=0):
    return Generator(engine, Sampler(top_p=1.0, seed=seed),
                     steering=Steerer(SteerConfig(velocity=velocity), V))


def play(gen, steps):
    return [n for _ in range(steps) for n in gen.next_step()]


def loud_phrase(start=0):
    """Eight notes at 100..120 (mean 110)."""
    return [Note(start + 2 * i, 60 + i, 2, v) for i, v in enumerate((100, 120, 105, 115, 110, 100, 120, 110))]


def test_velocity_policies_parse_and_bad_ones_say_what_is_accepted():
    assert parse_velocity("auto") == ("auto", None) and parse_velocity(" Player ") == ("player", None)
    assert parse_velocity("fixed 100") == ("fixed", 100) and parse_velocity("FIXED  1") == ("fixed", 1)
    for bad in ("loud", "fixed", "fixed 0", "fixed 128", "fixed 1.5", "model 3"):
        with pytest.raises(ConfigError, match=r"steer.velocity = .* is not a velocity policy; "
                                              r"expected \"auto\", \"model\", \"player\" or \"fixed N\""):
            SteerConfig(velocity=bad)


def test_a_one_bin_model_answers_at_the_player_s_level_once_it_heard_them():
    gen = generator(OneBinEngine({"corpus": {"velocity_bins": [4]}}))
    before = play(gen, 40)
    assert len(before) > 20 and {n.velocity for n in before} == {72}     # nothing heard: the model's
    assert gen.steering.describe_velocity() == "player -"
    gen.hear_player(loud_phrase(gen.step_index - 16))
    level, spread = gen.steering.tracker.dynamics
    assert 108 < level < 112 and 6 < spread < 8
    after = [n.velocity for n in play(gen, 100)]
    assert len(after) > 50
    assert abs(np.mean(after) - level) < 2                        # their level ...
    assert 0.3 * spread < np.std(after) < 0.7 * spread            # ... with half their spread
    assert max(abs(v - level) for v in after) <= spread + 1       # cut at two half-spreads
    assert gen.steering.describe_velocity() == f"player {level:.0f} sd {spread:.0f}"


def test_a_soft_player_gets_a_soft_answer_and_model_and_fixed_ignore_the_player():
    def answer(velocity, player_velocity):
        gen = generator(OneBinEngine({"corpus": {"velocity_bins": [4]}}), velocity, seed=3)
        gen.hear_player([Note(0, 60, 4, player_velocity), Note(4, 62, 4, player_velocity)])
        return [n.velocity for n in play(gen, 40)]
    assert set(answer("auto", 30)) == {30} and set(answer("player", 120)) == {120}
    assert set(answer("model", 30)) == {72}
    assert set(answer("fixed 100", 30)) == {100}


def test_auto_keeps_the_model_s_dynamics_when_its_corpus_had_them():
    gen = generator(AccentEngine())
    assert gen.steering.describe_velocity() == "model"
    gen.hear_player([Note(0, 60, 4, 20)])
    assert {n.velocity for n in play(gen, 60)} == {V.bin_velocity(b) for b in range(2, 7)}


def test_player_keeps_the_model_s_accents_on_the_player_s_level_and_spread():
    def take(velocity):
        gen = generator(AccentEngine(), velocity, seed=5)
        gen.hear_player(loud_phrase())
        return play(gen, 80), gen.steering.tracker.dynamics
    model, _ = take("model")
    player, (level, spread) = take("player")
    assert [(n.start_step, n.pitch, n.dur_steps) for n in model] == [(n.start_step, n.pitch, n.dur_steps)
                                                                     for n in player]
    centres = np.array([V.bin_velocity(b) for b in range(2, 7)], float)
    z = (np.array([n.velocity for n in model]) - centres.mean()) / centres.std()
    assert [n.velocity for n in player] == [int(min(max(round(level + k * spread), 1), 127)) for k in z]
    assert np.corrcoef([n.velocity for n in model], [n.velocity for n in player])[0, 1] > 0.99


def test_before_any_player_every_policy_but_fixed_plays_exactly_the_model_s_notes():
    takes = {policy: play(generator(OneBinEngine({"corpus": {"velocity_bins": [4]}}), policy, seed=9), 60)
             for policy in ("auto", "player", "model")}
    assert takes["auto"] == takes["player"] == takes["model"] and len(takes["model"]) > 20
    assert render(generator(OneBinEngine({}), "auto", seed=9), 1, 16) == render(
        generator(OneBinEngine({}), "model", seed=9), 1, 16)


def test_a_model_file_that_does_not_say_is_asked_which_velocities_it_knows():
    assert trained_velocity_bins(OneBinEngine(metadata={})) == (4,)                # asked
    assert trained_velocity_bins(OneBinEngine(metadata={}, bins=(2, 5))) == (2, 5)
    assert trained_velocity_bins(OneBinEngine(metadata={"corpus": {"velocity_bins": [1, 7]}})) == (1, 7)
    assert trained_velocity_bins(OneBinEngine(metadata=None)) == ()                # a stand-in
    engine = OneBinEngine(metadata={})
    gen = Generator(engine, Sampler(seed=0))
    engine.fed.clear()
    gen.feed_step([Note(0, 60, 1, 127), Note(0, 64, 1, 10)])                     # fed as bin 4
    assert [t - V.vel_base for t in engine.fed if V.is_vel(t)] == [4, 4]
    assert generator(OneBinEngine(metadata={})).steering.describe_velocity() == "player -"   # auto


def test_the_velocity_cc_fixes_the_loudness_and_0_goes_back_to_the_configured_policy():
    gen = generator(OneBinEngine({"corpus": {"velocity_bins": [4]}}), "model")
    controls = Controls(load_config(None, {"steer": {"velocity": "model"}}), gen)
    controls.apply(27, 100)
    assert gen.steering.settings.velocity == "fixed 100"
    assert {n.velocity for n in play(gen, 20)} == {100}
    controls.apply(27, 0)
    assert gen.steering.settings.velocity == "model" and {n.velocity for n in play(gen, 20)} == {72}
    assert Config().controls.cc_velocity == 27


def test_live_the_answer_follows_the_player_s_loudness_and_the_status_line_shows_it():
    gen = generator(OneBinEngine({"corpus": {"velocity_bins": [4]}}), seed=2)
    clock = FakeClock(100.0)
    port = FakePort(clock)
    stream = io.StringIO()
    session = Session(load_config(None, {"perform": {"mode": "duet"}}), gen, port, now=clock.now,
                      sleep=clock.sleep, status=StatusLine(stream, max_hz=1000, now=clock.now))
    for i in range(4):                                   # quarter notes at 118 from step 1
        on = mido.Message("note_on", note=60 + 2 * i, velocity=118)
        off = mido.Message("note_off", note=60 + 2 * i)
        clock.at(100.0 + (1 + 4 * i) * 0.125, lambda m=on: session.listener.callback(m))
        clock.at(100.0 + (4 + 4 * i) * 0.125, lambda m=off: session.listener.callback(m))
    session.run(max_ticks=40)
    played = [(round((t - 100.0) / 0.125), m.velocity) for t, m in port.sent
              if m.type == "note_on" and m.velocity > 0]
    assert {v for step, v in played if step <= 4} == {72}          # before their first note ended
    assert {v for step, v in played if step >= 6} == {118}
    assert "vel player 118 sd 0" in stream.getvalue().split("\r")[-1]
