"""Per-step latency of a model on onnxruntime's CPU provider, against the tutorials' window.

    python bench/step.py --json                       # the shipped models/default.onnx
    python bench/step.py --model model.int8.onnx --steps 5000
    python bench/step.py --provider CUDAExecutionProvider --checkpoint runs/latest/best.pt --json

Figures:
    step_ms      one stateful step through perform.engine.Engine (what the instrument does per token)
    window_ms    the tutorials' way: the last 100 tokens re-run from zero state for every new token
                 (the same graph, fed a batch-1 sequence of 100 tokens)
    ratio        window p50 / step p50 (goal >= 40)
    sample_us    one grammar-masked draw (perform.sampling.Sampler) over the vocabulary
    cold_start_s a new Python process, from its start to the first logits (goal <= 1.5 s)
    torch_step_ms  with --checkpoint: one step of the torch model (on CUDA when there is a GPU)
The CPU may be shared: run it a few times and keep the best clean run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# bench/ holds train.py, which would shadow the train package for `python bench/step.py`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from perform.engine import CPU, Engine, _session_options  # noqa: E402
from perform.model_file import default_model_path  # noqa: E402
from perform.sampling import Sampler  # noqa: E402
from perform.tokens import BOS, TokenReader  # noqa: E402

WINDOW = 100
COLD_START = """
import time, sys
t0 = float(sys.argv[1])
from perform.engine import Engine
from perform.tokens import BOS
e = Engine(sys.argv[2], providers=("CPUExecutionProvider",), warmup=False)
logits, _ = e.step(BOS, e.initial_state())
print(time.time() - t0)
"""


def percentiles_ms(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 4), "p99": round(float(np.percentile(ms, 99)), 4),
            "min": round(float(ms.min()), 4)}


def bench_step(engine: Engine, steps: int) -> dict:
    tokens = np.random.default_rng(0).integers(0, engine.vocab.size, steps)
    state, times = engine.initial_state(), []
    for token in tokens:
        t0 = time.perf_counter()
        _, state = engine.step(int(token), state)
        times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def bench_window(path: Path, engine: Engine, windows: int, threads: int) -> dict:
    session = ort.InferenceSession(str(path), _session_options(threads), providers=[CPU])
    ids = np.random.default_rng(1).integers(0, engine.vocab.size, (1, WINDOW))
    zeros = np.zeros((engine.num_layers, 1, engine.hidden_size), np.float32)
    feed = {"ids": ids, "h": zeros, "c": zeros}
    for _ in range(3):
        session.run(["logits"], feed)
    times = []
    for _ in range(windows):
        t0 = time.perf_counter()
        session.run(["logits"], feed)
        times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def bench_sample(engine: Engine, draws: int) -> dict:
    sampler, reader = Sampler(seed=0), TokenReader(engine.vocab)
    reader.feed(BOS)
    logits, _ = engine.step(BOS, engine.initial_state())
    mask, times = reader.allowed().copy(), []
    for _ in range(draws):
        t0 = time.perf_counter()
        sampler.sample(logits, mask)
        times.append(time.perf_counter() - t0)
    return {k: round(v * 1e3, 2) for k, v in percentiles_ms(times).items()}


def bench_cold_start(path: Path, runs: int) -> dict:
    times = []
    for _ in range(runs):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", COLD_START, repr(t0), str(path)],
                             capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return {"best": round(min(times), 3), "median": round(float(np.median(times)), 3)}


def bench_torch(checkpoint: Path, steps: int) -> dict:
    """One stateful step of the torch model, on CUDA when available (needs the export extra)."""
    import torch
    from train.checkpoint import load_checkpoint, model_from_checkpoint
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, vocab = model_from_checkpoint(load_checkpoint(checkpoint))
    model = model.to(device)
    state, times = model.initial_state(1, device), []
    token = torch.zeros(1, 1, dtype=torch.long, device=device)
    with torch.no_grad():
        for i in range(steps + 50):
            t0 = time.perf_counter()
            logits, state = model(token, state)
            logits = logits[0, 0].cpu()          # the sampler wants the logits on the host
            if i >= 50:
                times.append(time.perf_counter() - t0)
    return {"device": device, **percentiles_ms(times)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--provider", default=CPU, help="for the step figures (the window: CPU)")
    parser.add_argument("--checkpoint", type=Path, help="also time the torch model's step")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    engine = Engine(args.model, providers=(args.provider,), threads=args.threads)
    step = bench_step(engine, args.steps)
    window = bench_window(args.model, engine, args.windows, args.threads)
    result = {
        "model": str(args.model), "precision": engine.metadata.get("precision", "fp32"),
        "model_args": engine.metadata["model_args"], "provider": engine.provider,
        "fallback": engine.fallback, "threads": args.threads, "onnxruntime": ort.__version__,
        "step_ms": step, "window_ms": window, "window_tokens": WINDOW,
        "ratio_p50": round(window["p50"] / step["p50"], 1),
        "sample_us": bench_sample(engine, 2000),
        "cold_start_s": bench_cold_start(args.model, args.cold_runs),
        **({"torch_step_ms": bench_torch(args.checkpoint, args.steps)} if args.checkpoint else {}),
        "goals": {"ratio_p50": ">= 40", "step_ms.p99": "<= 0.2", "cold_start_s": "<= 1.5"},
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.model.name} ({result['precision']}, {engine.provider}, {args.threads} thread): "
              f"step p50 {step['p50']:.3f} ms p99 {step['p99']:.3f} ms; window of {WINDOW} p50 "
              f"{window['p50']:.2f} ms; ratio {result['ratio_p50']}x; sample p50 "
              f"{result['sample_us']['p50']} us; cold start {result['cold_start_s']['best']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
