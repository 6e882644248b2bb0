"""Distributed training under torchrun (gloo on the CPU): the ranks agree, the batch is the
single-process batch, checkpoints come from rank 0, and --resume works across process counts."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from train.fit import main

from test_fit import TINY, midi_dir  # noqa: F401 - midi_dir is a fixture

pytestmark = pytest.mark.slow
WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def torchrun(n: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           str(WORKER), *args]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


def weights(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def history(out: Path) -> list[dict]:
    return json.loads((out / "metrics.json").read_text())["history"]


def args(midi_dir, out, cache, *extra):
    return [str(midi_dir), "--out", str(out), "--set", f"paths.cache_dir='{cache}'", *TINY, *extra]


def test_two_ranks_hold_identical_weights_and_match_one_process(tmp_path, midi_dir):
    cache = tmp_path / "cache"
    two, one = tmp_path / "two", tmp_path / "one"
    done = torchrun(2, *args(midi_dir, two, cache, "--max-steps", "6"))
    w0, w1 = weights(two / "rank0.pt"), weights(two / "rank1.pt")
    assert all(torch.equal(w0[k], w1[k]) for k in w0)            # DDP kept the ranks in step
    assert done.stdout.count("optimizer steps taken") == 1       # rank 0 alone speaks
    assert json.loads((two / "metrics.json").read_text())["metrics"]["processes"] == 2
    assert weights(two / "best.pt")["state_dict"].keys() == w0.keys()
    # The batch is the one-process batch dealt to the ranks, the loss normalised over all of it:
    # with dropout off, one process takes the same steps (up to float summation order).
    assert main(args(midi_dir, one, cache, "--max-steps", "6")) == 0
    solo = weights(one / "last.pt")["state_dict"]
    gap = max(float((solo[k] - w0[k]).abs().max()) for k in w0)
    print(f"largest weight difference, 2 ranks vs 1 process: {gap:.2e}")
    assert gap < 1e-6
    assert history(two)[0]["train_tokens"] == history(one)[0]["train_tokens"]


def test_resume_works_with_another_number_of_processes(tmp_path, midi_dir):
    cache = tmp_path / "cache"
    straight, mixed = tmp_path / "straight", tmp_path / "mixed"
    plateau = ("--set", "train.lr_schedule='plateau'")
    assert main(args(midi_dir, straight, cache, "--epochs", "2", *plateau)) == 0
    torchrun(2, *args(midi_dir, mixed, cache, "--epochs", "1", *plateau))           # "killed"
    assert main(args(midi_dir, mixed, cache, "--epochs", "2", "--resume")) == 0     # one process
    a, b = history(straight), history(mixed)
    assert [e["epoch"] for e in b] == [1, 2]
    assert b[1]["val_nll"] == pytest.approx(a[1]["val_nll"], abs=2e-3)
    assert b[1]["val_nll"] < b[0]["val_nll"]


def run_torchrun_train(n: int, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}",
           "-m", "train", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240)


def test_mistakes_are_one_error_line_from_rank_0(tmp_path, midi_dir):
    done = run_torchrun_train(3, *args(midi_dir, tmp_path / "r", tmp_path / "c", "--set",
                                       "train.batch_size=2", "--max-steps", "2"))
    assert done.returncode != 0
    assert done.stderr.count("error: 3 processes need at least 3 streams per batch") == 1
    assert "fit.py" not in done.stderr              # torchrun reports the exits; no traceback of ours
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no music here")
    started = time.monotonic()
    done = run_torchrun_train(2, *args(tmp_path / "empty", tmp_path / "r", tmp_path / "c"))
    assert done.returncode != 0 and done.stderr.count("error: no music files in") == 1
    assert time.monotonic() - started < 60          # no rank is left waiting for a corpus

