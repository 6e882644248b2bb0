"""The export's self-check: torch against onnxruntime (through perform's own Engine) over a token
stream fed one token at a time with the state carried, as the instrument will feed it.

The stream is music the torch model plays itself (seeded, grammar-masked, temperature 1): the states
it reaches are the ones the instrument will meet, which matters when judging lossy variants (int8).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from perform.engine import CPU, Engine
from perform.sampling import Sampler
from perform.tokens import BOS, EOS, TokenReader, Vocab
from train.model import JamLSTM

# Largest max |logit difference| accepted per precision. fp32 is the bound; the others are
# lossy on purpose and are held to "the same music": a bound well under a sampling temperature's
# effect (a logit off by 0.1 changes a probability by ~10%).
TOLERANCE = {"fp32": 1e-4, "fp16": 5e-2, "int8": 0.5}


@dataclass(frozen=True)
class ParityReport:
    tokens: int
    max_abs_logit_diff: float
    argmax_agreement: float          # share of steps where both pick the same most likely token
    mean_kl_nats: float              # mean KL(torch || onnxruntime) of the next-token distributions
    step_ms_p50: float               # onnxruntime CPU step latency during the check
    step_ms_p99: float

    def to_dict(self) -> dict:
        return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in self.__dict__.items()}


def check_parity(model: JamLSTM, path: Path, tokens: int = 500, seed: int = 0) -> ParityReport:
    """Feed the same stream to `model` and to the .onnx file at `path`, token by token."""
    engine = Engine(path, providers=(CPU,), warmup=True)
    ids, torch_logits = _torch_stream(model, engine.vocab, tokens, seed)   # (T,), (T, V)
    ort_logits = np.empty_like(torch_logits)
    times = np.empty(tokens)
    state = engine.initial_state()
    for i, token in enumerate(ids):
        t0 = time.perf_counter()
        ort_logits[i], state = engine.step(int(token), state)
        times[i] = time.perf_counter() - t0
    diff = float(np.max(np.abs(ort_logits - torch_logits)))
    agree = float(np.mean(ort_logits.argmax(-1) == torch_logits.argmax(-1)))
    p50, p99 = np.percentile(times * 1e3, [50, 99])
    return ParityReport(tokens, diff, agree, _mean_kl(torch_logits, ort_logits), float(p50), float(p99))


@torch.no_grad()
def _torch_stream(model: JamLSTM, vocab: Vocab, tokens: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """BOS, then tokens the model draws itself; returns the ids and the logits after each."""
    model = model.eval()
    sampler, reader = Sampler(temperature=1.0, top_p=1.0, seed=seed), TokenReader(vocab)
    state = model.initial_state(1)
    ids = np.empty(tokens, dtype=np.int64)
    out = np.empty((tokens, model.vocab_size), dtype=np.float32)
    token = BOS
    for i in range(tokens):
        ids[i] = token
        reader.feed(token)
        logits, state = model(torch.tensor([[token]]), state)   # (1, 1, V)
        out[i] = logits[0, 0].numpy()
        token = sampler.sample(out[i], reader.allowed())
        if token == EOS:                                          # a song ends: start another
            token = BOS
    return ids, out


def _mean_kl(p_logits: np.ndarray, q_logits: np.ndarray) -> float:
    log_p = _log_softmax(p_logits.astype(np.float64))
    log_q = _log_softmax(q_logits.astype(np.float64))
    return float(np.mean(np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)))


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))
