"""Checkpoints: plain data that loads with weights_only=True, written atomically."""

import os

import pytest
import torch

from perform.tokens import Vocab
from train import checkpoint as ckpt
from train.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from train.errors import CheckpointError
from train.model import JamLSTM


def _payload(model, vocab):
    args = {"vocab_size": vocab.size, "embed_dim": 8, "hidden_size": 16, "num_layers": 2, "dropout": 0.0}
    return {"state_dict": model.state_dict(), "model_args": args, "vocab": vocab.to_dict(),
            "metrics": {"val_nll": 1.5, "ngram_val_nll": 1.7}}


@pytest.fixture
def model_and_vocab():
    torch.manual_seed(0)
    vocab = Vocab()
    return JamLSTM(vocab.size, 8, 16, 2, 0.0).eval(), vocab


def test_round_trip_with_weights_only(tmp_path, model_and_vocab):
    model, vocab = model_and_vocab
    path = tmp_path / "m.pt"
    save_checkpoint(path, _payload(model, vocab))
    raw = torch.load(path, weights_only=True)          # no pickle of arbitrary objects
    assert raw["metrics"]["val_nll"] == 1.5
    again, vocab2 = model_from_checkpoint(load_checkpoint(path))
    ids = torch.tensor([[1, 3, 40, 100, 3]])
    assert vocab2 == vocab
    assert torch.equal(again(ids)[0], model(ids)[0])


def test_a_failed_write_leaves_the_old_file_and_no_debris(tmp_path, model_and_vocab, monkeypatch):
    model, vocab = model_and_vocab
    path = tmp_path / "m.pt"
    save_checkpoint(path, _payload(model, vocab))
    before = path.read_bytes()

    def torn_save(obj, fh):
        fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", torn_save)
    with pytest.raises(OSError):
        save_checkpoint(path, _payload(model, vocab))
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.pt"]


def test_torn_missing_and_foreign_files_are_clear_errors(tmp_path, model_and_vocab):
    model, vocab = model_and_vocab
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    save_checkpoint(good, _payload(model, vocab))
    torn = tmp_path / "torn.pt"
    torn.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="torn"):
        load_checkpoint(torn)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not an lstm-jam checkpoint"):
        load_checkpoint(foreign)
