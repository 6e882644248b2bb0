import numpy as np
import pytest

from perform.sampling import Sampler

LOGITS = np.log(np.array([0.5, 0.3, 0.1, 0.06, 0.04], dtype=np.float32))


def draws(sampler, logits, mask=None, n=2000):
    return np.array([sampler.sample(logits, mask) for _ in range(n)])


def test_tiny_temperature_is_argmax():
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.normal(size=132).astype(np.float32)
        s = Sampler(temperature=1e-6, top_p=1.0, seed=1)
        assert set(draws(s, logits, n=50)) == {int(logits.argmax())}


def test_at_temperature_one_the_frequencies_follow_softmax():
    got = np.bincount(draws(Sampler(top_p=1.0, seed=3), LOGITS, n=20000), minlength=5) / 20000
    assert np.allclose(got, [0.5, 0.3, 0.1, 0.06, 0.04], atol=0.015)


def test_high_temperature_flattens():
    got = np.bincount(draws(Sampler(temperature=100.0, top_p=1.0, seed=3), LOGITS, n=10000),
                      minlength=5) / 10000
    assert got.min() > 0.15


def test_top_k_restricts_support_to_the_k_most_likely():
    s = Sampler(temperature=5.0, top_k=2, top_p=1.0, seed=0)
    assert set(draws(s, LOGITS)) == {0, 1}


def test_top_p_keeps_the_fewest_tokens_reaching_p():
    assert set(draws(Sampler(top_p=0.75, seed=0), LOGITS)) == {0, 1}      # 0.5 + 0.3 >= 0.75
    assert set(draws(Sampler(top_p=0.85, seed=0), LOGITS)) == {0, 1, 2}   # needs 0.9
    assert set(draws(Sampler(top_p=0.4, seed=0), LOGITS, n=200)) == {0}


def test_mask_gives_zero_probability_even_to_the_favourite():
    mask = np.array([False, True, False, True, True])
    got = set(draws(Sampler(top_p=1.0, seed=0), LOGITS, mask))
    assert got == {1, 3, 4}
    tiny_t = Sampler(temperature=1e-6, seed=0)
    assert set(draws(tiny_t, LOGITS, mask, n=50)) == {1}


def test_top_k_and_top_p_apply_after_the_mask():
    mask = np.array([False, False, True, True, True])
    assert set(draws(Sampler(top_k=1, seed=0), LOGITS, mask, n=100)) == {2}


def test_same_seed_same_tokens_other_seed_other_tokens():
    a = draws(Sampler(temperature=2.0, seed=42), LOGITS, n=200)
    b = draws(Sampler(temperature=2.0, seed=42), LOGITS, n=200)
    c = draws(Sampler(temperature=2.0, seed=43), LOGITS, n=200)
    assert (a == b).all() and (a != c).any()


def test_seed_minus_one_draws_a_fresh_seed_that_replays():
    s1, s2 = Sampler(temperature=2.0), Sampler(temperature=2.0)
    assert s1.seed != s2.seed
    first = draws(s1, LOGITS, n=100)
    assert (draws(Sampler(temperature=2.0, seed=s1.seed), LOGITS, n=100) == first).all()


def test_logits_and_mask_are_not_modified():
    logits, mask = LOGITS.copy(), np.array([True, False, True, True, True])
    Sampler(temperature=0.5, top_k=2, seed=0).sample(logits, mask)
    assert (logits == LOGITS).all() and mask.tolist() == [True, False, True, True, True]


def test_temperature_is_settable_and_checked():
    s = Sampler(seed=0)
    s.temperature = 1e-6
    assert set(draws(s, LOGITS, n=20)) == {0}
    with pytest.raises(ValueError, match="temperature"):
        s.temperature = 0.0
    with pytest.raises(ValueError, match="top_p"):
        Sampler(top_p=0.0)


def test_an_empty_mask_is_an_error_and_nan_logits_fall_back_to_uniform():
    with pytest.raises(ValueError, match="allows no token"):
        Sampler(seed=0).sample(LOGITS, np.zeros(5, dtype=bool))
    nan = np.full(5, np.nan, dtype=np.float32)
    assert set(draws(Sampler(seed=0), nan, np.array([1, 1, 0, 0, 0], bool), n=200)) == {0, 1}
