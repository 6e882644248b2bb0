"""Baselines over the same tokens as the LSTM: a unigram and an interpolated Kneser-Ney n-gram.

Both predict every token of a song after its BOS (exactly the positions the LSTM is scored on) and
report the mean negative log-likelihood in nats per token. Counting is vectorised with numpy: an
n-gram is one int64 key (base vocab_size digits), so ~600k tokens take a second or two.

    lm = KneserNey(order=5, vocab_size=vocab.size).fit(train_songs)
    lm.nll(val_songs)     # nats/token
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from perform.tokens import PAD

SCORE_GROUP_TOKENS = 1 << 16


def unigram_nll(train: Sequence[np.ndarray], val: Sequence[np.ndarray], vocab_size: int) -> float:
    """Add-one unigram over the training targets, scored on the validation targets."""
    counts = np.bincount(np.concatenate([s[1:] for s in train]), minlength=vocab_size) + 1.0
    targets = np.concatenate([s[1:] for s in val])
    return float(-np.log(counts[targets] / counts.sum()).mean())


class KneserNey:
    """Interpolated Kneser-Ney with one absolute discount per order (Ney's n1 / (n1 + 2 n2)).

    The highest order uses raw counts, lower orders continuation counts (how many distinct tokens
    precede the n-gram), the bottom interpolates with the uniform distribution. Songs are padded on
    the left with PAD, so no n-gram crosses songs and a song's first tokens see a start context.
    """

    def __init__(self, order: int = 5, vocab_size: int = 132) -> None:
        if order < 1 or vocab_size ** order >= 2 ** 62:
            raise ValueError(f"order {order} with vocabulary {vocab_size} does not fit int64 keys")
        self.order, self.V = order, vocab_size
        self.levels: list[dict[str, np.ndarray]] = []
        self.discounts: list[float] = []

    def fit(self, songs: Sequence[np.ndarray]) -> "KneserNey":
        grams = self._ngram_keys(songs)                    # (positions, order) keys per order
        self.levels, self.discounts = [], []
        unique_next = None
        for k in range(self.order, 0, -1):                 # highest order first
            if k == self.order:
                keys, counts = np.unique(grams[:, k - 1], return_counts=True)
            else:                                          # continuation: distinct left neighbours
                keys, counts = np.unique(unique_next % self.V ** k, return_counts=True)
            unique_next = keys
            self.levels.insert(0, self._level(keys, counts))
            self.discounts.insert(0, _discount(counts))
        return self

    def log_probs(self, songs: Sequence[np.ndarray]) -> np.ndarray:
        """Natural log-probability of every target token (each song's tokens after BOS), scored a
        group of songs at a time (the working arrays stay small however many songs there are)."""
        out, group, size = [], [], 0
        for ids in songs:
            group.append(ids)
            size += len(ids)
            if size >= SCORE_GROUP_TOKENS:
                out.append(self._log_probs(group))
                group, size = [], 0
        if group or not out:
            out.append(self._log_probs(group))
        return np.concatenate(out)

    def _log_probs(self, songs: Sequence[np.ndarray]) -> np.ndarray:
        grams = self._ngram_keys(songs)
        p = np.full(len(grams), 1.0 / self.V)
        for k in range(1, self.order + 1):
            level, d = self.levels[k - 1], self.discounts[k - 1]
            key = grams[:, k - 1]
            count = _lookup(level["keys"], level["counts"], key)
            ctx_total = _lookup(level["ctx_keys"], level["ctx_totals"], key // self.V)
            ctx_types = _lookup(level["ctx_keys"], level["ctx_types"], key // self.V)
            seen = ctx_total > 0
            safe = np.where(seen, ctx_total, 1.0)
            mixed = np.maximum(count - d, 0.0) / safe + d * ctx_types / safe * p
            p = np.where(seen, mixed, p)
        return np.log(p)

    def nll(self, songs: Sequence[np.ndarray]) -> float:
        """Mean negative log-likelihood in nats per token."""
        return float(-self.log_probs(songs).mean())

    def _level(self, keys: np.ndarray, counts: np.ndarray) -> dict[str, np.ndarray]:
        ctx_keys, inverse = np.unique(keys // self.V, return_inverse=True)
        return {"keys": keys, "counts": counts.astype(np.float64), "ctx_keys": ctx_keys,
                "ctx_totals": np.bincount(inverse, weights=counts).astype(np.float64),
                "ctx_types": np.bincount(inverse).astype(np.float64)}

    def _ngram_keys(self, songs: Sequence[np.ndarray]) -> np.ndarray:
        """(positions, order) int64: column k-1 is the key of the k-gram ending at each target."""
        n = self.order
        cols = []
        for ids in songs:
            ids = np.asarray(ids, dtype=np.int64)
            if len(ids) < 2:
                continue
            padded = np.concatenate([np.full(n - 1, PAD, dtype=np.int64), ids])
            t = np.arange(n, len(padded))                   # target positions (after BOS)
            keys = np.zeros((len(t), n), dtype=np.int64)
            acc = np.zeros(len(t), dtype=np.int64)
            for k in range(1, n + 1):                       # k-gram = tokens t-k+1 .. t
                acc = acc + padded[t - k + 1] * self.V ** (k - 1)
                keys[:, k - 1] = acc
            cols.append(keys)
        return np.concatenate(cols) if cols else np.zeros((0, n), dtype=np.int64)


def _discount(counts: np.ndarray) -> float:
    n1, n2 = int((counts == 1).sum()), int((counts == 2).sum())
    return n1 / (n1 + 2 * n2) if n1 + n2 > 0 else 0.5


def _lookup(keys: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """values[keys == query] for sorted unique keys; 0 where the query is absent."""
    if len(keys) == 0:
        return np.zeros(len(query))
    i = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return np.where(keys[i] == query, values[i], 0.0)


def perplexity(nll: float) -> float:
    return math.exp(nll) if nll < 700 else math.inf
