"""load_corpus: MIDI and scores to songs of tokens, drums, tracks, the cache, parallel reading."""

from __future__ import annotations

import os
import time
from pathlib import Path

import mido
import numpy as np
import pytest

import train.corpus_read as corpus_read
from perform.tokens import Note, Vocab
from train.corpus import bach_chorales, find_files, load_corpus
from train.errors import CorpusError

VOCAB = Vocab()


def _load(paths, tmp_path, **kw):
    kw.setdefault("cache_dir", tmp_path / "cache")
    return load_corpus([str(p) for p in paths], VOCAB, **kw)


def _on_grid(notes, first_beat=0.0):
    """What the language keeps of (start_beats, dur_beats, pitch, velocity) notes on the grid."""
    spb = VOCAB.steps_per_beat
    return sorted(Note(round((s - first_beat) * spb), p, round(d * spb),
                       VOCAB.bin_velocity(VOCAB.velocity_bin(v))) for s, d, p, v, *_ in notes)


# A phrase with a chord, a rest, several durations and velocities, starting after 2 beats of silence.
PHRASE = [(2.0, 1.0, 60, 100), (2.0, 1.0, 64, 90), (2.0, 2.0, 67, 80), (3.0, 0.25, 72, 40),
          (3.25, 0.5, 71, 60), (5.0, 4.0, 48, 127), (5.5, 0.75, 84, 1), (6.0, 8.0, 36, 70)]


def test_midi_round_trip_gives_the_same_notes_on_the_grid(write_midi, tmp_path):
    path = write_midi("phrase.mid", [PHRASE])
    corpus = _load([path], tmp_path)
    assert [s.name for s in corpus.songs] == [str(path)]
    ids = corpus.songs[0].ids
    assert ids.dtype == np.int64 and ids[0] == 1 and ids[-1] == 2          # BOS ... EOS
    notes = VOCAB.decode(ids)
    assert notes == _on_grid(PHRASE, first_beat=2.0)                         # leading rest trimmed
    assert corpus.notes == len(PHRASE) and corpus.tokens == len(ids)
    assert corpus.steps == notes[-1].start_step + 1

    # tokens -> MIDI -> tokens: the decoded notes written out read back to the same ids
    spb = VOCAB.steps_per_beat
    again = write_midi("again.mid", [[(n.start_step / spb, n.dur_steps / spb, n.pitch, n.velocity)
                                      for n in notes]])
    assert np.array_equal(_load([again], tmp_path).songs[0].ids, ids)


def test_off_grid_times_go_to_the_nearest_step_and_long_notes_are_capped(write_midi, tmp_path):
    played = [(0.0, 1.1, 60, 80), (1.13, 0.4, 62, 80), (2.9, 20.0, 64, 80)]
    corpus = _load([write_midi("loose.mid", [played])], tmp_path)
    got = [(n.start_step, n.pitch, n.dur_steps) for n in VOCAB.decode(corpus.songs[0].ids)]
    assert got == [(0, 60, 4), (5, 62, 1), (12, 64, VOCAB.max_dur_steps)]      # 4.52->5, 6.12->6


def test_drums_on_channel_10_are_left_out(write_midi, tmp_path):
    melody = [(0, 1, 60, 80), (1, 1, 62, 80)]
    drums = [(0, 0.5, 36, 100, 9), (0.5, 0.5, 38, 100, 9), (1, 0.5, 42, 100, 9)]
    corpus = _load([write_midi("band.mid", [melody, drums])], tmp_path)
    assert [n.pitch for n in VOCAB.decode(corpus.songs[0].ids)] == [60, 62]

    only_drums = write_midi("drums.mid", [drums])
    corpus = _load([only_drums, write_midi("ok.mid", [melody])], tmp_path)
    assert corpus.files_ok == 1
    assert corpus.skipped == [(str(only_drums), "no notes but drums (channel 10 is left out)")]
    silent = write_midi("silent.mid", [[]])
    assert _load([silent, write_midi("ok.mid", [melody])], tmp_path).skipped == [(str(silent), "no notes")]


def test_tracks_merge_into_one_song_unless_picked(write_midi, tmp_path):
    bass = [(0, 2, 36, 80), (2, 2, 43, 80)]
    lead = [(0, 1, 72, 80), (1, 1, 74, 80), (2, 1, 76, 80)]
    path = write_midi("two.mid", [[], bass, lead])            # track 0: a conductor track
    merged = VOCAB.decode(_load([path], tmp_path).songs[0].ids)
    assert sorted(n.pitch for n in merged) == [36, 43, 72, 74, 76]
    picked = VOCAB.decode(_load([path], tmp_path, tracks=[2]).songs[0].ids)
    assert [n.pitch for n in picked] == [72, 74, 76]
    both = VOCAB.decode(_load([path], tmp_path, tracks=[1, 2]).songs[0].ids)
    assert both == merged
    with pytest.raises(CorpusError, match="no track 7: the file has tracks 0..2"):
        _load([path], tmp_path, tracks=[7])


def test_a_second_run_reads_the_cache_and_no_cache_reads_afresh(write_midi, tmp_path):
    folder = tmp_path / "songs"
    for i in range(3):
        write_midi(f"s{i}.mid", [[(0, 1, 60 + i, 80), (1, 1, 64 + i, 80)]], folder=folder)
    (folder / "broken.mid").write_bytes(b"MThd nonsense")
    first = _load([folder], tmp_path)
    assert (first.files_ok, len(first.skipped), first.from_cache) == (3, 1, 0)
    second = _load([folder], tmp_path)
    assert second.from_cache == 3 and second.skipped == first.skipped
    assert [s.name for s in second.songs] == [s.name for s in first.songs]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(first.songs, second.songs))
    assert all(s.ids.dtype == np.int64 for s in second.songs)
    for entry in (tmp_path / "cache").rglob("*.npz"):        # a byte a token on disk, not eight
        with np.load(entry) as npz:
            assert all(npz[k].dtype == np.uint8 for k in npz.files if k.startswith("ids_"))
    assert _load([folder], tmp_path, use_cache=False).from_cache == 0

    # a changed file, or other grid settings, are misses
    write_midi("s0.mid", [[(0, 1, 50, 80)]], folder=folder)
    changed = _load([folder], tmp_path)
    assert changed.from_cache == 2 and VOCAB.decode(changed.songs[0].ids)[0].pitch == 50
    coarse = load_corpus([str(folder)], Vocab(steps_per_beat=2), cache_dir=tmp_path / "cache")
    assert coarse.from_cache == 0
    assert list((tmp_path / "cache").rglob("*.npz"))


def test_a_corrupt_cache_entry_is_a_miss(write_midi, tmp_path):
    path = write_midi("a.mid", [[(0, 1, 60, 80)]])
    expected = _load([path], tmp_path).songs[0].ids
    for entry in (tmp_path / "cache").rglob("*.npz"):
        entry.write_bytes(b"garbage")
    again = _load([path], tmp_path)
    assert again.from_cache == 0 and np.array_equal(again.songs[0].ids, expected)


def test_parallel_reading_gives_what_serial_reading_gives(write_midi, tmp_path):
    folder = tmp_path / "many"
    for i in range(6):
        write_midi(f"f{i}.mid", [[(j * 0.5, 0.5, 48 + (i * 7 + j) % 40, 80) for j in range(20)]],
                   folder=folder)
    serial = _load([folder], tmp_path, workers=1, use_cache=False)
    parallel = _load([folder], tmp_path, workers=2, use_cache=False)
    assert [s.name for s in parallel.songs] == [s.name for s in serial.songs]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(serial.songs, parallel.songs))


def test_a_worker_that_dies_costs_only_its_own_file(write_midi, tmp_path, monkeypatch):
    folder = tmp_path / "crash"
    for i in range(4):
        write_midi(f"f{i}.mid", [[(0, 1, 60 + i, 80)]], folder=folder)
    crash = write_midi("crash.mid", [[(0, 1, 70, 80)]], folder=folder)
    real_read = corpus_read._read

    def dying_read(path, vocab, tracks):
        if path.endswith("crash.mid"):
            os._exit(3)                     # what a segfault in a C parser looks like from outside
        return real_read(path, vocab, tracks)

    monkeypatch.setattr(corpus_read, "_read", dying_read)       # forked workers inherit it
    corpus = _load([folder], tmp_path, workers=2)
    assert corpus.files_ok == 4
    assert corpus.skipped == [(str(crash), "the reader crashed on this file (worker process died)")]


def test_a_reader_bug_becomes_a_skip_reason(write_midi, tmp_path, monkeypatch):
    good = write_midi("good.mid", [[(0, 1, 60, 80)]])
    bad = write_midi("bad.mid", [[(0, 1, 62, 80)]])
    real = corpus_read.read_midi

    def flaky(data, steps_per_beat, tracks=None):
        if b"\x3e" in data:                 # pitch 62
            raise ZeroDivisionError("boom")
        return real(data, steps_per_beat, tracks)

    monkeypatch.setattr(corpus_read, "read_midi", flaky)
    corpus = _load([good, bad], tmp_path, workers=1)
    assert corpus.files_ok == 1
    assert corpus.skipped == [(str(bad), "reader failed: ZeroDivisionError: boom")]
    monkeypatch.undo()                      # the bug fixed: the file is read, not a cached skip
    assert _load([good, bad], tmp_path, workers=1).files_ok == 2


def test_a_file_that_takes_too_long_is_skipped(tmp_path):
    chorale = bach_chorales()[0]
    result = corpus_read.read_file(chorale, VOCAB.to_dict(), None, time_limit_s=0.001)
    assert result.songs == [] and result.skip_reason == "reading took over 0.001 s; gave up"
    assert not result.cacheable
    started = time.perf_counter()
    with pytest.raises(corpus_read.FileTimeout):
        with corpus_read.time_guard(0.05):
            time.sleep(5)
    assert time.perf_counter() - started < 2


def test_missing_paths_and_empty_folders_are_errors_that_say_what_is_read(tmp_path):
    with pytest.raises(CorpusError) as err:
        _load([tmp_path / "nope"], tmp_path)
    assert "nope" in str(err.value) and "does not exist" in str(err.value) and ".mid" in str(err.value)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not music")
    with pytest.raises(CorpusError, match=r"no music files in .*empty.*\.mid .*\.mxl"):
        _load([tmp_path / "empty"], tmp_path)


def test_folders_are_searched_recursively_for_music_files(write_midi, tmp_path):
    root = tmp_path / "lib"
    write_midi("a.mid", [[(0, 1, 60, 80)]], folder=root)
    write_midi("b.MIDI", [[(0, 1, 60, 80)]], folder=root / "deep" / "er")
    (root / "readme.txt").write_text("hi")
    assert [Path(f).name for f in find_files([root])] == ["a.mid", "b.MIDI"]


def test_format_2_patterns_are_separate_songs(write_midi, tmp_path):
    path = write_midi("patterns.mid", [[(0, 1, 60, 80)], [(0, 1, 67, 80), (1, 1, 69, 80)]], type=2)
    corpus = _load([path], tmp_path)
    assert [s.name for s in corpus.songs] == [f"{path}#track0", f"{path}#track1"]
    assert [n.pitch for n in VOCAB.decode(corpus.songs[1].ids)] == [67, 69]


def test_summary_is_json_ready(write_midi, tmp_path):
    good = write_midi("good.mid", [[(0, 1, 60, 80)]])
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    s = _load([good, empty], tmp_path).summary()
    assert (s["files_ok"], s["files_skipped"], s["notes"], s["vocab_size"]) == (1, 1, 1, VOCAB.size)
    assert s["tokens"] == 6 and s["steps"] == 1 and s["seconds"] >= 0
    assert s["skipped"] == [{"file": str(empty), "reason": "empty file (0 bytes)"}]


def test_bach_chorales_are_the_default_and_read_with_music21(tmp_path):
    files = find_files(None)
    assert len(files) > 300 and all(f.endswith((".mxl", ".xml", ".krn")) for f in files)
    two = files[:2]
    corpus = _load(two, tmp_path)
    assert corpus.files_ok == 2 and corpus.notes > 200
    notes = VOCAB.decode(corpus.songs[0].ids)
    assert notes[0].start_step == 0
    assert len({n.start_step for n in notes}) < len(notes)        # four voices: chords
    soprano = _load(two[:1], tmp_path, tracks=[0])
    assert 0 < soprano.notes < corpus.notes / 2
    assert _load(two, tmp_path).from_cache == 2


def test_a_musicxml_score_with_chords_ties_and_a_grace_note(tmp_path):
    from music21 import chord, meter, note, stream, tie

    part = stream.Part([meter.TimeSignature("4/4")])
    part.append(chord.Chord(["C4", "E4", "G4"], quarterLength=1))
    held = [note.Note("D5", quarterLength=2), note.Note("D5", quarterLength=1)]
    held[0].tie, held[1].tie = tie.Tie("start"), tie.Tie("stop")
    part.append(held)
    part.append(note.Note("B4", quarterLength=0.5).getGrace())
    part.append(note.Note("C5", quarterLength=1))
    path = tmp_path / "score.musicxml"
    stream.Score([part]).write("musicxml", fp=path)
    notes = VOCAB.decode(_load([path], tmp_path).songs[0].ids)
    assert [(n.start_step, n.pitch, n.dur_steps) for n in notes] == \
        [(0, 60, 4), (0, 64, 4), (0, 67, 4), (4, 74, 12), (16, 72, 4)]


def test_a_progress_bar_on_stderr_for_many_files_only_when_asked(write_midi, tmp_path, capsys):
    folder = tmp_path / "fifty"
    for i in range(50):
        write_midi(f"f{i:02}.mid", [[(0, 1, 40 + i, 80)]], folder=folder)
    _load([folder], tmp_path, progress=False)
    assert capsys.readouterr().err == ""
    corpus = _load([folder], tmp_path, progress=True, use_cache=False)
    err = capsys.readouterr().err
    assert corpus.files_ok == 50 and "reading:" in err and "/50 [" in err


def test_music21_collections_are_named_with_the_music21_prefix():
    assert find_files(["music21:bach"]) == bach_chorales()
    palestrina = find_files(["music21:palestrina"])
    assert len(palestrina) > 1000 and all(p.endswith(".krn") for p in palestrina)
    both = find_files(["music21:bach", "music21:palestrina"])
    assert len(both) == len(bach_chorales()) + len(palestrina)
    with pytest.raises(CorpusError, match="music21:nope is not a collection.*music21:palestrina"):
        find_files(["music21:nope"])
