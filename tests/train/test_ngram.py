"""The n-gram baselines: proper distributions, and context helps on music that repeats."""

import math

import numpy as np
import pytest

from perform.tokens import BOS, EOS
from train.ngram import KneserNey, perplexity, unigram_nll

V = 24


def _songs(rng, count, motif):
    """Songs that loop a motif from a random point: a model that remembers context wins."""
    out = []
    for _ in range(count):
        start = int(rng.integers(len(motif)))
        body = [motif[(start + i) % len(motif)] for i in range(int(rng.integers(20, 60)))]
        out.append(np.array([BOS, *body, EOS], dtype=np.int64))
    return out


def test_ngram_beats_unigram_on_repetitive_music():
    rng = np.random.default_rng(0)
    motif = [5, 9, 12, 9, 5, 3, 17, 3, 12, 20]
    train, val = _songs(rng, 40, motif), _songs(rng, 10, motif)
    ngram = KneserNey(order=4, vocab_size=V).fit(train).nll(val)
    unigram = unigram_nll(train, val, V)
    assert ngram < 0.5 * unigram
    assert ngram < 0.3                     # the motif is almost deterministic given 3 tokens


@pytest.mark.parametrize("context", [[BOS], [BOS, 5, 9], [7, 7, 7, 7, 7], [BOS, 21, 22, 23]])
def test_every_context_gives_a_distribution(context):
    rng = np.random.default_rng(1)
    train = [np.array([BOS, *rng.integers(3, V, 40), EOS]) for _ in range(20)]
    lm = KneserNey(order=5, vocab_size=V).fit(train)
    total = sum(math.exp(lm.log_probs([np.array(context + [w])])[-1]) for w in range(V))
    assert total == pytest.approx(1.0, abs=1e-9)


def test_unseen_tokens_get_probability_not_infinity():
    train = [np.array([BOS, 5, 6, 5, 6, EOS])]
    val = [np.array([BOS, 20, 21, 22, EOS])]
    nll = KneserNey(order=3, vocab_size=V).fit(train).nll(val)
    assert math.isfinite(nll) and nll > math.log(V) * 0.5
    assert math.isfinite(unigram_nll(train, val, V))


def test_scores_the_same_positions_as_the_model():
    songs = [np.array([BOS, 5, 6, EOS]), np.array([BOS, 7, EOS])]
    lm = KneserNey(order=2, vocab_size=V).fit(songs)
    assert len(lm.log_probs(songs)) == sum(len(s) - 1 for s in songs)


def test_perplexity_of_nll():
    assert perplexity(math.log(7.0)) == pytest.approx(7.0)
    assert perplexity(1e6) == math.inf
