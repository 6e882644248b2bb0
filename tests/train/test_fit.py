"""Training: every position supervised in order, loss goes down, resume, determinism, budget, errors."""

import json
from pathlib import Path

import mido
import numpy as np
import pytest
import torch

from perform.tokens import BOS, EOS, PAD, Vocab
from train.data import count_batches, split_by_song, stream_batches
from train.errors import TrainError
from train.fit import main

TINY = ["--set", "train.embed_dim=16", "--set", "train.hidden_size=32", "--set", "train.num_layers=1",
        "--set", "train.seq_len=32", "--set", "train.batch_size=4", "--set", "train.dropout=0.0",
        "--set", "train.lr=0.01", "--quiet", "--threads", "1"]
MOTIF = [0, 4, 7, 12, 7, 4, 0, -5]          # offsets from the tonic, one per beat


def write_song(path: Path, tonic: int, bars: int = 6) -> None:
    """A looping arpeggio with a held bass note per bar: plenty of structure to learn."""
    mid = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    events = []                                           # (tick, order, message)
    for beat in range(bars * 4):
        pitch = tonic + MOTIF[beat % len(MOTIF)]
        events += [(beat * 480, 1, mido.Message("note_on", note=pitch, velocity=90)),
                   (beat * 480 + 240, 0, mido.Message("note_off", note=pitch))]
        if beat % 4 == 0:
            events += [(beat * 480, 1, mido.Message("note_on", note=tonic - 12, velocity=60)),
                       (beat * 480 + 1920, 0, mido.Message("note_off", note=tonic - 12))]
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    mid.save(path)


@pytest.fixture(scope="module")
def midi_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("songs")
    for i, tonic in enumerate([60, 62, 64, 65, 67, 57, 59, 55, 61, 63]):
        write_song(folder / f"song{i}.mid", tonic)
    return folder


def train_run(out, midi_dir, *extra, cache):
    return main([str(midi_dir), "--out", str(out), "--set", f"paths.cache_dir='{cache}'", *TINY, *extra])


def history(out):
    return json.loads((out / "metrics.json").read_text())["history"]


# data ------------------------------------------------------------------------------------------
def _random_songs(rng, count):
    return [np.array([BOS, *rng.integers(4, 90, int(rng.integers(3, 120))), EOS]) for _ in range(count)]


@pytest.mark.parametrize("shuffle", [False, True])
def test_every_position_is_a_target_once_and_state_follows_the_song(shuffle):
    rng = np.random.default_rng(0)
    songs = _random_songs(rng, 13) + [np.array([BOS, *rng.integers(4, 90, 700), EOS])]
    batches = list(stream_batches(songs, batch_size=4, seq_len=16, rng=rng if shuffle else None))
    assert len(batches) == count_batches(songs, 4, 16, training=shuffle)
    if shuffle:                                           # the long song is cut: streams end together
        assert (batches[-1].targets != PAD).any(axis=1).sum() >= 2
    targets = np.concatenate([b.targets.ravel() for b in batches])
    expected = np.concatenate([s[1:] for s in songs])
    assert sorted(targets[targets != PAD].tolist()) == sorted(expected.tolist())
    assert sum(b.tokens for b in batches) == len(expected)
    for prev, cur in zip(batches, batches[1:]):           # a carried row continues its song
        for r in np.flatnonzero(~cur.reset):
            assert cur.inputs[r, 0] == prev.targets[r, -1] != PAD
    for b in batches:                                     # a new song starts with BOS at a reset
        starts = b.inputs[:, 0] == BOS
        assert not (starts & ~b.reset).any()


def test_augmentation_transposes_whole_songs_within_range():
    vocab = Vocab()
    notes = np.array([BOS] + [vocab.note_id(60), vocab.dur_id(2), vocab.vel_id(80), 3] * 20 + [EOS])
    shifts = set()
    for seed in range(30):
        rng = np.random.default_rng(seed)
        [b] = list(stream_batches([notes], batch_size=1, seq_len=200, rng=rng, vocab=vocab, max_shift=6))
        pitches = {vocab.pitch_of(int(t)) for t in b.inputs[0] if vocab.is_note(int(t))}
        assert len(pitches) == 1                          # one shift for the whole song
        shifts.add(pitches.pop() - 60)
    assert shifts <= set(range(-6, 7)) and len(shifts) > 5


def test_split_is_by_whole_song_and_seeded():
    names = [f"s{i}" for i in range(20)]
    train, val = split_by_song(names, 0.2, seed=3)
    assert sorted(train + val) == list(range(20)) and len(val) == 4
    assert split_by_song(names, 0.2, seed=3) == (train, val)
    assert split_by_song(names, 0.2, seed=4) != (train, val)
    with pytest.raises(TrainError, match="at least 2 songs"):
        split_by_song(["one"], 0.1, 0)


# training --------------------------------------------------------------------------------------
def test_loss_goes_down_and_the_run_directory_is_complete(tmp_path, midi_dir):
    out = tmp_path / "run"
    assert train_run(out, midi_dir, "--epochs", "4", cache=tmp_path / "cache") == 0
    h = history(out)
    assert [e["epoch"] for e in h] == [1, 2, 3, 4]
    assert h[-1]["train_loss"] < 0.7 * h[0]["train_loss"]
    assert min(e["val_nll"] for e in h) < h[0]["val_nll"]
    best = torch.load(out / "best.pt", weights_only=True)
    m = best["metrics"]
    assert m["val_nll"] == min(e["val_nll"] for e in h)
    assert {"ngram_val_nll", "unigram_val_nll", "val_accuracy", "val_perplexity"} <= set(m)
    assert "resume" not in best and "resume" in torch.load(out / "last.pt", weights_only=True)
    assert (out / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_continues_and_repeats_an_uninterrupted_run(tmp_path, midi_dir):
    # A run stopped by --epochs 1 and resumed to 3 is the plateau schedule's case (the cosine one
    # spans train.max_epochs, so a shorter first run is another schedule; test_kill resumes that).
    cache = tmp_path / "cache"
    plateau = ("--set", "train.lr_schedule='plateau'")
    straight, broken, other = tmp_path / "straight", tmp_path / "broken", tmp_path / "other"
    assert train_run(straight, midi_dir, "--epochs", "3", *plateau, cache=cache) == 0
    assert train_run(broken, midi_dir, "--epochs", "1", *plateau, cache=cache) == 0  # "killed"
    assert train_run(broken, midi_dir, "--epochs", "3", "--resume", cache=cache) == 0
    assert [e["epoch"] for e in history(broken)] == [1, 2, 3]
    assert [e["val_nll"] for e in history(broken)] == [e["val_nll"] for e in history(straight)]
    assert train_run(other, midi_dir, "--epochs", "1", *plateau, "--set", "train.seed=7", cache=cache) == 0
    assert history(other)[0]["train_loss"] != history(straight)[0]["train_loss"]


def test_time_budget_stops_with_a_checkpoint(tmp_path, midi_dir, capsys):
    out = tmp_path / "run"
    assert train_run(out, midi_dir, "--epochs", "50", "--max-minutes", "0.00001", cache=tmp_path / "c") == 0
    h = history(out)
    assert len(h) == 1 and h[0]["partial"]
    assert (out / "best.pt").is_file()
    assert "time budget" in capsys.readouterr().out


def test_a_step_budget_stops_after_that_many_optimizer_steps(tmp_path, midi_dir, capsys):
    out = tmp_path / "run"
    assert train_run(out, midi_dir, "--epochs", "50", "--max-steps", "3", cache=tmp_path / "c") == 0
    h = history(out)
    assert len(h) == 1 and h[0]["partial"]
    assert json.loads((out / "metrics.json").read_text())["metrics"]["steps"] == 3
    assert (out / "best.pt").is_file() and "3 optimizer steps taken" in capsys.readouterr().out


def test_user_mistakes_are_one_line_errors(tmp_path, midi_dir, capsys):
    assert main([str(tmp_path / "missing"), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(midi_dir), "--out", str(tmp_path / "r"), "--resume", "--quiet"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "last.pt").write_bytes(b"PK\x03\x04 not really")
    assert main([str(midi_dir), "--out", str(tmp_path / "torn"), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main([str(midi_dir), "--out", str(tmp_path / "r"), "--set", "train.hiden_size=3"]) == 2
    assert "valid keys" in capsys.readouterr().err


# schedule and per-type figures ----------------------------------------------------------------
def test_cosine_schedule_warms_up_then_falls_to_its_floor():
    from perform.config import TrainConfig
    from train.fit import lr_at
    t = TrainConfig(lr=0.002, warmup_steps=100, min_lr_fraction=0.05)
    rates = [lr_at(s, 1000, t) for s in range(1000)]
    assert rates[0] == pytest.approx(0.002 / 100) and rates[99] == pytest.approx(0.002)
    assert all(a < b for a, b in zip(rates[:99], rates[1:100]))           # warmup rises
    assert all(a >= b for a, b in zip(rates[100:], rates[101:]))          # then only falls
    assert rates[550] == pytest.approx(0.001 + 0.0001 * 0.5 - 0.0001 * 0.5 + 0.00005, rel=0.05)
    assert lr_at(1000, 1000, t) == pytest.approx(0.0001)
    assert lr_at(0, 50, t) == pytest.approx(0.002 / 5)    # warmup at most a tenth of a short run


def test_history_reports_note_nll_beside_the_average_and_the_ngram_per_type(tmp_path, midi_dir):
    out = tmp_path / "run"
    assert train_run(out, midi_dir, "--epochs", "2", cache=tmp_path / "cache") == 0
    log = json.loads((out / "metrics.json").read_text())
    h, m = log["history"], log["metrics"]
    kinds = ("note", "dur", "vel", "step")
    assert all(np.isfinite(e[f"val_nll_{k}"]) for e in h for k in kinds)
    assert h[-1]["val_nll_note"] > h[-1]["val_nll_vel"]          # pitches are the hard part
    assert all(np.isfinite(m[f"ngram_val_nll_{k}"]) for k in kinds)
    assert m["steps"] > 0 and m["steps"] % 2 == 0                # two epochs of equal length
    assert h[-1]["lr"] == pytest.approx(0.01 * 0.05, rel=0.2)    # cosine ends at its floor
    corpus = torch.load(out / "best.pt", weights_only=True)["corpus"]
    assert corpus["velocity_bins"] == [3, 5]          # the songs' velocities 60 and 90: what
                                                      # perform maps a player's velocities to


def test_per_type_nll_averages_back_to_the_overall_nll(tmp_path, midi_dir):
    from train.checkpoint import load_checkpoint, model_from_checkpoint
    from train.corpus import load_corpus
    from train.evaluate import score_songs, token_types
    from train.fit import baselines
    out = tmp_path / "run"
    assert train_run(out, midi_dir, "--epochs", "1", cache=tmp_path / "cache") == 0
    model, vocab = model_from_checkpoint(load_checkpoint(out / "best.pt"))
    songs = [s.ids for s in load_corpus([midi_dir], vocab, use_cache=False).songs]
    scores = score_songs(model, songs, vocab=vocab)
    kinds = token_types(vocab)[np.concatenate([s[1:] for s in songs])]
    counts = [(kinds == k).sum() for k in range(4)]
    assert sum(counts) == scores["tokens"]                       # every target has a type
    mixed = sum(c * scores[f"nll_{k}"] for c, k in zip(counts, ("note", "dur", "vel", "step")))
    assert mixed / sum(counts) == pytest.approx(scores["nll"], rel=1e-5)
    base = baselines(songs[:6], songs[6:], vocab)
    kinds = token_types(vocab)[np.concatenate([s[1:] for s in songs[6:]])]
    mixed = sum((kinds == k).sum() * base[f"ngram_val_nll_{n}"]
                for k, n in enumerate(("note", "dur", "vel", "step")))
    assert mixed / len(kinds) == pytest.approx(base["ngram_val_nll"], rel=1e-9)
