"""`python -m train evaluate`: scores music the model never saw, with clear errors."""

import json
import math

import mido
import pytest

from perform.tokens import Vocab
from train.corpus import load_corpus
from train.evaluate import main as evaluate_main
from train.fit import main as fit_main

TINY = ["--set", "train.embed_dim=16", "--set", "train.hidden_size=32", "--set", "train.num_layers=1",
        "--set", "train.seq_len=32", "--set", "train.batch_size=4", "--set", "train.lr=0.01",
        "--quiet", "--threads", "1"]


def write_scale(path, tonic, steps, beats=24, velocity=80):
    """One note per beat walking a scale pattern (`steps` = semitone offsets), chords every 4."""
    mid = mido.MidiFile(ticks_per_beat=96)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    for beat in range(beats):
        chord = [tonic + steps[beat % len(steps)]] + ([tonic - 12, tonic - 5] if beat % 4 == 0 else [])
        for i, pitch in enumerate(chord):
            track.append(mido.Message("note_on", note=pitch, velocity=velocity, time=0))
        for i, pitch in enumerate(chord):
            track.append(mido.Message("note_off", note=pitch, time=96 if i == 0 else 0))
    mid.save(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    seen, unseen = root / "seen", root / "unseen"
    seen.mkdir(), unseen.mkdir()
    for i, tonic in enumerate([60, 62, 64, 65, 67, 69, 71, 59]):
        write_scale(seen / f"s{i}.mid", tonic, [0, 2, 4, 5, 7, 9, 11, 12])
    for i, tonic in enumerate([61, 66]):                  # keys and a pattern it never saw
        write_scale(unseen / f"u{i}.mid", tonic, [12, 11, 9, 7, 5, 4, 2, 0], beats=40)
    out = root / "run"
    cache = f"paths.cache_dir='{root / 'cache'}'"
    assert fit_main([str(seen), "--out", str(out), "--epochs", "3", "--set", cache, *TINY]) == 0
    return out / "best.pt", unseen, root


def test_scores_unseen_files_as_json(trained, capsys):
    checkpoint, unseen, _ = trained
    assert evaluate_main([str(checkpoint), str(unseen), "--json", "--no-cache"]) == 0
    result = json.loads(capsys.readouterr().out)
    songs = load_corpus([unseen], Vocab(), use_cache=False).songs
    assert result["tokens"] == sum(len(s.ids) - 1 for s in songs)      # every position, no more
    assert result["perplexity"] == pytest.approx(math.exp(result["nll"]))
    assert 0.0 <= result["accuracy"] <= 1.0 and result["nll"] > 0
    assert result["train_metrics"]["val_nll"] > 0 and "ngram_val_nll" in result["train_metrics"]


def test_text_output_names_the_figures(trained, capsys):
    checkpoint, unseen, _ = trained
    assert evaluate_main([str(checkpoint), str(unseen), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "nll" in out and "perplexity" in out and "accuracy" in out


def test_missing_torn_checkpoint_and_bad_paths_exit_2(trained, capsys):
    checkpoint, unseen, root = trained
    assert evaluate_main([str(root / "nope.pt"), str(unseen)]) == 2
    assert "not found" in capsys.readouterr().err
    torn = root / "torn.pt"
    torn.write_bytes(checkpoint.read_bytes()[:1000])
    assert evaluate_main([str(torn), str(unseen)]) == 2
    assert "torn" in capsys.readouterr().err
    assert evaluate_main([str(checkpoint), str(root / "no-such-folder")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-folder" in err


def test_as_heard_scores_a_players_dynamics_as_perform_feeds_them(trained, capsys):
    checkpoint, unseen, root = trained
    loud = root / "loud"
    loud.mkdir(exist_ok=True)
    for i, tonic in enumerate([61, 66]):                  # the unseen music, played at 120 and 30
        write_scale(loud / f"l{i}.mid", tonic, [12, 11, 9, 7, 5, 4, 2, 0], beats=40,
                    velocity=(120, 30)[i])
    scores = {}
    for name, folder, extra in [("plain", unseen, []), ("raw", loud, []), ("heard", loud, ["--as-heard"])]:
        assert evaluate_main([str(checkpoint), str(folder), "--json", "--no-cache", *extra]) == 0
        scores[name] = json.loads(capsys.readouterr().out)
    assert scores["heard"]["velocity_bins"] == [4]                   # the training songs' one bin
    assert scores["raw"]["nll_vel"] > 5 * scores["plain"]["nll_vel"] + 1    # tokens it never saw
    assert scores["heard"]["nll"] == pytest.approx(scores["plain"]["nll"], rel=1e-6)
