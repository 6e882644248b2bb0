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

# fp32 must reproduce torch: the largest |logit difference| at most 1e-4. The lossy precisions are
# held to "the same music", judged on the next-token distributions rather than on single logits:
# dynamic int8 rounds each weight row to 256 levels, so its error grows with the logits' size, and a
# sharp model's unlikely tokens (logit -30 or -31: probability ~0 either way) can differ by more
# than 0.5 while the distributions agree. Lossy: mean KL at most KL_TOLERANCE nats and the same most
# likely token on at least MIN_ARGMAX_AGREEMENT of the steps.
TOLERANCE = {"fp32": 1e-4}
KL_TOLERANCE = {"fp16": 1e-3, "int8": 5e-3}
MIN_ARGMAX_AGREEMENT = 0.98


def parity_failure(precision: str, report: "ParityReport") -> str | None:
    """Why `report` fails the self-check for `precision`, or None when it passes."""
    if precision in TOLERANCE:
        if report.max_abs_logit_diff > TOLERANCE[precision]:
            return (f"onnxruntime's logits differ from torch's by up to {report.max_abs_logit_diff:.3g}"
                    f" (tolerance {TOLERANCE[precision]:g} for {precision})")
        return None
    if report.mean_kl_nats > KL_TOLERANCE[precision]:
        return (f"the next-token distributions differ from torch's by a mean KL of "
                f"{report.mean_kl_nats:.3g} nats (tolerance {KL_TOLERANCE[precision]:g} for {precision})")
    if report.argmax_agreement < MIN_ARGMAX_AGREEMENT:
        return (f"the most likely token agrees with torch's on only {report.argmax_agreement:.1%} of "
                f"the steps (at least {MIN_ARGMAX_AGREEMENT:.0%} needed for {precision})")
    return None


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
