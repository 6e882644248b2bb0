"""bench/music.py end to end on a tiny scale: the shipped model, two hand-written MIDI files."""

import importlib.util
import json
import math
import shutil
import sys
from pathlib import Path

import mido
import pytest

from perform.tokens import Note

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "default.onnx"


def load_bench():
    spec = importlib.util.spec_from_file_location("bench_music", REPO / "bench" / "music.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_music"] = module            # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def write_piece(path, pitches, velocity=80):
    """Quarter notes at 120 bpm, four to a bar."""
    track = mido.MidiTrack()
    for p in pitches:
        track.append(mido.Message("note_on", note=p, velocity=velocity, time=0))
        track.append(mido.Message("note_off", note=p, velocity=0, time=480))
    mid = mido.MidiFile(ticks_per_beat=480)
    mid.tracks.append(track)
    mid.save(str(path))


@pytest.fixture
def primes(tmp_path):
    folder = tmp_path / "primes"
    folder.mkdir()
    c_major = [60, 64, 67, 72, 62, 65, 69, 71, 60, 64, 67, 72, 67, 64, 62, 60]      # 4 bars
    write_piece(folder / "c.mid", c_major)
    write_piece(folder / "e.mid", [p + 4 for p in c_major])
    return folder


def run_bench(bench, tmp_path, primes, capsys, *extra):
    model = tmp_path / "model.onnx"                 # no .pt beside it: the NLL section is skipped
    shutil.copy(MODEL, model)
    argv = ["--model", str(model), "--primes", str(primes), "--corpus", str(primes), "--n", "2",
            "--bars", "2", "--prime-bars", "2", "--continue-bars", "1", "--json", *extra]
    assert bench.main(argv) == 0
    return json.loads(capsys.readouterr().out)


def numbers(tree):
    if isinstance(tree, dict):
        for value in tree.values():
            yield from numbers(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from numbers(value)
    elif isinstance(tree, (int, float)) and not isinstance(tree, bool):
        yield tree


@pytest.mark.skipif(not MODEL.is_file(), reason="models/default.onnx is not there")
def test_bench_reports_every_section_with_finite_figures_and_repeats_itself(tmp_path, primes,
                                                                            capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)                     # the corpus cache goes here, not into the repo
    bench = load_bench()
    result = run_bench(bench, tmp_path, primes, capsys)
    assert set(result) == {"model", "unprimed", "primed", "nll", "corpus", "goals", "seconds"}
    assert "skipped" in result["nll"] and result["goals"]["note_nll>=15%_below_ngram"] is None
    assert result["unprimed"]["pieces"] == 2 and result["primed"]["phrases"] == 2
    assert all(math.isfinite(x) for x in numbers(result))
    # The human continuation of an arpeggiated C major is C major (and E major of E major).
    human = result["primed"]["human"]
    assert human["pc_correlation"]["median"] > 0.5 and human["key_agreement"] == 1.0
    assert result["corpus"]["scale_consistency"]["median"] == 1.0
    again = run_bench(bench, tmp_path, primes, capsys)
    assert {k: v for k, v in again.items() if k != "seconds"} == \
        {k: v for k, v in result.items() if k != "seconds"}


def test_bench_names_a_missing_primes_folder(tmp_path, capsys):
    bench = load_bench()
    assert bench.main(["--primes", str(tmp_path / "nowhere"), "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --primes") and "Traceback" not in err


@pytest.mark.skipif(not MODEL.is_file(), reason="models/default.onnx is not there")
def test_bench_steers_both_sections_and_reports_the_prime_s_key(tmp_path, primes, capsys):
    bench = load_bench()
    free = run_bench(bench, tmp_path, primes, capsys, "--sections", "unprimed", "primed")
    assert set(free) == {"model", "unprimed", "primed", "goals", "seconds"}
    assert free["goals"]["note_nll>=15%_below_ngram"] is None
    keyed = run_bench(bench, tmp_path, primes, capsys, "--sections", "unprimed", "primed",
                      "--key-strength", "1", "--key", "F# major")
    assert keyed["model"]["steering"]["key"] == "F# major"
    assert keyed["unprimed"]["scale_consistency"]["median"] == 1.0      # the fixed key, unprimed too
    heard = run_bench(bench, tmp_path, primes, capsys, "--sections", "primed", "--key-strength", "1")
    p = heard["primed"]                       # C major and E major primes: answered in their keys
    assert p["scale_consistency_vs_prime_key"]["median"] == 1.0
    assert p["scale_consistency_vs_steered_key"]["median"] == 1.0
    busy = run_bench(bench, tmp_path, primes, capsys, "--sections", "unprimed", "--density", "1")
    sparse = run_bench(bench, tmp_path, primes, capsys, "--sections", "unprimed", "--density", "-1")
    assert sparse["unprimed"]["notes_per_beat"]["median"] < busy["unprimed"]["notes_per_beat"]["median"]


def test_bench_rejects_a_bad_steering_setting(capsys):
    bench = load_bench()
    assert bench.main(["--key", "H major", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: steer.key = 'H major' is not a key") and "Traceback" not in err


def test_velocity_correlation_is_1_for_answers_that_follow_0_for_constant_ones():
    bench = load_bench()
    primes = [[Note(0, 60, 4, v), Note(4, 62, 4, v + 10)] for v in (30, 60, 90, 110)]
    following = [[Note(0, 60, 4, v + 5)] for v in (30, 60, 90, 110)]
    assert bench.velocity_correlation(primes, following) == pytest.approx(1.0)
    assert bench.velocity_correlation(primes, [[Note(0, 60, 4, 72)]] * 4) == 0.0     # today's answers
    assert bench.velocity_correlation([primes[0]] * 4, following) is None             # nothing to follow
    assert bench.velocity_correlation(primes[:2], following[:2]) is None              # too few pairs


@pytest.mark.skipif(not MODEL.is_file(), reason="models/default.onnx is not there")
def test_bench_answers_at_the_primes_dynamics_with_the_velocity_policy(tmp_path, capsys):
    bench = load_bench()
    folder = tmp_path / "dyn"
    folder.mkdir()
    for i, velocity in enumerate((30, 60, 90, 120)):
        write_piece(folder / f"p{i}.mid", [60, 64, 67, 72, 62, 65, 69, 71] * 2, velocity)
    argv = ["--sections", "primed", "--n", "4", "--prime-bars", "2", "--continue-bars", "1"]
    heard = run_bench(bench, tmp_path, folder, capsys, *argv)
    assert heard["model"]["velocity_policy"] == "player"          # the chorale model: one bin
    assert heard["primed"]["model"]["velocity_correlation"] > 0.95
    own = run_bench(bench, tmp_path, folder, capsys, *argv, "--velocity", "model")
    assert own["primed"]["model"]["velocity_correlation"] == 0.0
