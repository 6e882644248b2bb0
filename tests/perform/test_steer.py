"""Steering (perform.steer): the answer in the player's key, near their register, busier or sparser,
with separate pitch and rhythm temperatures; the defaults change nothing."""
import numpy as np
import pytest

from perform.config import Config, SteerConfig
from perform.controls import Controls
from perform.errors import ConfigError
from perform.generator import Generator
from perform.render import render
from perform.sampling import Sampler
from perform.steer import KeyTracker, Steerer, parse_key, scale_mask
from perform.tokens import EXPECT_DUR, EXPECT_EVENT, EXPECT_VEL, STEP, Note, TokenReader, Vocab

from fakes import FlatEngine

V = Vocab()
NOTES = slice(V.note_base, V.dur_base)
D_MINOR = {2, 4, 5, 7, 9, 10, 0, 1}              # natural minor plus the raised 7th (C#)
C_MAJOR = {0, 2, 4, 5, 7, 9, 11}


class RandomEngine:
    """Varied logits that depend on everything fed so far (a stand-in for a model)."""

    vocab = V

    def initial_state(self):
        return 1

    def step(self, token, state):
        state = (state * 1_000_003 + int(token)) % 2**31
        return np.random.default_rng(state).normal(0.0, 2.0, V.size).astype(np.float32), state


def generator(engine=None, seed=0, max_notes=12, **steer):
    return Generator(engine or FlatEngine(), Sampler(top_p=1.0, seed=seed), max_notes,
                     steering=Steerer(SteerConfig(**steer), V))


def play(gen, steps):
    return [n for _ in range(steps) for n in gen.next_step()]


def melody(pitches, start=0, dur=4):
    return [Note(start + i * dur, p, dur, 80) for i, p in enumerate(pitches)]


C_TUNE = [60, 62, 64, 65, 67, 69, 71, 72, 67, 64, 60, 65, 69, 67, 62, 60]        # 16 beats
A_MINOR_TUNE = [57, 60, 64, 69, 68, 71, 64, 57, 62, 65, 68, 69, 64, 60, 57, 57]


# key ------------------------------------------------------------------------------------------------
def test_key_strength_1_with_a_fixed_key_plays_only_that_scale():
    notes = play(generator(key_strength=1.0, key="D minor"), 200)
    assert len(notes) > 500
    assert {n.pitch % 12 for n in notes} == D_MINOR          # all of it, and nothing else
    free = play(generator(), 200)
    assert {n.pitch % 12 for n in free} == set(range(12))


def test_key_strength_between_0_and_1_is_a_soft_penalty_in_nats():
    for strength, nats in ((0.5, 2.0), (0.75, 6.0)):
        steer = Steerer(SteerConfig(key_strength=strength, key="C major"), V)
        assert steer.begin_step(0)
        x = steer.bias(np.zeros(V.size), EXPECT_EVENT, np.ones(V.size, bool))
        pitches = np.arange(V.pitch_min, V.pitch_max + 1)
        inside = np.isin(pitches % 12, list(C_MAJOR))
        assert np.all(x[NOTES][inside] == 0.0) and np.allclose(x[NOTES][~inside], -nats)


def test_neutral_steering_plays_exactly_what_no_steering_plays():
    plain = Generator(RandomEngine(), Sampler(seed=5), steering=None)
    default = Generator(RandomEngine(), Sampler(seed=5), steering=Steerer(SteerConfig(), V))
    zero = Generator(RandomEngine(), Sampler(seed=5),
                     steering=Steerer(SteerConfig(key_strength=0.0, key="D minor"), V))
    for gen in (default, zero):
        gen.hear_player(melody(C_TUNE))
    expected = play(plain, 150)
    assert len(expected) > 50
    assert play(default, 150) == expected and play(zero, 150) == expected


def test_parse_key_reads_sharps_flats_and_case_and_rejects_the_rest():
    assert parse_key("D minor") == (2, "minor") and parse_key("f# Major") == (6, "major")
    assert parse_key("Bb minor") == (10, "minor") and parse_key("") is None
    assert parse_key("Cb major") == (11, "major")
    for bad in ("H major", "D dorian", "Dm", "D# # minor"):
        with pytest.raises(ValueError, match='"F# major"'):
            parse_key(bad)
    assert sorted(np.flatnonzero(scale_mask(9, "minor"))) == [0, 2, 4, 5, 7, 8, 9, 11]   # A minor + G#


def test_bad_steer_settings_are_config_errors_saying_what_is_accepted():
    with pytest.raises(ConfigError, match=r"steer.key = 'H major' is not a key; expected .*D minor"):
        SteerConfig(key="H major")
    with pytest.raises(ConfigError, match=r"steer.density = 2 is out of range; expected .* \[-1, 1\]"):
        SteerConfig(density=2)
    with pytest.raises(ConfigError, match="steer.pitch_temperature"):
        SteerConfig(pitch_temperature=0.0)


# the tracker ----------------------------------------------------------------------------------------
def test_tracker_hears_c_major_and_a_minor():
    tracker = KeyTracker()
    assert tracker.estimate() is None and tracker.centre is None
    tracker.hear(melody(C_TUNE))
    tonic, mode, confidence = tracker.estimate()
    assert (tonic, mode) == (0, "major") and 0.9 < confidence <= 1.0
    tracker = KeyTracker()
    tracker.hear(melody(A_MINOR_TUNE))
    assert tracker.estimate()[:2] == (9, "minor")
    assert tracker.centre == pytest.approx(np.mean(A_MINOR_TUNE), abs=3)


def played_live(tracker, pitches, first_step):
    for i, p in enumerate(pitches):
        tracker.advance_to(first_step + 4 * i)
        tracker.hear([Note(first_step + 4 * i, p, 4, 80)])


@pytest.mark.parametrize("half_life_beats, key_after", [(8.0, (4, "major")), (1000.0, (0, "major"))])
def test_tracker_follows_a_modulation_as_the_old_key_fades(half_life_beats, key_after):
    tracker = KeyTracker(half_life_beats)
    played_live(tracker, C_TUNE + C_TUNE, 0)                 # 32 beats of C major
    assert tracker.estimate()[:2] == (0, "major")
    played_live(tracker, [p + 4 for p in C_TUNE], 128)       # then 16 beats of E major
    assert tracker.estimate()[:2] == key_after               # forgetting C takes the decay


def test_tracker_decays_by_half_per_half_life_and_ignores_going_back():
    tracker = KeyTracker(half_life_beats=2.0, steps_per_beat=4)
    tracker.hear([Note(0, 62, 4, 80)])
    tracker.advance_to(8)
    assert tracker.profile[2] == pytest.approx(2.0)
    tracker.advance_to(3)                                    # a restored snapshot: no change
    assert tracker.profile[2] == pytest.approx(2.0)
    tracker.hear([Note(0, 64, 4, 80)])                       # heard late: weighed by its age
    assert tracker.profile[4] == pytest.approx(2.0)


def test_the_key_followed_is_the_player_s_once_they_played():
    gen = generator(key_strength=1.0)
    assert gen.steering.describe_key() == "-"
    before = play(gen, 100)
    assert len({n.pitch % 12 for n in before}) == 12         # no key heard yet: no steering
    gen.hear_player(melody(A_MINOR_TUNE, start=gen.step_index))
    assert gen.steering.describe_key().startswith("A minor 0.")
    after = play(gen, 100)
    assert {n.pitch % 12 for n in after} == {9, 11, 0, 2, 4, 5, 7, 8}
    assert generator(key="D minor").steering.describe_key() == "D minor fixed"


# register ---------------------------------------------------------------------------------------------
def test_register_follow_pulls_the_pitches_to_the_player_s_register():
    def distances(follow):
        gen = generator(seed=3, register_follow=follow)
        gen.hear_player([Note(0, 40, 4, 80), Note(0, 44, 4, 80)])     # centre 42
        return np.array([abs(n.pitch - 42) for n in play(gen, 200)])
    free, half, full = distances(0.0), distances(0.5), distances(1.0)
    assert np.median(full) < np.median(half) < np.median(free)
    assert np.mean(full <= 12) > 0.85 and np.mean(free <= 12) < 0.3


def test_register_penalty_is_half_a_nat_per_semitone_beyond_six():
    steer = Steerer(SteerConfig(register_follow=0.5), V)
    steer.hear([Note(0, 60, 1, 80)])
    steer.begin_step(0)
    x = steer.bias(np.zeros(V.size), EXPECT_EVENT, np.ones(V.size, bool))
    at = lambda pitch: x[V.note_id(pitch)]   # noqa: E731
    assert at(60) == at(66) == at(54) == 0.0
    assert at(70) == pytest.approx(-0.5 * 0.5 * 4) and at(40) == pytest.approx(-0.5 * 0.5 * 14)


# density ------------------------------------------------------------------------------------------------
def test_density_raises_notes_per_step_monotonically():
    rates = [len(play(generator(seed=1, density=d), 300)) / 300 for d in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    assert rates == sorted(rates) and len(set(rates)) == 5
    assert rates[-1] > 1.5 * rates[0]


@pytest.mark.parametrize("density, nats", [(1.0, 1.25), (0.5, 0.625), (-0.5, -1.0), (-1.0, -2.0)])
def test_density_moves_notes_against_step_by_its_nats(density, nats):
    steer = Steerer(SteerConfig(density=density), V)
    steer.begin_step(0)
    mask = np.ones(V.size, bool)
    x = steer.bias(np.zeros(V.size), EXPECT_EVENT, mask)
    assert x[STEP] == -nats and np.all(x[NOTES] == nats)
    dur = steer.bias(np.zeros(V.size), EXPECT_DUR, mask)
    assert np.all(dur == 0.0)                                 # only at an event boundary


# temperatures ---------------------------------------------------------------------------------------------
def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_pitch_temperature_sharpens_which_pitch_but_not_whether_a_note_comes():
    logits = np.random.default_rng(0).normal(0, 2, V.size)
    mask = TokenReader(V).allowed() & (np.arange(V.size) != 2)          # no EOS, as the generator
    steer = Steerer(SteerConfig(pitch_temperature=0.5), V)
    steer.begin_step(0)
    x = steer.bias(logits, EXPECT_EVENT, mask)
    before, after = softmax(np.where(mask, logits, -np.inf)), softmax(np.where(mask, x, -np.inf))
    assert after[STEP] == pytest.approx(before[STEP])
    assert after[NOTES] / after[NOTES].sum() == pytest.approx(softmax(logits[NOTES] / 0.5))
    for state in (EXPECT_DUR, EXPECT_VEL):
        assert np.array_equal(steer.bias(logits, state, mask), logits)


def test_rhythm_temperature_reshapes_note_or_step_and_durations_not_pitches():
    logits = np.random.default_rng(1).normal(0, 2, V.size)
    mask = TokenReader(V).allowed() & (np.arange(V.size) != 2)
    steer = Steerer(SteerConfig(rhythm_temperature=2.0), V)
    steer.begin_step(0)
    before = softmax(np.where(mask, logits, -np.inf))
    after = softmax(np.where(mask, steer.bias(logits, EXPECT_EVENT, mask), -np.inf))
    p_step = before[STEP] ** 0.5 / (before[STEP] ** 0.5 + (1 - before[STEP]) ** 0.5)
    assert after[STEP] == pytest.approx(p_step)
    assert after[NOTES] / after[NOTES].sum() == pytest.approx(before[NOTES] / before[NOTES].sum())
    dur = steer.bias(logits, EXPECT_DUR, mask)
    assert np.allclose(dur[V.dur_base:V.vel_base], logits[V.dur_base:V.vel_base] / 2.0)
    assert np.array_equal(steer.bias(logits, EXPECT_VEL, mask), logits)


class FavouriteEngine:
    """Pitch 60 favoured over the rest; the same logits whatever came before."""

    vocab = V

    def initial_state(self):
        return 0

    def step(self, token, state):
        x = np.random.default_rng(7).normal(0.0, 1.0, V.size).astype(np.float32)
        x[V.note_id(60)] += 2.0
        return x, state


def test_pitch_temperature_changes_the_pitches_only():
    def run(t):
        gen = generator(FavouriteEngine(), seed=2, max_notes=1, pitch_temperature=t)
        return play(gen, 300)
    plain, cool = run(1.0), run(0.3)
    rhythm = lambda notes: [(n.start_step, n.dur_steps, n.velocity) for n in notes]   # noqa: E731
    assert rhythm(cool) == rhythm(plain) and len(plain) > 50   # same onsets, durations, velocities
    share = lambda notes: np.mean([n.pitch == 60 for n in notes])   # noqa: E731
    assert share(cool) > share(plain) + 0.2


# wiring: render, controls ---------------------------------------------------------------------------------
def test_render_with_a_prime_follows_the_prime_s_key():
    gen = generator(key_strength=1.0)
    notes = render(gen, bars=4, steps_per_bar=16, prime=melody(A_MINOR_TUNE))
    assert len(notes) > 50 and {n.pitch % 12 for n in notes} <= {9, 11, 0, 2, 4, 5, 7, 8}
    unprimed = render(gen, bars=4, steps_per_bar=16)        # reset: the old prime is forgotten
    assert gen.steering.key() is None and len({n.pitch % 12 for n in unprimed}) == 12


def test_steering_ccs_change_the_settings_live():
    gen = generator()
    controls = Controls(Config(), gen)
    controls.apply(24, 127)
    controls.apply(25, 0)
    controls.apply(26, 64)
    s = gen.steering.settings
    assert (s.key_strength, s.density, s.register_follow) == (1.0, -1.0, pytest.approx(64 / 127))
    controls.apply(25, 64)
    assert gen.steering.settings.density == 0.0 and not gen.steering.neutral
    controls.apply(24, 0)
    controls.apply(26, 0)
    assert gen.steering.neutral


def test_pitch_and_rhythm_temperature_ccs_span_a_quarter_to_four_times():
    gen = generator()
    controls = Controls(Config(), gen)
    controls.apply(28, 127)
    controls.apply(29, 0)
    s = gen.steering.settings
    assert (s.pitch_temperature, s.rhythm_temperature) == (4.0, 0.25)
    controls.apply(28, 64)
    controls.apply(29, 64)
    assert gen.steering.neutral                     # the centre is exactly neutral again
    controls.apply(28, 96)
    assert 1.0 < gen.steering.settings.pitch_temperature < 4.0
