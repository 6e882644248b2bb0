"""Score a checkpoint on music it never saw (no augmentation).

    python -m train evaluate CHECKPOINT PATH ... [--json] [--as-heard]     (PATH: files, folders or
                                                                           one shard folder)

Prints NLL per token (nats), perplexity, next-token accuracy and the number of tokens scored, with
the checkpoint's own training metrics beside them (`--json`: one JSON object).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from perform.errors import JamError
from perform.tokens import EOS, PAD, STEP, Vocab

from .checkpoint import load_checkpoint, model_from_checkpoint
from .data import stream_batches
from .errors import CorpusError
from .model import JamLSTM, State


def carry_state(state: State | None, reset: torch.Tensor) -> State | None:
    """Detach the state from the last chunk's graph and zero the rows that start a new song."""
    if state is None:
        return None
    keep = (~reset).to(state[0].dtype).view(1, -1, 1)     # (1, B, 1)
    return state[0].detach() * keep, state[1].detach() * keep


def autocast(device: torch.device):
    """fp16 autocast on CUDA (cuDNN's LSTM kernels take fp16 on every CUDA GPU; the loss is taken
    in fp32 and training scales it); a no-op on the CPU, where fp32 is the fast path."""
    if device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    return torch.autocast("cuda", dtype=torch.float16)


TOKEN_TYPES = ("note", "dur", "vel", "step")


def token_types(vocab: Vocab) -> np.ndarray:
    """Each id's type as an index into TOKEN_TYPES (STEP and EOS count as "step"; PAD, BOS: -1)."""
    kinds = np.full(vocab.size, -1, dtype=np.int64)
    kinds[vocab.note_base:vocab.dur_base] = 0
    kinds[vocab.dur_base:vocab.vel_base] = 1
    kinds[vocab.vel_base:vocab.size] = 2
    kinds[[STEP, EOS]] = 3
    return kinds


def score_songs(model: JamLSTM, songs: Sequence[np.ndarray], *, batch_size: int = 32,
                seq_len: int = 256, device: torch.device | str = "cpu",
                vocab: Vocab | None = None, release=None) -> dict[str, float]:
    """NLL per token (nats), perplexity, accuracy and token count over every position after BOS.

    With `vocab`, also the NLL of each token type: `nll_note`, `nll_dur`, `nll_vel`, `nll_step`
    (nats per token of that type; NaN for a type that never occurs). `release()` is called now and
    then (memory-mapped songs).
    """
    return scores_from_sums(sum_scores(model, songs, batch_size=batch_size, seq_len=seq_len,
                                       device=device, vocab=vocab, release=release),
                            with_types=vocab is not None)


def scores_from_sums(sums: Sequence[float], with_types: bool = True) -> dict[str, float]:
    """score_songs's figures from sum_scores's sums (added up over processes, say)."""
    total_nll, correct, tokens = sums[0], sums[1], int(sums[2])
    nll = total_nll / tokens if tokens else math.nan
    result = {"nll": nll, "perplexity": math.exp(nll) if tokens else math.nan,
              "accuracy": correct / tokens if tokens else math.nan, "tokens": tokens}
    if with_types:
        for k, name in enumerate(TOKEN_TYPES):
            type_nll, count = sums[3 + 2 * k], sums[4 + 2 * k]
            result[f"nll_{name}"] = float(type_nll / count) if count else math.nan
    return result


@torch.no_grad()
def sum_scores(model: JamLSTM, songs: Sequence[np.ndarray], *, batch_size: int = 32,
               seq_len: int = 256, device: torch.device | str = "cpu",
               vocab: Vocab | None = None, release=None) -> list[float]:
    """[total NLL, correct, tokens, then NLL and count of each token type] over `songs`."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_nll, correct, tokens, state = 0.0, 0, 0, None
    kinds = torch.from_numpy(token_types(vocab)).to(device) if vocab is not None else None
    type_nll = np.zeros(len(TOKEN_TYPES))
    type_count = np.zeros(len(TOKEN_TYPES))
    try:
        for batch in stream_batches(songs, batch_size=batch_size, seq_len=seq_len, release=release):
            inputs = torch.from_numpy(batch.inputs).to(device)
            targets = torch.from_numpy(batch.targets).to(device)
            state = carry_state(state, torch.from_numpy(batch.reset).to(device))
            with autocast(device):
                logits, state = model(inputs, state)                      # (B, T, V)
            logits = logits.float()
            mask = targets != PAD
            nll = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="none")
            total_nll += float(nll.sum())                                 # nll: (B, T)
            if kinds is not None:
                kind = kinds[targets]
                for k in range(len(TOKEN_TYPES)):
                    hit = kind == k
                    type_nll[k] += float(nll[hit].sum())
                    type_count[k] += int(hit.sum())
            correct += int(((logits.argmax(-1) == targets) & mask).sum())
            tokens += int(mask.sum())
    finally:
        model.train(was_training)
    out = [total_nll, float(correct), float(tokens)]
    for k in range(len(TOKEN_TYPES)):
        out += [float(type_nll[k]), float(type_count[k])]
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train evaluate",
                                description="Score a checkpoint on music it never saw.")
    p.add_argument("checkpoint", help="a .pt file written by `python -m train`")
    p.add_argument("paths", nargs="+", help="MIDI files or folders to score")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--no-cache", action="store_true", help="read the MIDI files afresh")
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice)")
    p.add_argument("--as-heard", action="store_true",
                   help="map each velocity to the nearest bin the model was trained on, as perform "
                        "feeds a player's notes")
    return p


def as_heard(ids: np.ndarray, vocab: Vocab, trained_bins: Sequence[int]) -> np.ndarray:
    """`ids` with each VEL token moved to the nearest trained bin (ties: the softer), as
    perform.generator feeds a player's velocities; unchanged when `trained_bins` is empty."""
    if not trained_bins:
        return ids
    bins = np.asarray(sorted(trained_bins))
    out = ids.copy()
    vel = (out >= vocab.vel_base) & (out < vocab.size)
    wanted = out[vel] - vocab.vel_base
    out[vel] = vocab.vel_base + bins[np.abs(wanted[:, None] - bins[None, :]).argmin(axis=1)]
    return out


def evaluate(checkpoint: str | Path, paths: Sequence[str | Path], *, device: str = "auto",
             use_cache: bool = True, heard: bool = False) -> dict:
    """Score `checkpoint` on the songs under `paths` (`heard`: velocities as perform feeds them).
    Raises CheckpointError / CorpusError."""
    from .corpus import load_corpus
    data = load_checkpoint(checkpoint)
    model, vocab = model_from_checkpoint(data)
    for p in paths:
        if not str(p).startswith("music21:") and not Path(p).exists():
            raise CorpusError(f"{p} does not exist; pass MIDI files or folders that hold some")
    cache_dir = (data.get("config") or {}).get("paths", {}).get("cache_dir")
    from .shards import is_shard_dir, open_shards
    if len(paths) == 1 and is_shard_dir(paths[0]):
        corpus = open_shards(paths[0], vocab)
    else:
        corpus = load_corpus([str(p) for p in paths], vocab, cache_dir=cache_dir, use_cache=use_cache)
    songs = [s.ids for s in corpus.songs if len(s.ids) >= 2]
    if not songs:
        raise CorpusError(f"no notes found in {list(map(str, paths))}; nothing to score")
    bins = (data.get("corpus") or {}).get("velocity_bins") or []
    if heard:
        songs = [as_heard(ids, vocab, bins) for ids in songs]
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    seq_len = int((data.get("config") or {}).get("train", {}).get("seq_len", 256))
    result = score_songs(model.to(dev), songs, seq_len=seq_len, device=dev, vocab=vocab)
    result.update({"songs": len(songs), "skipped": [list(s) for s in corpus.skipped],
                   "as_heard": heard, "velocity_bins": bins,
                   "checkpoint": str(checkpoint), "train_metrics": data.get("metrics", {})})
    return result


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        result = evaluate(args.checkpoint, args.paths, device=args.device, use_cache=not args.no_cache,
                          heard=args.as_heard)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    m = result["train_metrics"]
    print(f"{result['tokens']} tokens in {result['songs']} songs: nll {result['nll']:.4f} nats/token, "
          f"perplexity {result['perplexity']:.3f}, accuracy {result['accuracy']:.3f}")
    print("per token type: " + ", ".join(f"{name.upper()} {result['nll_' + name]:.4f}"
                                          for name in TOKEN_TYPES))
    if "val_nll" in m:
        print(f"(its own validation: nll {m['val_nll']:.4f}; n-gram {m.get('ngram_val_nll', math.nan):.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
