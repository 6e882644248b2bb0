"""python -m train prepare: the summary a user reads, --json, --no-cache, --tracks, errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from train.prepare import main


@pytest.fixture
def songs(write_midi, tmp_path):
    folder = tmp_path / "songs"
    write_midi("a.mid", [[(0, 1, 60, 80), (1, 1, 64, 80)], [(0, 2, 48, 80)]], folder=folder)
    write_midi("b.mid", [[(0, 0.5, 67, 80), (0.5, 0.5, 69, 80), (1, 1, 71, 80)]], folder=folder)
    (folder / "junk.mid").write_text("not midi at all")
    return folder


def run(capsys, tmp_path, *args):
    code = main([*args, "--set", f"paths.cache_dir={json.dumps(str(tmp_path / 'cache'))}"])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_summary_names_counts_and_each_skipped_file(capsys, tmp_path, songs):
    code, out, err = run(capsys, tmp_path, str(songs))
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0].startswith("read 2 file(s) (0 from the cache), skipped 1, in ")
    assert lines[1] == "songs 2, notes 6, tokens 32, steps 10, vocabulary 132 tokens"
    assert lines[2:] == ["skipped:", f"  {songs / 'junk.mid'}: not a MIDI file: starts with "
                                     f"b'not midi', not the MThd header"]


def test_json_summary_and_the_cache(capsys, tmp_path, songs):
    code, out, _ = run(capsys, tmp_path, str(songs), "--json")
    first = json.loads(out)
    assert code == 0
    assert {k: first[k] for k in ("files_ok", "files_skipped", "notes", "tokens", "from_cache")} == \
        {"files_ok": 2, "files_skipped": 1, "notes": 6, "tokens": 32, "from_cache": 0}   # 2 x (BOS, 3 notes x 3, 5 STEP, EOS)
    assert first["skipped"] == [{"file": str(songs / "junk.mid"),
                                 "reason": "not a MIDI file: starts with b'not midi', not the MThd header"}]
    assert first["vocab_size"] == 132 and first["seconds"] >= 0
    cached = json.loads(run(capsys, tmp_path, str(songs), "--json")[1])
    assert cached["from_cache"] == 2 and cached["tokens"] == 32
    cold = json.loads(run(capsys, tmp_path, str(songs), "--json", "--no-cache")[1])
    assert cold["from_cache"] == 0 and cold["tokens"] == 32


def test_tracks_and_config_change_what_is_read(capsys, tmp_path, songs):
    picked = json.loads(run(capsys, tmp_path, str(songs / "a.mid"), "--json", "--tracks", "1")[1])
    assert picked["notes"] == 1
    config = tmp_path / "c.toml"
    config.write_text("[grid]\nvelocity_bins = 4\n")
    coarse = json.loads(run(capsys, tmp_path, str(songs), "--json", "--config", str(config))[1])
    assert coarse["vocab_size"] == 128 and coarse["from_cache"] == 0


@pytest.mark.parametrize("args, message", [
    (["/no/such/folder"], "error: corpus path '/no/such/folder' does not exist"),
    (["--tracks", "x"], "error: --tracks 'x' must be track numbers"),
    (["--set", "grid.steps_per_beat=0"], "error: grid.steps_per_beat = 0 is out of range"),
])
def test_user_mistakes_are_one_line_errors_with_status_2(capsys, tmp_path, songs, args, message):
    args = args if args[0].startswith("/") else [str(songs), *args]
    code, out, err = run(capsys, tmp_path, *args)
    assert code == 2 and out == "" and err.startswith(message) and "Traceback" not in err


def test_nothing_readable_is_an_error_listing_the_reasons(capsys, tmp_path, songs):
    code, _, err = run(capsys, tmp_path, str(songs / "junk.mid"))
    assert code == 2 and "nothing readable" in err and "junk.mid: not a MIDI file" in err


def test_python_dash_m_train_prepare_runs(tmp_path, songs):
    proc = subprocess.run([sys.executable, "-m", "train", "prepare", str(songs), "--json",
                           "--set", f"paths.cache_dir={json.dumps(str(tmp_path / 'c'))}"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["files_ok"] == 2


def test_files_of_other_types_in_a_folder_are_counted_as_ignored(capsys, tmp_path, songs):
    (songs / "clip.midi2").write_bytes(b"MThd")
    (songs / "notes.txt").write_text("a list of songs")
    code, out, _ = run(capsys, tmp_path, str(songs), "--json")
    summary = json.loads(out)
    assert code == 0 and summary["files_ok"] == 2 and summary["files_ignored"] == 2
    assert summary["ignored"] == [str(songs / "clip.midi2"), str(songs / "notes.txt")]
    code, out, _ = run(capsys, tmp_path, str(songs))
    assert f"ignored 2 file(s) of other types (read are .mid .midi" in out
    assert "clip.midi2" in out
