"""python -m export on a tiny checkpoint: the file, its metadata, its parity with torch, its failures."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import parity
from export.__main__ import main
from perform.config import Config
from perform.engine import CPU, Engine
from perform.tokens import Vocab
from train.checkpoint import save_checkpoint
from train.model import JamLSTM

V = Vocab()
ARGS = dict(vocab_size=V.size, embed_dim=16, hidden_size=32, num_layers=2, dropout=0.2)  # off in eval


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(3)
    model = JamLSTM(**ARGS)
    with torch.no_grad():                 # livelier than the init: logits spread over several units
        for p in model.parameters():
            p.mul_(3.0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_checkpoint(path, {"state_dict": model.state_dict(), "model_args": ARGS, "vocab": V.to_dict(),
                           "config": Config().to_dict(), "metrics": {"val_nll": 3.5},
                           "corpus": {"name": "bach", "files": 7}})
    return path, model.eval()


@pytest.fixture(scope="module")
def fp32(ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "model.onnx"
    assert main([str(ckpt[0]), "-o", str(out)]) == 0
    return out


def test_cli_reports_the_self_check_as_json(ckpt, tmp_path, capsys):
    out = tmp_path / "m.onnx"
    assert main([str(ckpt[0]), "-o", str(out), "--json", "--tokens", "300"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tokens"] == 300 and report["precision"] == "fp32"
    assert 0 <= report["max_abs_logit_diff"] <= 1e-4
    assert report["argmax_agreement"] == 1.0 and report["mean_kl_nats"] < 1e-6
    assert report["bytes"] == out.stat().st_size


def test_metadata_carries_what_perform_needs(fp32):
    props = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    assert props["lstm_jam_format"] == "1"
    assert Vocab.from_json(props["vocab"]) == V
    assert json.loads(props["model_args"]) == ARGS
    assert json.loads(props["grid"]) == Config().to_dict()["grid"]
    assert json.loads(props["corpus"]) == {"name": "bach", "files": 7}
    assert json.loads(props["metrics"]) == {"val_nll": 3.5}
    assert json.loads(props["config"])["train"]["hidden_size"] == Config().train.hidden_size
    assert json.loads(props["parity"])["max_abs_logit_diff"] <= 1e-4


def test_parity_over_batches_and_sequences_independent_of_the_engine(ckpt, fp32):
    """Plain onnxruntime: dynamic batch (3 streams), whole sequences, then state carried on."""
    _, model = ckpt
    session = ort.InferenceSession(str(fp32), providers=[CPU])
    ids = np.random.default_rng(0).integers(0, V.size, (3, 40))
    zeros = np.zeros((2, 3, 32), np.float32)
    logits, h, c = session.run(None, {"ids": ids, "h": zeros, "c": zeros})
    more = np.random.default_rng(1).integers(0, V.size, (3, 1))
    logits2, _, _ = session.run(None, {"ids": more, "h": h, "c": c})
    with torch.no_grad():
        want, state = model(torch.from_numpy(ids))
        want2, _ = model(torch.from_numpy(more), state)
    assert logits.shape == (3, 40, V.size)
    assert np.abs(logits - want.numpy()).max() < 1e-4
    assert np.abs(logits2 - want2.numpy()).max() < 1e-4
    assert np.abs(want2.numpy()).max() > 1.0        # the comparison is not of near-zeros


def test_a_failed_self_check_writes_nothing_and_exits_2(ckpt, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(parity.TOLERANCE, "fp32", -1.0)
    out = tmp_path / "m.onnx"
    assert main([str(ckpt[0]), "-o", str(out), "--tokens", "50"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: self-check failed") and "was not written" in err
    assert list(tmp_path.iterdir()) == []            # no file, no temporary left behind
    out.write_bytes(b"old")
    assert main([str(ckpt[0]), "-o", str(out), "--tokens", "50"]) == 2
    assert out.read_bytes() == b"old"                # an existing file is kept as it was


def test_a_missing_checkpoint_is_a_one_line_error(tmp_path, capsys):
    assert main([str(tmp_path / "none.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint") and "not found" in err and "Traceback" not in err


@pytest.mark.parametrize("flag", ["--int8", "--fp16"])
def test_smaller_variants_play_the_same_music(ckpt, fp32, tmp_path, flag, capsys):
    out = tmp_path / f"m{flag[2:]}.onnx"
    assert main([str(ckpt[0]), "-o", str(out), flag, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == flag[2:]
    assert report["mean_kl_nats"] <= parity.KL_TOLERANCE[flag[2:]] == report["kl_tolerance"]
    assert report["argmax_agreement"] >= parity.MIN_ARGMAX_AGREEMENT
    assert out.stat().st_size < 0.7 * fp32.stat().st_size
    engine = Engine(out, providers=(CPU,))          # fp16 once segfaulted onnxruntime's optimizer
    assert engine.metadata["precision"] == flag[2:]


@pytest.mark.slow
def test_the_dynamo_exporter_gives_the_same_file_contract(ckpt, tmp_path, capsys):
    out = tmp_path / "dynamo.onnx"
    assert main([str(ckpt[0]), "-o", str(out), "--exporter", "dynamo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_logit_diff"] <= 1e-4
    assert Engine(out, providers=(CPU,)).vocab == V


def test_compare_scores_variants_on_music(fp32, ckpt, tmp_path, monkeypatch, capsys):
    import mido

    from export.compare import main as compare_main
    monkeypatch.chdir(tmp_path)                          # the corpus cache goes here
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    for pitch in (60, 62, 64, 65, 67, 69, 71, 72) * 4:
        track += [mido.Message("note_on", note=pitch, velocity=80, time=0),
                  mido.Message("note_off", note=pitch, velocity=0, time=240)]
    song.save(tmp_path / "scale.mid")
    int8 = tmp_path / "m8.onnx"
    assert main([str(ckpt[0]), "-o", str(int8), "--int8", "--tokens", "50"]) == 0
    capsys.readouterr()
    assert compare_main([str(fp32), str(int8), "--corpus", str(tmp_path / "scale.mid"), "--json"]) == 0
    first, second = json.loads(capsys.readouterr().out)
    # BOS, 31 x (NOTE DUR VEL STEP STEP), NOTE DUR VEL STEP, EOS: 161 tokens, 160 predictions
    assert first["tokens"] == second["tokens"] == 160
    assert first["mean_kl_vs_first"] == 0.0 and 0 <= second["mean_kl_vs_first"] < 0.01
    assert abs(first["nll"] - second["nll"]) < 0.05 and second["precision"] == "int8"


def test_lossy_variants_are_judged_on_their_distributions_not_single_logits():
    def report(max_abs, kl, agree):
        return parity.ParityReport(500, max_abs, agree, kl, 0.1, 0.2)
    # a far-off logit of an unlikely token, same distributions: the same music
    assert parity.parity_failure("int8", report(0.9, 4e-4, 0.992)) is None
    assert "mean KL" in parity.parity_failure("int8", report(0.1, 0.02, 0.999))
    assert "most likely token" in parity.parity_failure("int8", report(0.1, 1e-4, 0.95))
    assert "1e-04" in parity.parity_failure("fp32", report(2e-4, 0.0, 1.0)) or \
        "0.0001" in parity.parity_failure("fp32", report(2e-4, 0.0, 1.0))
    assert parity.parity_failure("fp32", report(5e-5, 0.0, 1.0)) is None
