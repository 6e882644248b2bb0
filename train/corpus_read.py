"""One file to token ids (in a worker process or not), and running many files in parallel.

Every failure while reading a file becomes that file's skip reason: one hostile file never stops a
run. A time guard (SIGALRM, where it can be set) bounds each file; a worker process that dies
(a crash in a C parser) is retried alone in a fresh process, then skipped.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from perform.quantize import notes_from_events
from perform.tokens import STEP, Note, Vocab

from .corpus_cache import FileResult, SongData, save_entry
from .corpus_music21 import SCORE_SUFFIXES, read_score
from .midi_read import Event, ReadSkip, has_drum_notes, read_midi

MIDI_SUFFIXES = (".mid", ".midi", ".kar", ".rmi")
# A song longer than this is cut here (a warning says so): 2**16 steps is over two hours at
# 120 BPM on the default grid, and it keeps an absurd delta time from making a giant rest.
MAX_SONG_STEPS = 2 ** 16
FILE_TIME_LIMIT_S = 120.0
MAX_FILES_PER_TASK = 32         # files a worker reads per task (fewer when there are few files)


class FileTimeout(BaseException):
    """Raised by time_guard; a BaseException so that readers' broad `except Exception` let it by."""


def read_file(path: str, vocab_dict: dict, tracks: Sequence[int] | None,
              time_limit_s: float = FILE_TIME_LIMIT_S) -> FileResult:
    """Read one file into songs of token ids; never raises (a failure is a skip reason)."""
    vocab = Vocab.from_dict(vocab_dict)
    try:
        with time_guard(time_limit_s):
            return _read(path, vocab, tracks)
    except ReadSkip as err:
        return FileResult(path, skip_reason=str(err))
    except FileTimeout:
        return FileResult(path, skip_reason=f"reading took over {time_limit_s:g} s; gave up",
                          cacheable=False)
    except MemoryError:
        return FileResult(path, skip_reason="ran out of memory reading it", cacheable=False)
    except Exception as err:  # noqa: BLE001 - isolation: any reader bug becomes a skip reason
        text = " ".join(str(err).split())[:160]
        return FileResult(path, skip_reason=f"reader failed: {type(err).__name__}: {text}",
                          cacheable=False)       # a bug of ours, not the file's: not remembered


def _read(path: str, vocab: Vocab, tracks: Sequence[int] | None) -> FileResult:
    suffix = Path(path).suffix.lower()
    warnings: list[str] = []
    if suffix in SCORE_SUFFIXES:
        songs = read_score(path, vocab.steps_per_beat, tracks)
    else:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise ReadSkip(f"cannot read the file: {err.strerror or err}") from err
        midi = read_midi(data, vocab.steps_per_beat, tracks)
        songs, warnings = midi.songs, list(midi.warnings)
    result = FileResult(path, warnings=warnings)
    for label, events in songs.items():
        song = song_from_events(events, vocab, result.warnings, label)
        if song is not None:
            result.songs.append(song)
    if not result.songs:
        drums = suffix not in SCORE_SUFFIXES and has_drum_notes(data)
        raise ReadSkip("no notes but drums (channel 10 is left out)" if drums else "no notes")
    return result


def song_from_events(events: list[Event], vocab: Vocab, warnings: list[str],
                     label: str = "") -> SongData | None:
    """Quantize (perform.quantize rules), trim leading silence, cap the length, encode."""
    notes = notes_from_events(events, vocab.max_dur_steps)
    if not notes:
        return None
    first = notes[0].start_step
    if first:
        notes = [Note(n.start_step - first, n.pitch, n.dur_steps, n.velocity) for n in notes]
    if notes[-1].start_step >= MAX_SONG_STEPS:
        where = f"{label}: " if label else ""
        last = notes[-1].start_step
        notes = [n for n in notes if n.start_step < MAX_SONG_STEPS]
        warnings.append(f"{where}cut at {MAX_SONG_STEPS} steps (a note starts at step {last}; "
                        f"an absurd delta time?)")
    ids = vocab.encode(notes)
    return SongData(label, ids, len(notes), int(np.count_nonzero(ids == STEP)))


@contextlib.contextmanager
def time_guard(limit_s: float) -> Iterator[None]:
    """Raise FileTimeout in the body after `limit_s` (main thread on POSIX only; else no guard).

    An interval timer already running (pytest-timeout's, say) is re-armed afterwards with what is
    left of it; if it would fire first, it is left alone and no guard is set.
    """
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    outer_s, outer_interval_s = signal.getitimer(signal.ITIMER_REAL) if usable else (0.0, 0.0)
    if not usable or limit_s <= 0 or 0 < outer_s <= limit_s:
        yield
        return

    def _alarm(signum, frame):
        raise FileTimeout

    started = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_s > 0:
            left_s = max(outer_s - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, left_s, outer_interval_s)


def read_many(paths: Sequence[str], vocab_dict: dict, tracks: Sequence[int] | None, workers: int,
              on_done: Callable[[FileResult], None], cache_dir: str | Path | None = None,
              keys: dict[str, str] | None = None) -> None:
    """Read `paths` (serially for workers <= 1), calling on_done(result) as each finishes. With
    `cache_dir`, each result that can be cached is saved there under keys[path] by the process that
    read it (the parent would otherwise write every entry itself, serially)."""
    cache = str(cache_dir) if cache_dir is not None else None
    keys = keys or {}
    if workers <= 1:
        for path in paths:
            on_done(read_and_save(path, vocab_dict, tracks, cache, keys.get(path)))
        return
    left = set(paths)
    size = max(1, min(MAX_FILES_PER_TASK, len(paths) // (workers * 8)))
    try:
        with ProcessPoolExecutor(workers, mp_context=_context()) as pool:
            futures = [pool.submit(_read_group, [(p, keys.get(p)) for p in paths[at:at + size]],
                                   vocab_dict, tracks, cache) for at in range(0, len(paths), size)]
            for future in as_completed(futures):
                for result in future.result():
                    left.discard(result.path)
                    on_done(result)
    except BrokenProcessPool:
        for path in sorted(left):
            on_done(_read_alone(path, vocab_dict, tracks, cache, keys.get(path)))


def _read_group(group: list[tuple[str, str | None]], vocab_dict: dict, tracks, cache_dir):
    """A worker's task: several files (one task per file costs the parent more than a small MIDI
    file costs to read)."""
    return [read_and_save(path, vocab_dict, tracks, cache_dir, key) for path, key in group]


def read_and_save(path: str, vocab_dict: dict, tracks: Sequence[int] | None,
                  cache_dir: str | None = None, key: str | None = None) -> FileResult:
    """read_file, then the result saved in the cache (when it may be: not a timeout, not a bug)."""
    result = read_file(path, vocab_dict, tracks)
    if cache_dir is not None and key is not None and result.cacheable:
        save_entry(Path(cache_dir), key, result)
    return result


def _read_alone(path: str, vocab_dict: dict, tracks: Sequence[int] | None,
                cache_dir: str | None = None, key: str | None = None) -> FileResult:
    """One file in its own process: if that process dies, the file is skipped."""
    try:
        with ProcessPoolExecutor(1, mp_context=_context()) as pool:
            return pool.submit(read_and_save, path, vocab_dict, tracks, cache_dir, key).result()
    except BrokenProcessPool:
        return FileResult(path, skip_reason="the reader crashed on this file (worker process died)",
                          cacheable=False)


def _context():
    """fork on Linux: workers start in milliseconds, and they never touch torch (which a training
    parent may have loaded) or anything else that fork could leave in a bad state. Elsewhere the
    platform's default (spawn on macOS and Windows)."""
    if sys.platform.startswith("linux"):
        return multiprocessing.get_context("fork")
    return None
