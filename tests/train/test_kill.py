"""kill -9 during training: in the middle of an epoch, in the middle of writing a checkpoint, and at
random moments of a process that writes checkpoints over and over. A checkpoint on disk is never
torn (save_checkpoint writes a temporary file and renames it), and --resume carries on.

The training runs are subprocesses with a hook (patched in by a small `python -c` script) that
SIGKILLs the process at a chosen point, so the kill lands where the test says, every time.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from train.checkpoint import load_checkpoint

from test_fit import TINY, write_song

ROOT = Path(__file__).resolve().parents[2]

# argv: MODE OUT CACHE MIDI_DIR. MODE "epoch": SIGKILL after the 3rd optimizer step of epoch 2;
# MODE "write": SIGKILL half way through writing epoch 2's last.pt (half its bytes on disk).
_KILLER = """
import io, os, signal, sys
import torch
import train.checkpoint as checkpoint
import train.fit as fit

mode, out, cache, midi = sys.argv[1:5]
real_epoch, real_save = fit.train_epoch, torch.save
saves = []

def epoch_then_kill(model, opt, songs, cfg, vocab, epoch, *args, **kwargs):
    if mode == "epoch" and epoch == 2:
        real_step, steps = opt.step, []
        def step(*a, **k):
            steps.append(1)
            if len(steps) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
            return real_step(*a, **k)
        opt.step = step
    return real_epoch(model, opt, songs, cfg, vocab, epoch, *args, **kwargs)

def save_then_kill(obj, fh, *args, **kwargs):
    if mode == "write" and "resume" in obj and obj["resume"]["progress"]["epoch"] == 2:
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        fh.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        fh.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, fh, *args, **kwargs)

fit.train_epoch = epoch_then_kill
checkpoint.torch.save = save_then_kill
raise SystemExit(fit.main([midi, "--out", out, "--set", f"paths.cache_dir='{cache}'", *sys.argv[5:]]))
"""

# argv: PATH. Writes a checkpoint (a tiny model and 4 MB of filler, every value = the count) over
# and over, printing the count after each write.
_WRITER = """
import sys, torch
from perform.config import Config
from perform.tokens import Vocab
from train.checkpoint import save_checkpoint
from train.model import JamLSTM
vocab = Vocab.from_grid(Config().grid)
args = dict(vocab_size=vocab.size, embed_dim=8, hidden_size=8, num_layers=1, dropout=0.0)
model = JamLSTM(**args)
count = 0
while True:
    count += 1
    save_checkpoint(sys.argv[1], {"state_dict": model.state_dict(), "model_args": args,
                                  "vocab": vocab.to_dict(), "metrics": {"count": count},
                                  "filler": torch.full((1 << 20,), float(count))})
    print(count, flush=True)
"""


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    for i, tonic in enumerate([60, 62, 64, 65, 67, 57]):
        write_song(folder / f"song{i}.mid", tonic)
    return folder


def _python(*args: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120,
                          env=env, **kwargs)


@pytest.mark.parametrize("mode", ["epoch", "write"])
def test_kill_9_then_resume_continues_from_the_last_whole_checkpoint(mode, songs, tmp_path):
    out, cache = tmp_path / "run", tmp_path / "cache"
    killed = _python("-c", _KILLER, mode, str(out), str(cache), str(songs), *TINY, "--epochs", "4")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    data = load_checkpoint(out / "last.pt")              # whole: the one epoch 1 wrote
    assert data["resume"]["progress"]["epoch"] == 1
    resumed = _python("-m", "train", str(songs), "--out", str(out), "--set",
                      f"paths.cache_dir='{cache}'", *TINY, "--epochs", "4", "--resume")
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr
    assert list(out.glob(".*.tmp")) == [], "the interrupted write's temporary file is left behind"
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    assert load_checkpoint(out / "last.pt")["resume"]["progress"]["epoch"] == 4
    straight = tmp_path / "straight"                     # the same run, never killed
    done = _python("-m", "train", str(songs), "--out", str(straight), "--set",
                   f"paths.cache_dir='{cache}'", *TINY, "--epochs", "4")
    assert done.returncode == 0, done.stderr
    again = json.loads((straight / "metrics.json").read_text())["history"]
    assert [e["val_nll"] for e in history] == [e["val_nll"] for e in again]     # lr schedule too
    assert [e["lr"] for e in history] == [e["lr"] for e in again]


def test_a_checkpoint_is_never_torn_whenever_its_writer_is_killed(tmp_path):
    path = tmp_path / "ckpt.pt"
    rng = random.Random(11)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    seen = []
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            first = proc.stdout.readline()          # one whole write done: a file exists
            assert first.strip(), proc.stderr.read()
            time.sleep(rng.uniform(0.0, 0.3))        # then anywhere in a later write
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        data = load_checkpoint(path)
        count = data["metrics"]["count"]
        assert bool((data["filler"] == float(count)).all()), f"write {count} is torn"
        seen.append(count)
    assert all(count >= 1 for count in seen)
