"""Drawing the next token from the model's logits: temperature, top-k, top-p (nucleus), a mask.

    sampler = Sampler(temperature=0.9, top_k=0, top_p=0.95, seed=7)
    token = sampler.sample(logits, mask)      # mask: bool (vocab,), False = never drawn

Masked tokens have probability zero. Then the temperature divides the logits, top-k keeps the k most
likely, top-p keeps the fewest most likely whose probabilities add up to at least p. The same seed
and the same calls give the same tokens; seed -1 draws a fresh seed (kept in `.seed`, so a take
worth keeping can be replayed). With V ~ 132 one draw costs a few tens of microseconds.
"""

from __future__ import annotations

import numpy as np


class Sampler:
    def __init__(self, temperature: float = 1.0, top_k: int = 0, top_p: float = 0.95,
                 seed: int = -1) -> None:
        if top_k < 0:
            raise ValueError(f"top_k must be 0 (off) or a whole number >= 1, got {top_k}")
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.temperature = temperature
        self.top_k = int(top_k)
        self.top_p = float(top_p)
        self.seed = int(np.random.SeedSequence().entropy % 2**32) if seed == -1 else int(seed)
        self._rng = np.random.default_rng(self.seed)

    @property
    def temperature(self) -> float:
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"temperature must be > 0, got {value}")
        self._temperature = float(value)

    def sample(self, logits: np.ndarray, mask: np.ndarray | None = None) -> int:
        """A token id drawn from softmax(logits / temperature) restricted by mask, top-k and top-p.
        `logits` is not modified. Top-k keeps ties with the k-th. Raises ValueError when the mask
        allows nothing."""
        x = np.asarray(logits, dtype=np.float64)
        x = np.where(mask, x, -np.inf) if mask is not None else x.copy()
        top = x.max()
        if not np.isfinite(top):                     # NaN somewhere, or nothing allowed
            return self._fallback(x, mask)
        if 0 < self.top_k < x.size:
            kth = np.partition(x, x.size - self.top_k)[x.size - self.top_k]
            x[x < kth] = -np.inf
        probs = np.exp((x - top) / self._temperature)   # masked: exp(-inf) = 0
        if self.top_p < 1.0:                         # the fewest likeliest tokens reaching top_p
            order = np.argsort(-probs, kind="stable")
            cumulative = np.cumsum(probs[order])
            keep = int(np.searchsorted(cumulative, self.top_p * cumulative[-1])) + 1
            probs[order[keep:]] = 0.0
        cumulative = np.cumsum(probs)
        pick = int(np.searchsorted(cumulative, self._rng.random() * cumulative[-1], side="right"))
        return min(pick, x.size - 1)

    def _fallback(self, x: np.ndarray, mask: np.ndarray | None) -> int:
        allowed = np.flatnonzero(mask) if mask is not None else np.arange(x.size)
        if allowed.size == 0:
            raise ValueError("the mask allows no token")
        x = np.where(np.isnan(x), -np.inf, x)
        if np.isfinite(x.max()):                     # NaNs among finite scores: drop the NaNs
            return self.sample(x, mask)
        return int(allowed[self._rng.integers(allowed.size)])   # nothing to go by: uniform
