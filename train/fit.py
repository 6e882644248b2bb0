"""Train the LSTM on every token (truncated BPTT), against n-gram baselines on the same split.

    python -m train [PATH ...] --out DIR [--config FILE] [--resume] [--max-minutes M] [--epochs N]
                    [--max-steps N] [--set table.key=value ...] [--device auto|cpu|cuda]
                    [--threads N] [--quiet]
    torchrun --nproc-per-node N -m train [PATH ...] --out DIR ...      (train.distributed)

No PATH: music21's bundled Bach chorales. A PATH that is a shard folder (`python -m train prepare
... --out-shards DIR`) is read through memory maps. DIR gets best.pt (best validation NLL), last.pt (with a
`resume` dict, rewritten every epoch), metrics.json and loss.png. `--resume` continues the run in
DIR after a kill, losing at most the unfinished epoch. Each epoch's shuffle, transpositions and
dropout come from (seed, epoch) alone, so a resumed run repeats an uninterrupted one exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from perform.config import Config, load_config, merge_overrides, parse_set_option
from perform.errors import JamError
from perform.tokens import PAD, Vocab

from .checkpoint import load_checkpoint, save_checkpoint
from . import distributed
from .data import count_batches, song_lengths, split_by_song, stream_batches
from .distributed import Dist
from .errors import CheckpointError, CorpusError, TrainError
from .evaluate import TOKEN_TYPES, autocast, carry_state, score_songs, scores_from_sums, sum_scores, \
    token_types
from .model import JamLSTM
from .ngram import KneserNey, unigram_nll

NGRAM_ORDER = 5
GRAD_CLIP = 1.0
RELEASE_TOKENS = 1 << 22   # a scan of memory-mapped songs drops their pages this often
LR_DECAY = 0.5          # the learning rate is halved after an epoch that does not improve


@dataclass
class Progress:
    """What --resume restores besides the weights and the optimizer."""

    epoch: int = 0
    history: list[dict] = field(default_factory=list)
    best_val_nll: float = math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    elapsed_s: float = 0.0
    wall_s_to_best: float = 0.0
    step: int = 0                     # optimizer steps taken (drives the cosine schedule)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m train", description=__doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="*", help="MIDI files or folders (none: music21's Bach chorales)")
    p.add_argument("--out", help="run directory (default: paths.out_dir)")
    p.add_argument("--config", help="a config.toml (default: ./config.toml when present)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    p.add_argument("--max-minutes", type=float, help="stop after this much training (train.max_minutes)")
    p.add_argument("--epochs", type=int, help="total epochs (train.max_epochs)")
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps in all "
                   "(train.max_steps; 0: no limit)")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="override a setting, e.g. --set train.hidden_size=256")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; on a "
                   "CPU shared with other work 1 can be several times faster)")
    p.add_argument("--no-cache", action="store_true", help="read the MIDI files afresh")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        fit(args)
    except JamError as err:
        if distributed.from_env().main:       # under torchrun every rank meets the same mistake
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with the same command and --resume", file=sys.stderr)
        return 130
    return 0


def fit(args: argparse.Namespace) -> dict:
    """Run a training as the command line asks; return the final metrics."""
    return fit_model(args)[0]


def fit_model(args: argparse.Namespace) -> tuple[dict, JamLSTM]:
    """Run a training as the command line asks; return the final metrics and the trained model
    (this process's copy: under torchrun every rank holds the same weights)."""
    dist = distributed.from_env()
    args.quiet = args.quiet or not dist.main
    cfg0 = load_config(args.config)
    out = Path(args.out or cfg0.paths.out_dir)
    resume = _load_resume(out) if args.resume else None
    cfg = _config(args, resume)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = _device(args.device, dist)
    distributed.start(dist, device)
    try:
        return _fit(args, cfg, out, resume, dist, device)
    finally:
        distributed.stop(dist)


def _fit(args, cfg: Config, out: Path, resume: dict | None, dist: Dist,
         device: torch.device) -> tuple[dict, JamLSTM]:
    vocab = Vocab.from_grid(cfg.grid)
    paths = args.paths or (resume["corpus"].get("paths") if resume else None) or None
    corpus = _load_corpus_first_on_main(paths, vocab, cfg, args, dist)
    ids = corpus.song_ids()                 # a list, or a SongTable of memory-mapped views
    n_songs = len(ids)
    train_idx, val_idx = split_by_song(range(n_songs), cfg.train.val_fraction, cfg.train.seed)
    train, val = _take(ids, train_idx), _take(ids, val_idx)
    ranges = corpus.song_ranges()
    data = TrainData(train, val, ranges[train_idx] if ranges is not None else None,
                     getattr(corpus, "release", None))
    train_lengths, val_lengths = song_lengths(train), song_lengths(val)
    n_rows = min(cfg.train.batch_size, int((train_lengths >= 2).sum()))
    if dist.world > n_rows:
        raise TrainError(f"{dist.world} processes need at least {dist.world} streams per batch, and "
                         f"this run has {n_rows} (train.batch_size {cfg.train.batch_size}, "
                         f"{len(train)} training songs); use fewer processes or a larger batch")
    info = {"name": "music21:bach (Bach chorales)" if not paths else ", ".join(map(str, paths)),
            "paths": [str(p) for p in paths] if paths else None, "files": corpus.files_ok,
            "songs": n_songs, "train_songs": len(train), "val_songs": len(val),
            "train_tokens": int((train_lengths - 1).sum()),
            "val_tokens": int((val_lengths - 1).sum()), "skipped": len(corpus.skipped),
            "velocity_bins": velocity_bins(train, vocab, data.release)}
    base = distributed.from_main(dist, baselines(train, val, vocab, cfg.train.baseline_max_tokens,
                                                 data.release) if dist.main else None)
    _say(args, f"{info['songs']} songs ({info['train_tokens']} training tokens, {info['val_tokens']} "
               f"validation); baselines: unigram {base['unigram_val_nll']:.4f}, "
               f"{NGRAM_ORDER}-gram {base['ngram_val_nll']:.4f} nats/token "
               f"(NOTE {base['ngram_val_nll_note']:.4f})"
               + (f" on the first {base['baseline_tokens']:,} training tokens"
                  if base["baseline_tokens"] < info["train_tokens"] else "")
               + (f"; {dist.world} processes" if dist.on else ""))
    return run(args, cfg, vocab, data, info, base, out, resume, dist, device)


@dataclass
class TrainData:
    train: Sequence[np.ndarray]                     # a list, or a SongTable (shards)
    val: Sequence[np.ndarray]
    ranges: np.ndarray | None = None                # (songs, 2): each training song's transpose_range
    release: object = None                          # drops memory-mapped pages (shards)


def _take(ids: Sequence[np.ndarray], indices: list[int]) -> Sequence[np.ndarray]:
    return ids.take(indices) if hasattr(ids, "take") else [ids[i] for i in indices]


def _first_tokens(songs: list[np.ndarray], max_tokens: int) -> list[np.ndarray]:
    """The first songs, in order, up to `max_tokens` tokens (at least one song)."""
    out, total = [], 0
    for ids in songs:
        if out and total + len(ids) > max_tokens:
            break
        out.append(np.asarray(ids, dtype=np.int64))
        total += len(ids)
    return out


def baselines(train: list[np.ndarray], val: list[np.ndarray], vocab: Vocab,
              max_tokens: int = 0, release=None) -> dict[str, float]:
    """Unigram and Kneser-Ney n-gram validation NLL (nats/token) on this split, and the n-gram's
    NLL per token type (`ngram_val_nll_note`, ...). With `max_tokens` > 0 they are fitted on the
    first training songs up to that many tokens and scored on the first validation songs up to
    a tenth of it (the n-gram's memory grows with its tokens)."""
    if max_tokens > 0:
        train = _first_tokens(train, max_tokens)
        val = _first_tokens(val, max(max_tokens // 10, 1))
    out = _baselines(train, val, vocab)
    out["baseline_tokens"] = int(sum(len(s) - 1 for s in train))
    if release is not None:
        release()
    return out


def _baselines(train: list[np.ndarray], val: list[np.ndarray], vocab: Vocab) -> dict[str, float]:
    lm = KneserNey(NGRAM_ORDER, vocab.size).fit(train)
    nll = -lm.log_probs(val)
    kinds = token_types(vocab)[np.concatenate([s[1:] for s in val if len(s) >= 2])]
    out = {"unigram_val_nll": unigram_nll(train, val, vocab.size), "ngram_val_nll": float(nll.mean()),
           "ngram_order": NGRAM_ORDER}
    for k, name in enumerate(TOKEN_TYPES):
        out[f"ngram_val_nll_{name}"] = float(nll[kinds == k].mean()) if (kinds == k).any() else math.nan
    return out


def velocity_bins(songs: list[np.ndarray], vocab: Vocab, release=None) -> list[int]:
    """The velocity bins that occur in `songs` (perform feeds a player's velocity as the nearest).
    Read song by song; `release()` is called every few million tokens (memory-mapped shards)."""
    seen: set[int] = set()
    read = 0
    for ids in songs:
        ids = np.asarray(ids)
        vel = ids[(ids >= vocab.vel_base) & (ids < vocab.size)]
        seen.update(int(v) - vocab.vel_base for v in np.unique(vel))
        read += len(ids)
        if release is not None and read >= RELEASE_TOKENS:
            release()
            read = 0
    if release is not None:
        release()
    return sorted(seen)


def lr_at(step: int, total_steps: int, t) -> float:
    """The learning rate of optimizer step `step` (from 0) under train.lr_schedule "cosine": a linear
    warmup over warmup_steps (at most a tenth of the run), then a cosine from lr down to
    lr * min_lr_fraction at total_steps."""
    warmup = min(t.warmup_steps, total_steps // 10)
    if step < warmup:
        return t.lr * (step + 1) / warmup
    span = max(total_steps - warmup, 1)
    done = min((step - warmup) / span, 1.0)
    floor = t.lr * t.min_lr_fraction
    return floor + (t.lr - floor) * 0.5 * (1 + math.cos(math.pi * done))


def run(args, cfg: Config, vocab: Vocab, data: TrainData, info: dict, base: dict, out: Path,
        resume: dict | None, dist: Dist = Dist(), device: torch.device | None = None
        ) -> tuple[dict, JamLSTM]:
    device = device or _device(args.device, dist)
    t = cfg.train
    torch.manual_seed(t.seed)
    model_args = (resume["model_args"] if resume else
                  {"vocab_size": vocab.size, "embed_dim": t.embed_dim, "hidden_size": t.hidden_size,
                   "num_layers": t.num_layers, "dropout": t.dropout})
    model = JamLSTM(**model_args).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=t.lr)
    progress = Progress()
    if resume:
        model.load_state_dict(resume["state_dict"])
        try:
            opt.load_state_dict(resume["resume"]["optimizer"])
            progress = Progress(**resume["resume"]["progress"])
        except (KeyError, TypeError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{out / 'last.pt'} has a broken resume state ({type(err).__name__}: "
                                  f"{err}); start a new run without --resume") from err
        _say(args, f"resuming {out} after epoch {progress.epoch}")
    elif (out / "last.pt").exists():
        _say(args, f"note: starting a new run over the one in {out} (use --resume to continue it)")
    net = distributed.wrap(model, dist, device)
    deadline = time.perf_counter() + t.max_minutes * 60 if t.max_minutes > 0 else math.inf
    metrics: dict = {}
    while progress.epoch < t.max_epochs and progress.bad_epochs < t.patience:
        out_of_time = time.perf_counter() >= deadline
        if dist.on:                     # the ranks' clocks differ: they stop together or not at all
            out_of_time = distributed.sum_values(dist, [float(out_of_time)], device)[0] > 0
        if out_of_time or 0 < t.max_steps <= progress.step:
            _say(args, f"time budget of {t.max_minutes} minutes spent" if out_of_time
                 else f"{t.max_steps} optimizer steps taken")
            break
        start = time.perf_counter()
        epoch = progress.epoch + 1
        stats = train_epoch(net, opt, data.train, cfg, vocab, epoch, device, deadline, args.quiet,
                            progress, dist=dist, ranges=data.ranges, release=data.release)
        scores = _validate(model, data, t, device, vocab, dist)
        progress.elapsed_s += time.perf_counter() - start
        metrics = _end_epoch(progress, opt, stats, scores, epoch, t.lr_schedule == "plateau")
        metrics = {**metrics, **base, "beats_ngram_by": base["ngram_val_nll"] - progress.best_val_nll,
                   "parameters": sum(p.numel() for p in model.parameters()),
                   "train_tokens": info["train_tokens"], "val_tokens": info["val_tokens"],
                   "processes": dist.world}
        if dist.main:
            payload = {"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                       "model_args": model_args, "vocab": vocab.to_dict(), "config": cfg.to_dict(),
                       "metrics": metrics, "corpus": info}
            if progress.best_epoch == epoch:
                save_checkpoint(out / "best.pt", payload)
            save_checkpoint(out / "last.pt", {**payload, "resume": {
                "optimizer": opt.state_dict(), "progress": asdict(progress),
                "rng": {"seed": t.seed, "scheme": "numpy default_rng([seed, epoch]); torch seed+epoch"}}})
            _write_logs(out, progress, metrics, info, cfg, base)
        _say(args, _summary(progress.history[-1], base))
    margin = base["ngram_val_nll"] - progress.best_val_nll
    _say(args, f"best validation NLL {progress.best_val_nll:.4f} (epoch {progress.best_epoch}) vs "
               f"{NGRAM_ORDER}-gram {base['ngram_val_nll']:.4f}: {abs(margin):.4f} nats/token "
               f"{'better' if margin > 0 else 'WORSE (train longer or bigger)'}; {out / 'best.pt'}")
    distributed.barrier(dist)          # no rank leaves before rank 0 has written its checkpoint
    return metrics, model


def _validate(model: JamLSTM, data: TrainData, t, device: torch.device, vocab: Vocab,
              dist: Dist) -> dict:
    """Validation scores; under torchrun each rank scores its share of the songs and the sums are
    added up (a song's score does not depend on the songs beside it)."""
    if not dist.on:
        return score_songs(model, data.val, batch_size=t.batch_size, seq_len=t.seq_len,
                           device=device, vocab=vocab, release=data.release)
    share = data.val[dist.rank::dist.world]
    sums = sum_scores(model, share, batch_size=t.batch_size, seq_len=t.seq_len, device=device,
                      vocab=vocab, release=data.release)
    return scores_from_sums(distributed.sum_values(dist, sums, device))


def train_epoch(model: torch.nn.Module, opt: torch.optim.Optimizer, songs, cfg: Config, vocab: Vocab,
                epoch: int, device: torch.device, deadline: float, quiet: bool,
                progress: Progress | None = None, *, dist: Dist = Dist(),
                ranges: np.ndarray | None = None, release=None) -> dict:
    """One pass over every training position; stops early (partial) when the deadline passes or
    train.max_steps is reached.

    Under the cosine schedule each optimizer step sets its own learning rate from `progress.step`
    (counted over train.max_epochs epochs of this corpus). Under torchrun (`dist`) this rank trains
    on its streams of each batch, and the loss is the whole batch's sum over its token count."""
    from tqdm import tqdm

    t = cfg.train
    rng = np.random.default_rng([t.seed, epoch])
    torch.manual_seed(t.seed * 100_003 + epoch + 7919 * dist.rank)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")     # fp16 autocast
    model.train()
    loss_sum, tokens, state, partial = 0.0, 0, None, False
    start = time.perf_counter()
    per_epoch = count_batches(songs, t.batch_size, t.seq_len)
    n_rows = min(t.batch_size, int((song_lengths(songs) >= 2).sum()))
    batches = stream_batches(songs, batch_size=t.batch_size, seq_len=t.seq_len, rng=rng, vocab=vocab,
                             max_shift=t.transpose_semitones if t.augment else 0, ranges=ranges,
                             rows=dist.rows(n_rows), release=release)
    cosine = t.lr_schedule == "cosine" and progress is not None
    bar = tqdm(batches, total=per_epoch, desc=f"epoch {epoch}",
               unit="batch", disable=quiet, file=sys.stderr, leave=False)
    for batch in bar:
        n = batch.tokens
        if dist.on:                     # the whole batch's tokens; every rank stops together
            n, stop = distributed.sum_values(dist, [n, float(time.perf_counter() >= deadline)], device)
            if stop:
                partial = True
                break
        if cosine:
            for group in opt.param_groups:
                group["lr"] = lr_at(progress.step, per_epoch * t.max_epochs, t)
        if progress is not None:
            progress.step += 1
        inputs = torch.from_numpy(batch.inputs).to(device)
        targets = torch.from_numpy(batch.targets).to(device)
        state = carry_state(state, torch.from_numpy(batch.reset).to(device))
        with autocast(device):
            logits, state = model(inputs, state)                              # (B, T, V)
        loss = F.cross_entropy(logits.float().transpose(1, 2), targets, ignore_index=PAD,
                               reduction="sum") / max(n, 1)
        if dist.on:
            loss = loss * dist.world    # DDP averages the ranks' gradients: this makes it a sum
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        scaler.step(opt)
        scaler.update()
        loss_sum += float(loss.detach()) * n / dist.world
        tokens += int(n)
        rate = tokens / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix(loss=f"{loss_sum / max(tokens, 1):.3f}", tok_s=f"{rate:,.0f}")
        if not dist.on and time.perf_counter() >= deadline:
            partial = True
            break
        if progress is not None and 0 < t.max_steps <= progress.step:
            partial = True
            break
    bar.close()
    if dist.on:
        loss_sum = distributed.sum_values(dist, [loss_sum], device)[0]
    seconds = time.perf_counter() - start
    return {"train_loss": loss_sum / max(tokens, 1), "train_tokens": tokens, "train_s": seconds,
            "tokens_per_s": tokens / max(seconds, 1e-9), "partial": partial}


def _end_epoch(progress: Progress, opt, stats: dict, scores: dict, epoch: int,
               plateau_decay: bool = True) -> dict:
    """Record the epoch, track the best, decay the learning rate on a plateau; return metrics."""
    progress.epoch = epoch
    improved = scores["nll"] < progress.best_val_nll
    if improved:
        progress.best_val_nll, progress.best_epoch, progress.bad_epochs = scores["nll"], epoch, 0
        progress.wall_s_to_best = progress.elapsed_s
    else:
        progress.bad_epochs += 1
        if plateau_decay:
            for group in opt.param_groups:
                group["lr"] *= LR_DECAY
    types = {f"val_nll_{name}": scores[f"nll_{name}"] for name in TOKEN_TYPES if f"nll_{name}" in scores}
    progress.history.append({"epoch": epoch, **stats, "val_nll": scores["nll"], **types,
                             "val_perplexity": scores["perplexity"], "val_accuracy": scores["accuracy"],
                             "lr": opt.param_groups[0]["lr"], "elapsed_s": progress.elapsed_s})
    best = progress.history[progress.best_epoch - 1]
    return {"val_nll": best["val_nll"], "val_perplexity": best["val_perplexity"],
            **{key: best[key] for key in types},
            "steps": progress.step,
            "val_accuracy": best["val_accuracy"], "best_epoch": progress.best_epoch,
            "epochs": epoch, "wall_s_to_best": progress.wall_s_to_best,
            "tokens_per_s": stats["tokens_per_s"]}


def _write_logs(out: Path, progress: Progress, metrics: dict, info: dict, cfg: Config, base: dict) -> None:
    from .plot import plot_losses
    log = {"metrics": metrics, "history": progress.history, "corpus": info, "config": cfg.to_dict()}
    tmp = out / ".metrics.json.tmp"
    tmp.write_text(json.dumps(log, indent=2))
    os.replace(tmp, out / "metrics.json")
    plot_losses(progress.history, out / "loss.png", ngram_nll=base["ngram_val_nll"],
                unigram_nll=base["unigram_val_nll"])


def _summary(h: dict, base: dict) -> str:
    note = f", NOTE {h['val_nll_note']:.4f} vs {base['ngram_val_nll_note']:.4f}" if "val_nll_note" in h else ""
    return (f"epoch {h['epoch']}: train {h['train_loss']:.4f}, validation NLL {h['val_nll']:.4f}{note} "
            f"(ppl {h['val_perplexity']:.2f}, acc {h['val_accuracy']:.3f}; n-gram {base['ngram_val_nll']:.4f}), "
            f"{h['tokens_per_s']:,.0f} tok/s{' (partial epoch)' if h['partial'] else ''}")


def _load_resume(out: Path) -> dict:
    if not (out / "last.pt").is_file():
        raise CheckpointError(f"nothing to resume: {out / 'last.pt'} does not exist; "
                              "start a run without --resume, or pass the --out of an earlier run")
    data = load_checkpoint(out / "last.pt")
    for stale in out.glob(".*.pt.*.tmp"):          # a write a kill interrupted (never renamed)
        stale.unlink(missing_ok=True)
    if "resume" not in data:
        raise CheckpointError(f"{out / 'last.pt'} has no resume state; start a new run without --resume")
    return data


def _config(args: argparse.Namespace, resume: dict | None) -> Config:
    cli: dict[str, dict] = {}
    for text in args.set:
        table, key, value = parse_set_option(text)
        cli.setdefault(table, {})[key] = value
    flags = {"train": {"max_epochs": args.epochs, "max_minutes": args.max_minutes,
                       "max_steps": getattr(args, "max_steps", None)}}
    base = resume["config"] if resume else {}
    return load_config(None if resume else args.config, merge_overrides(base, cli, flags))


def _load_corpus_first_on_main(paths, vocab: Vocab, cfg: Config, args, dist: Dist):
    """Rank 0 reads (and caches) the corpus first, then the others; rank 0's mistake stops every
    rank (the others do not wait for a corpus that never comes)."""
    if not dist.on:
        return _load_corpus(paths, vocab, cfg, args)
    corpus, failure = None, None
    if dist.main:
        try:
            corpus = _load_corpus(paths, vocab, cfg, args)
        except JamError as err:
            failure = err
    message = distributed.from_main(dist, str(failure) if failure else None)
    if failure is not None:
        raise failure
    if message is not None:
        raise CorpusError(message)
    return corpus if dist.main else _load_corpus(paths, vocab, cfg, args)


def _load_corpus(paths, vocab: Vocab, cfg: Config, args):
    from .corpus import load_corpus
    from .shards import is_shard_dir, open_shards
    for p in paths or []:
        if not str(p).startswith("music21:") and not Path(p).exists():
            raise CorpusError(f"{p} does not exist; pass MIDI files or folders (or none for the "
                              "Bach chorales)")
    shard_dirs = [p for p in paths or [] if is_shard_dir(p)]
    if shard_dirs:
        if len(paths) > 1:
            raise CorpusError(f"{shard_dirs[0]} is a shard folder: train on it alone, or prepare "
                              "every source into one shard folder (`python -m train prepare A B "
                              "--out-shards DIR`)")
        return open_shards(shard_dirs[0], vocab)
    return load_corpus(paths, vocab, cache_dir=cfg.paths.cache_dir, use_cache=not args.no_cache,
                       progress=not args.quiet)


def _device(name: str, dist: Dist = Dist()) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise JamError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    device = torch.device("cuda" if name == "auto" and torch.cuda.is_available() else
                          ("cpu" if name == "auto" else name))
    if device.type == "cuda" and dist.on:           # one GPU per process, as torchrun numbers them
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    return device


def _say(args, text: str) -> None:
    """A line for the user (epoch summaries); --quiet only hides the progress bars. Under torchrun
    only rank 0 speaks."""
    if distributed.from_env().main:
        print(text, flush=True)
