"""Compare exported variants on real music: how well each predicts it, and how fast it steps.

    python -m export.compare model.onnx model.int8.onnx --corpus ../shared/corpus/ff-piano --json

Each song is fed one token at a time with the state carried, exactly as the instrument feeds it (a
whole-sequence run would quantize int8 inputs with other scales). Reported per model: the mean NLL
of the next token in nats, its top-1 accuracy, and the step latency; the first model is the
reference for the mean KL of the others. Used to pick the shipped default by measurement.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from perform.engine import CPU, Engine
from perform.errors import JamError


def score(engine: Engine, songs: list[np.ndarray]) -> tuple[dict, np.ndarray]:
    """NLL, accuracy and latency of `engine` over `songs`; also every step's log-probabilities."""
    nll, hits, times, log_probs = [], [], [], []
    for ids in songs:
        state = engine.initial_state()
        for token, target in zip(ids[:-1], ids[1:]):
            t0 = time.perf_counter()
            logits, state = engine.step(int(token), state)
            times.append(time.perf_counter() - t0)
            x = logits.astype(np.float64) - logits.max()
            lp = x - np.log(np.exp(x).sum())
            log_probs.append(lp)
            nll.append(-lp[target])
            hits.append(int(logits.argmax()) == int(target))
    ms = np.asarray(times) * 1e3
    return ({"tokens": len(nll), "nll": float(np.mean(nll)), "accuracy": float(np.mean(hits)),
             "step_ms_p50": float(np.percentile(ms, 50)), "step_ms_p99": float(np.percentile(ms, 99))},
            np.asarray(log_probs))


def load_songs(paths: list[str], engine: Engine, limit_files: int, max_tokens: int) -> list[np.ndarray]:
    from train.corpus import find_files, load_corpus
    files = find_files(paths)[:limit_files] if paths else None
    corpus = load_corpus(files, engine.vocab, workers=1)
    songs, total = [], 0
    for song in corpus.songs:
        if total >= max_tokens:
            break
        songs.append(song.ids[: max_tokens - total])
        total += len(songs[-1])
    return songs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--corpus", nargs="*", default=[], help="MIDI files or folders (none: Bach)")
    parser.add_argument("--files", type=int, default=8, help="read at most this many files")
    parser.add_argument("--tokens", type=int, default=20000, help="score at most this many tokens")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        engines = [Engine(m, providers=(CPU,)) for m in args.models]
        songs = load_songs(args.corpus, engines[0], args.files, args.tokens)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    results, reference = [], None
    for path, engine in zip(args.models, engines):
        figures, log_probs = score(engine, songs)
        if reference is None:
            reference = log_probs
        kl = float(np.mean(np.sum(np.exp(reference) * (reference - log_probs), axis=-1)))
        results.append({"model": str(path), "precision": engine.metadata.get("precision", "fp32"),
                        "bytes": path.stat().st_size, **figures, "mean_kl_vs_first": kl})
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['model']}: {r['precision']}, {r['bytes'] / 1e6:.2f} MB, NLL {r['nll']:.4f} nats "
                  f"over {r['tokens']} tokens, top-1 {r['accuracy']:.1%}, KL vs first "
                  f"{r['mean_kl_vs_first']:.2e}, step p50 {r['step_ms_p50']:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
