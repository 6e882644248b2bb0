"""Token shards: prepare --out-shards, resuming a killed prepare, training through memory maps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import train.corpus_read as corpus_read
from perform.tokens import Vocab
from train.corpus import load_corpus
from train.errors import CorpusError
from train.fit import main as fit_main
from train.prepare import main as prepare_main
from train.shards import open_shards, prepare_shards

from test_fit import TINY, write_song


@pytest.fixture
def songs(tmp_path):
    folder = tmp_path / "songs"
    folder.mkdir()
    for i, tonic in enumerate([60, 62, 64, 65, 67, 57, 59, 55, 61, 63, 58]):
        write_song(folder / f"song{i:02d}.mid", tonic, bars=3 + i % 4)
    (folder / "junk.mid").write_text("not midi at all")
    (folder / "notes.txt").write_text("not music")
    return folder


def cache_set(tmp_path):
    return ["--set", f"paths.cache_dir={json.dumps(str(tmp_path / 'cache'))}"]


def prepare(capsys, tmp_path, *args):
    code = prepare_main([*args, *cache_set(tmp_path)])
    out, err = capsys.readouterr()
    return code, out, err


def shard_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("shard-*"))}


def test_shards_hold_what_reading_the_folder_gives(capsys, tmp_path, songs):
    code, out, err = prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"),
                             "--shard-files", "4", "--json")
    summary = json.loads(out)
    assert code == 0 and err == ""
    assert summary["shards"] == 3 and summary["files_ok"] == 11 and summary["files_read"] == 12
    assert summary["skipped"] == [{"file": str(songs / "junk.mid"), "reason":
                                   "not a MIDI file: starts with b'not midi', not the MThd header"}]
    assert summary["ignored"] == [str(songs / "notes.txt")]
    vocab = Vocab()
    corpus = load_corpus([songs], vocab, cache_dir=tmp_path / "other-cache")
    shards = open_shards(tmp_path / "sh", vocab)
    assert [s.name for s in shards.songs] == [s.name for s in corpus.songs]
    for mapped, read in zip(shards.songs, corpus.songs):
        assert mapped.ids.dtype == np.uint8 and not mapped.ids.flags.owndata     # a view of the map
        assert np.array_equal(mapped.ids, read.ids)
    assert shards.ranges.tolist() == [list(vocab.transpose_range(s.ids)) for s in corpus.songs]
    assert (shards.tokens, shards.notes, shards.files_ok) == (corpus.tokens, corpus.notes, 11)
    assert shards.skipped == corpus.skipped
    shards.release()                                    # drops the pages; the songs still read
    assert np.array_equal(shards.songs[-1].ids, corpus.songs[-1].ids)


def test_a_killed_prepare_continues_without_reading_done_files_again(tmp_path, songs, monkeypatch):
    vocab, out, straight = Vocab(), tmp_path / "sh", tmp_path / "straight"
    prepare_shards([songs], vocab, straight, cache_dir=tmp_path / "c1", use_cache=False,
                   workers=1, shard_files=4)

    def kill_after_first(number):
        if number == 0:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        prepare_shards([songs], vocab, out, cache_dir=tmp_path / "c2", use_cache=False, workers=1,
                       shard_files=4, on_shard=kill_after_first)
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    with pytest.raises(CorpusError, match="not complete.*run the same"):
        open_shards(out, vocab)
    # a kill while writing shard 1: a torn temporary file and a tokens file without its .json
    (out / ".shard-00001.tokens.x1.tmp").write_bytes(b"torn")
    (out / "shard-00001.tokens").write_bytes(b"\x01\x02")
    opened = []
    real = corpus_read.read_file
    monkeypatch.setattr(corpus_read, "read_file", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    report = prepare_shards([songs], vocab, out, cache_dir=tmp_path / "c2", use_cache=False,
                            workers=1, shard_files=4)
    done_first = sorted(str(p) for p in songs.glob("*.mid"))[:4]
    assert report.files_earlier == 4 and not set(opened) & set(done_first)
    assert len(opened) == 8
    assert shard_bytes(out) == shard_bytes(straight)
    assert not list(out.glob(".*.tmp"))
    assert open_shards(out, vocab).tokens == report.tokens


def test_a_finished_folder_is_not_read_again_and_says_so(capsys, tmp_path, songs):
    prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"))
    code, out, _ = prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"))
    assert code == 0
    assert "12 file(s) were done by an earlier run and not read again" in out.splitlines()[0]
    assert "skipped:" in out and "junk.mid" in out
    write_song(songs / "song99.mid", 66)                        # a file added to the sources later
    code, out, _ = prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"), "--json")
    summary = json.loads(out)
    assert (summary["files_read"], summary["files_earlier"], summary["shards"]) == (1, 12, 2)
    assert open_shards(tmp_path / "sh", Vocab()).songs[-1].name == str(songs / "song99.mid")


def test_a_folder_of_other_settings_or_files_is_refused(capsys, tmp_path, songs):
    assert prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"))[0] == 0
    code, _, err = prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"),
                           "--set", "grid.steps_per_beat=2")
    assert code == 2 and err.startswith("error: ") and "other grid settings" in err
    assert "new --out-shards folder" in err
    code, _, err = prepare(capsys, tmp_path, str(songs), "--out-shards", str(songs))
    assert code == 2 and "is not a shard folder" in err


def test_training_from_shards_gives_the_same_model_as_from_the_files(tmp_path, songs, capsys):
    assert prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"),
                   "--shard-files", "3")[0] == 0
    common = [*cache_set(tmp_path), *TINY, "--epochs", "2"]
    assert fit_main([str(tmp_path / "sh"), "--out", str(tmp_path / "a"), *common]) == 0
    assert fit_main([str(songs), "--out", str(tmp_path / "b"), *common]) == 0
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["corpus"]["velocity_bins"] == b["corpus"]["velocity_bins"]
    from train.evaluate import evaluate
    on_shards = evaluate(tmp_path / "a" / "best.pt", [tmp_path / "sh"])
    on_files = evaluate(tmp_path / "a" / "best.pt", [songs])
    assert on_shards["tokens"] == on_files["tokens"] and on_shards["nll"] == pytest.approx(on_files["nll"])


def test_training_refuses_a_shard_folder_it_cannot_use(tmp_path, songs, capsys):
    assert prepare(capsys, tmp_path, str(songs), "--out-shards", str(tmp_path / "sh"))[0] == 0
    run = [*cache_set(tmp_path), *TINY, "--epochs", "1", "--out", str(tmp_path / "r")]
    assert fit_main([str(tmp_path / "sh"), *run, "--set", "grid.velocity_bins=4"]) == 2
    err = capsys.readouterr().err
    assert "prepared with another grid" in err and "--set grid" in err
    assert fit_main([str(tmp_path / "sh"), str(songs), *run]) == 2
    assert "train on it alone" in capsys.readouterr().err


# SIGKILL half way through writing shard 1's index (its tokens already renamed into place).
_KILLER = """
import os, signal, sys, tempfile
import train.shards as shards
real = shards._atomic

def atomic(path, data):
    if path.name == "shard-00001.index.npy":
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.write(fd, data[:len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data)

shards._atomic = atomic
from train.prepare import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_while_writing_a_shard_then_the_same_command_finishes(tmp_path, songs, capsys,
                                                                     monkeypatch):
    import subprocess
    import sys
    args = [str(songs), "--out-shards", str(tmp_path / "sh"), "--shard-files", "4", "--workers", "1",
            "--json", *cache_set(tmp_path)]
    killed = subprocess.run([sys.executable, "-c", _KILLER, *args], capture_output=True,
                            cwd=Path(__file__).resolve().parents[2], timeout=120)
    assert killed.returncode == -9
    assert (tmp_path / "sh" / "shard-00001.tokens").exists()
    assert not (tmp_path / "sh" / "shard-00001.json").exists()
    opened = []
    real = corpus_read.read_file
    monkeypatch.setattr(corpus_read, "read_file", lambda path, *a, **k: opened.append(path) or real(path, *a, **k))
    assert prepare_main([*args, "--no-cache"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["files_earlier"] == 4 and summary["files_read"] == 8 and len(opened) == 8
    prepare_shards([songs], Vocab(), tmp_path / "straight", cache_dir=tmp_path / "c", workers=1,
                   shard_files=4)
    assert shard_bytes(tmp_path / "sh") == shard_bytes(tmp_path / "straight")
