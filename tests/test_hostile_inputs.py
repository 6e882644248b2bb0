"""Every file a user hands us, when hostile or wrong, is a clear error: exit status 2, an `error:` line
naming the file, no traceback. The CLIs run in subprocesses (as a user runs them), in a scratch
folder so no ./config.toml or cache of the checkout is picked up.

Files: corpus MIDI (`python -m train prepare`), a --prime file (`perform --out`), config.toml
(`perform`, `python -m train`, `python -m train prepare`), an ONNX model (`perform --model`), a
checkpoint (`python -m export`, `python -m train evaluate`, `python -m train --resume`). `python -m
export` reads no config.toml (the settings travel in the checkpoint): a checkpoint whose settings
are wrong stands in for it.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import mido
import pytest

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "default.onnx"
PERFORM = [sys.executable, "-m", "perform.cli"]
TRAIN = [sys.executable, "-m", "train"]
EXPORT = [sys.executable, "-m", "export"]


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def assert_clear_error(done: subprocess.CompletedProcess, named: Path | str) -> None:
    shown = f"exit {done.returncode}; stderr:\n{done.stderr}"
    assert done.returncode == 2, shown
    assert "Traceback" not in done.stderr, shown
    lines = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert lines and str(named) in lines[0], shown


def a_midi_file(path: Path) -> Path:
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    for i, pitch in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 4):
        track.append(mido.Message("note_on", note=pitch, velocity=80, time=0 if i == 0 else 0))
        track.append(mido.Message("note_off", note=pitch, time=48))
    mid.tracks.append(track)
    mid.save(path)
    return path


# ---- hostile files of every kind ---------------------------------------------------------------

def _garbage(path: Path) -> Path:
    path.write_bytes(bytes((i * 97 + 13) % 256 for i in range(3000)))
    return path


def _text(path: Path) -> Path:
    path.write_text("these are not the notes you are looking for\n" * 20)
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _truncated_midi(path: Path) -> Path:
    data = a_midi_file(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


MIDI_KINDS = {"garbage": _garbage, "text": _text, "empty": _empty, "truncated": _truncated_midi}


@pytest.mark.parametrize("kind", MIDI_KINDS)
def test_a_hostile_prime_file(kind, tmp_path):
    prime = MIDI_KINDS[kind](tmp_path / f"{kind}.mid")
    done = run(PERFORM + ["--model", str(MODEL), "--out", str(tmp_path / "o.mid"), "--bars", "1",
                          "--prime", str(prime)], tmp_path)
    assert_clear_error(done, prime)
    assert not (tmp_path / "o.mid").exists()


def test_a_corpus_of_only_bad_files_exits_2_and_says_why_each_was_skipped(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    unreadable = ("garbage", "text", "empty")     # a truncated file is read as far as it is valid
    for kind in unreadable:
        MIDI_KINDS[kind](folder / f"{kind}.mid")
    done = run(TRAIN + ["prepare", "--no-cache", str(folder)], tmp_path)
    assert_clear_error(done, folder)
    assert all(f"{kind}.mid" in done.stderr for kind in unreadable), done.stderr


def test_a_corpus_with_some_bad_files_skips_them_with_their_reasons(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    a_midi_file(folder / "good.mid")
    for kind, make in MIDI_KINDS.items():
        make(folder / f"{kind}.mid")
    done = run(TRAIN + ["prepare", "--no-cache", str(folder)], tmp_path)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert all(f"{kind}.mid" in done.stdout + done.stderr for kind in MIDI_KINDS), done.stdout


CONFIGS = {
    "garbage": lambda p: _garbage(p),
    "not_toml": lambda p: p.write_text("[clock\nbpm = = 3\n") and p,
    "wrong_type": lambda p: p.write_text('[clock]\nbpm = "fast"\n') and p,
    "unknown_key": lambda p: p.write_text("[clock]\nbmp = 120\n") and p,
    "unknown_table": lambda p: p.write_text("[clocks]\nbpm = 120\n") and p,
    "out_of_range": lambda p: p.write_text("[ports]\nchannel = 17\n") and p,
}
CONFIG_CLIS = {
    "perform": PERFORM + ["--out", "o.mid", "--config"],
    "train": TRAIN + ["--out", "run", "--epochs", "1", "--config"],
    "prepare": TRAIN + ["prepare", "--no-cache", "--config"],
}


# Every kind for perform; three for the others (the same loader).
CONFIG_CASES = [(cli, kind) for cli in CONFIG_CLIS for kind in CONFIGS
                if cli == "perform" or kind in ("garbage", "wrong_type", "unknown_key")]


@pytest.mark.parametrize("cli, kind", CONFIG_CASES)
def test_a_hostile_config_file(cli, kind, tmp_path):
    config = CONFIGS[kind](tmp_path / "config.toml")
    done = run(CONFIG_CLIS[cli] + [str(config)], tmp_path)
    assert_clear_error(done, config)


def _foreign_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(graph), path)
    return path


def _newer_format_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(MODEL)
    for prop in model.metadata_props:
        if prop.key == "lstm_jam_format":
            prop.value = "999"
    onnx.save(model, path)
    return path


def _newer_ir_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    model = onnx.load(MODEL)
    model.ir_version = 99
    onnx.save(model, path)
    return path


def _truncated_onnx(path: Path) -> Path:
    data = MODEL.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


ONNX_KINDS = {"garbage": _garbage, "empty": _empty, "text": _text, "truncated": _truncated_onnx,
              "foreign": _foreign_onnx, "newer_format": _newer_format_onnx,
              "newer_ir": _newer_ir_onnx}


@pytest.mark.parametrize("kind", ONNX_KINDS)
def test_a_hostile_onnx_model(kind, tmp_path):
    model = ONNX_KINDS[kind](tmp_path / f"{kind}.onnx")
    done = run(PERFORM + ["--model", str(model), "--out", str(tmp_path / "o.mid"), "--bars", "1"],
               tmp_path)
    assert_clear_error(done, model)


def _pickle_ckpt(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"state_dict": {}, "model_args": {}, "vocab": {}}))
    return path


def _foreign_ckpt(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"weights": torch.zeros(3)}, path)
    return path


def _wrong_contents_ckpt(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    torch.save({"format_version": 1, "state_dict": {"w": torch.zeros(2)}, "model_args": {"nope": 1},
                "vocab": {"steps_per_beat": "four"}, "config": {"clock": {"bpm": "fast"}}}, path)
    return path


def _truncated_ckpt(path: Path) -> Path:
    data = (ROOT / "models" / "default.pt").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


CKPT_KINDS = {"garbage": _garbage, "empty": _empty, "truncated": _truncated_ckpt,
              "pickle": _pickle_ckpt, "foreign_torch": _foreign_ckpt,
              "wrong_contents": _wrong_contents_ckpt}


# Every kind for export; three for the others (the same loader).
CKPT_CASES = [(cli, kind) for cli in ("export", "evaluate", "resume") for kind in CKPT_KINDS
              if cli == "export" or kind in ("garbage", "truncated", "pickle")]


@pytest.mark.parametrize("cli, kind", CKPT_CASES)
def test_a_hostile_checkpoint(cli, kind, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    ckpt = CKPT_KINDS[kind](run_dir / "last.pt")
    song = a_midi_file(tmp_path / "song.mid")
    cmd = {"export": EXPORT + [str(ckpt), "-o", str(tmp_path / "x.onnx")],
           "evaluate": TRAIN + ["evaluate", "--no-cache", str(ckpt), str(song)],
           "resume": TRAIN + [str(song), "--out", str(run_dir), "--resume", "--epochs", "1"]}[cli]
    done = run(cmd, tmp_path)
    assert_clear_error(done, ckpt)
    assert not (tmp_path / "x.onnx").exists()
