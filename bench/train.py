"""Training figures, in one run: supervised tokens per second against the tutorials' method, and
validation NLL against the n-gram baselines on ff-piano and on the Bach chorales.

    python bench/train.py --json                          # about 2 x --minutes + a minute
    python bench/train.py --json --minutes 5 --set train.hidden_size=256 --set train.embed_dim=128
    python bench/train.py --json --skip-training          # throughput only

Figures:
- throughput (ff-piano, same model, same batch size, same device): `tbptt_tokens_per_s` is this
  training (songs streamed in seq_len chunks, every position a target, state carried);
  `last_position_tokens_per_s` is the tutorials' (a 100-token window, loss at its last position
  only: one supervised token per window) with this project's model; `tutorial_arch_tokens_per_s`
  is the same method with the tutorials' own network (one-hot window -> LSTM 512 -> LSTM 256 ->
  dense). Each is timed over --steps optimizer steps after one warm-up step, at the same batch
  size. `speedup` and `speedup_vs_tutorial_arch` are this training's rate over each (goal >= 50).
- per corpus (a `python -m train` run of --minutes): the model's best validation NLL per token
  (nats), the unigram's and the 5-gram's on the same split, how much the model beats the 5-gram
  by, epochs run and `wall_s_to_best` (training + validation time until the best epoch).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from perform.config import load_config, parse_set_option  # noqa: E402
from perform.tokens import PAD, Vocab  # noqa: E402
from train.corpus import load_corpus  # noqa: E402
from train.data import stream_batches  # noqa: E402
from train.evaluate import carry_state  # noqa: E402
from train.fit import main as fit_main  # noqa: E402
from train.model import JamLSTM  # noqa: E402

FF_PIANO = ROOT.parent / "shared" / "corpus" / "ff-piano"
WINDOW = 100


def _model(cfg, vocab: Vocab) -> tuple[JamLSTM, torch.optim.Optimizer]:
    t = cfg.train
    torch.manual_seed(0)
    model = JamLSTM(vocab.size, t.embed_dim, t.hidden_size, t.num_layers, t.dropout)
    return model, torch.optim.Adam(model.parameters(), lr=t.lr)


def _step(model, opt, loss) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def tbptt_rate(songs, cfg, vocab, steps: int) -> float:
    """Supervised tokens per second of this training (first batch is a warm-up)."""
    model, opt = _model(cfg, vocab)
    batches = stream_batches(songs, batch_size=cfg.train.batch_size, seq_len=cfg.train.seq_len,
                             rng=np.random.default_rng(0), vocab=vocab, max_shift=6)
    state, tokens, started = None, 0, 0.0
    for i, batch in enumerate(batches):
        if i == 1:
            tokens, started = 0, time.perf_counter()
        if i == steps + 1:
            break
        inputs, targets = torch.from_numpy(batch.inputs), torch.from_numpy(batch.targets)
        state = carry_state(state, torch.from_numpy(batch.reset))
        logits, state = model(inputs, state)                                   # (B, T, V)
        loss = F.cross_entropy(logits.transpose(1, 2), targets, ignore_index=PAD, reduction="sum")
        _step(model, opt, loss / batch.tokens)
        tokens += batch.tokens
    return tokens / (time.perf_counter() - started)


def last_position_rate(songs, cfg, vocab, steps: int) -> float:
    """The tutorials' way: random 100-token windows, loss at the last position only."""
    model, opt = _model(cfg, vocab)
    return _window_rate(songs, cfg, steps, lambda ids: model(ids)[0][:, -1], model, opt)


class TutorialLSTM(torch.nn.Module):
    """The tutorials' own network: a one-hot window -> LSTM 512 -> LSTM 256 -> dense, read at the
    window's last position (their Keras model, in torch)."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.lstm1 = torch.nn.LSTM(vocab_size, 512, batch_first=True)
        self.lstm2 = torch.nn.LSTM(512, 256, batch_first=True)
        self.drop = torch.nn.Dropout(0.3)
        self.dense = torch.nn.Linear(256, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = F.one_hot(ids, self.vocab_size).float()           # (B, 100, V)
        y, _ = self.lstm1(x)                                  # (B, 100, 512)
        y, _ = self.lstm2(self.drop(y))                       # (B, 100, 256)
        return self.dense(self.drop(y[:, -1]))                # (B, V)


def tutorial_arch_rate(songs, cfg, vocab, steps: int) -> float:
    """The tutorials' architecture and method: 100-token one-hot windows, the last position only."""
    torch.manual_seed(0)
    model = TutorialLSTM(vocab.size)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    return _window_rate(songs, cfg, steps, model, model, opt)


def _window_rate(songs, cfg, steps: int, last_logits, model, opt) -> float:
    """Supervised tokens per second of training on random windows, one target each (the last)."""
    rng = np.random.default_rng(0)
    stream = np.concatenate(songs)
    batch = cfg.train.batch_size
    started = 0.0
    for i in range(steps + 1):
        if i == 1:
            started = time.perf_counter()
        at = rng.integers(0, len(stream) - WINDOW - 1, batch)
        windows = torch.from_numpy(np.stack([stream[a:a + WINDOW + 1] for a in at]))
        _step(model, opt, F.cross_entropy(last_logits(windows[:, :WINDOW]), windows[:, WINDOW]))
    return steps * batch / (time.perf_counter() - started)


def throughput(cfg, vocab, steps: int, cache_dir: str) -> dict:
    songs = [s.ids for s in load_corpus([FF_PIANO], vocab, cache_dir=cache_dir).songs]
    ours = tbptt_rate(songs, cfg, vocab, steps)
    theirs = last_position_rate(songs, cfg, vocab, steps)
    tutorial = tutorial_arch_rate(songs, cfg, vocab, steps)
    return {"corpus": "ff-piano", "steps": steps, "batch_size": cfg.train.batch_size,
            "seq_len": cfg.train.seq_len, "window": WINDOW, "threads": torch.get_num_threads(),
            "tbptt_tokens_per_s": round(ours, 1), "last_position_tokens_per_s": round(theirs, 2),
            "speedup": round(ours / theirs, 1),
            "tutorial_arch_tokens_per_s": round(tutorial, 2),
            "speedup_vs_tutorial_arch": round(ours / tutorial, 1)}


def training(paths: list[str], minutes: float, sets: list[str], out: Path) -> dict:
    """A `python -m train` run under a time budget; its best validation NLL beside the baselines."""
    flags = [f for s in sets for f in ("--set", s)] + ["--threads", str(torch.get_num_threads())]
    with contextlib.redirect_stdout(sys.stderr):          # epoch lines to stderr; stdout is the JSON
        code = fit_main([*paths, "--out", str(out), "--max-minutes", str(minutes), "--quiet", *flags])
    if code != 0:
        raise SystemExit(f"training on {paths or 'the Bach chorales'} failed with status {code}")
    log = json.loads((out / "metrics.json").read_text())
    m = log["metrics"]
    keys = ("val_nll", "val_perplexity", "val_accuracy", "ngram_val_nll", "unigram_val_nll",
            "beats_ngram_by", "best_epoch", "epochs", "wall_s_to_best", "tokens_per_s", "parameters")
    return {"minutes": minutes, "train_tokens": log["corpus"]["train_tokens"],
            "val_tokens": log["corpus"]["val_tokens"], **{k: m[k] for k in keys}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget per corpus")
    p.add_argument("--steps", type=int, default=5, help="timed optimizer steps per method")
    p.add_argument("--set", action="append", default=[], metavar="TABLE.KEY=VALUE",
                   help="model and training settings, e.g. --set train.hidden_size=256")
    p.add_argument("--skip-training", action="store_true", help="throughput only")
    p.add_argument("--threads", type=int, help="torch CPU threads (on a crowded CPU, 1 is fastest)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides: dict = {}
    for text in args.set:
        table, key, value = parse_set_option(text)
        overrides.setdefault(table, {})[key] = value
    cfg = load_config(None, overrides)
    vocab = Vocab.from_grid(cfg.grid)
    t = cfg.train
    result = {"model": {"embed_dim": t.embed_dim, "hidden_size": t.hidden_size, "num_layers": t.num_layers},
              "throughput": throughput(cfg, vocab, args.steps, cfg.paths.cache_dir)}
    if not args.skip_training:
        with tempfile.TemporaryDirectory() as tmp:
            result["ff_piano"] = training([str(FF_PIANO)], args.minutes, args.set, Path(tmp) / "ff")
            result["bach_chorales"] = training([], args.minutes, args.set, Path(tmp) / "bach")
    print(json.dumps(result, indent=2) if args.json else result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
