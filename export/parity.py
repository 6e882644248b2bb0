"""The export's self-check: torch against onnxruntime (through perform's own Engine) over a token
stream fed one token at a time with the state carried, as the instrument will feed it."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from perform.engine import CPU, Engine
from perform.tokens import BOS
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
    step_ms_p50: float               # onnxruntime CPU step latency during the check
    step_ms_p99: float

    def to_dict(self) -> dict:
        return {k: round(v, 8) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def stream_tokens(vocab_size: int, tokens: int, seed: int = 0) -> np.ndarray:
    """BOS then random token ids: every id is exercised, the state drifts far from zero."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=tokens, dtype=np.int64)
    ids[0] = BOS
    return ids


def check_parity(model: JamLSTM, path: Path, tokens: int = 500, seed: int = 0) -> ParityReport:
    """Feed the same stream to `model` and to the .onnx file at `path`, token by token."""
    engine = Engine(path, providers=(CPU,), warmup=True)
    ids = stream_tokens(model.vocab_size, tokens, seed)
    torch_logits = _torch_stream(model, ids)                 # (T, V)
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
    return ParityReport(tokens, diff, agree, float(p50), float(p99))


@torch.no_grad()
def _torch_stream(model: JamLSTM, ids: np.ndarray) -> np.ndarray:
    model = model.eval()
    state = model.initial_state(1)
    out = np.empty((len(ids), model.vocab_size), dtype=np.float32)
    for i, token in enumerate(ids):
        logits, state = model(torch.tensor([[int(token)]]), state)   # (1, 1, V)
        out[i] = logits[0, 0].numpy()
    return out
