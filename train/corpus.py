"""The corpus: music files to songs of token ids in the instrument's language.

    from train.corpus import load_corpus
    corpus = load_corpus(["songs/"], Vocab.from_grid(config.grid))   # None: Bach chorales

MIDI (.mid .midi .kar .rmi; folders are searched recursively) is read with symusic, falling back to
mido and then to a salvage reader; MusicXML/.mxl/ABC/kern with music21. Drums (channel 10) are left
out; the other tracks merge into one song unless `tracks` picks some. Times become steps
(beats * steps_per_beat), quantized by perform.quantize's rules, leading silence trimmed.
A file that cannot be read is skipped with a one-line reason. Results are cached per file (content
hash + grid settings) in `cache_dir`; files are read in parallel worker processes.
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from perform.tokens import Vocab

from .corpus_cache import FileResult, cache_key, load_entry
from .corpus_music21 import SCORE_SUFFIXES
from .corpus_read import MIDI_SUFFIXES, read_many
from .errors import CorpusError

READ_SUFFIXES = MIDI_SUFFIXES + SCORE_SUFFIXES
MUSIC21_PREFIX = "music21:"     # music21:palestrina names a collection of music21's bundled corpus
DEFAULT_WORKERS = os.cpu_count() or 1     # reader processes: every core
PARALLEL_MIN_FILES = 4          # fewer files than this are read in this process
PROGRESS_MIN_FILES = 50


@dataclass(frozen=True)
class Song:
    name: str            # source file path (and "#track<i>" for a format-2 MIDI pattern)
    ids: np.ndarray      # int64 token ids, BOS ... EOS, perform.tokens.Vocab encoding


@dataclass
class Corpus:
    songs: list[Song]
    skipped: list[tuple[str, str]]          # (file, one-line reason)
    files_ok: int = 0
    notes: int = 0
    tokens: int = 0
    steps: int = 0
    seconds: float = 0.0
    from_cache: int = 0                     # files whose result came from the cache
    vocab: Vocab = field(default_factory=Vocab)
    warnings: list[tuple[str, str]] = field(default_factory=list)   # (file, what was cut/repaired)
    ignored: list[str] = field(default_factory=list)   # files in the folders that are not music files

    def song_ids(self) -> list[np.ndarray]:
        """Every song's ids, in order (a ShardCorpus gives a SongTable of views instead)."""
        return [s.ids for s in self.songs]

    def song_ranges(self) -> np.ndarray | None:
        """Each song's transposition range when known without reading it (None here)."""
        return None

    def summary(self) -> dict:
        """JSON-ready figures: files_ok, files_skipped, songs, notes, tokens, steps, vocab_size,
        seconds, from_cache, files_ignored, ignored [file], skipped [{file, reason}],
        warnings [{file, reason}]."""
        return {
            "files_ok": self.files_ok, "files_skipped": len(self.skipped), "songs": len(self.songs),
            "notes": self.notes, "tokens": self.tokens, "steps": self.steps,
            "vocab_size": self.vocab.size, "seconds": round(self.seconds, 4),
            "from_cache": self.from_cache, "files_ignored": len(self.ignored),
            "ignored": list(self.ignored),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "warnings": [{"file": f, "reason": r} for f, r in self.warnings],
        }


def load_corpus(paths: Sequence[str | Path] | None, vocab: Vocab, *,
                cache_dir: str | Path | None = None, use_cache: bool = True,
                workers: int | None = None, progress: bool = False,
                tracks: Sequence[int] | None = None) -> Corpus:
    """Read every music file under `paths` (None: music21's bundled Bach chorales) into songs.

    `cache_dir` defaults to paths.cache_dir of ./config.toml (or the default); use_cache=False
    reads every file afresh (and refreshes the cache). `workers` processes read files in parallel (default: one per core; 1 = serial).
    `tracks` picks MIDI tracks (0 = the first track chunk) or score parts by index.
    Raises CorpusError when a path does not exist or no file gives any notes.
    """
    started = time.perf_counter()
    ignored: list[str] = []
    files = find_files(paths, ignored)
    if cache_dir is None:
        from perform.config import load_config
        cache_dir = load_config().paths.cache_dir       # ./config.toml when present, else default
    results = read_files(files, vocab, Path(cache_dir), use_cache, workers, progress, tracks)
    corpus = _assemble(results, vocab)
    corpus.ignored = ignored
    corpus.seconds = time.perf_counter() - started
    if not corpus.songs:
        raise CorpusError(_nothing_readable(paths, corpus.skipped))
    return corpus


def find_files(paths: Sequence[str | Path] | None, ignored: list[str] | None = None) -> list[str]:
    """The files to read, sorted; folders searched recursively for READ_SUFFIXES. The other files
    found in folders (hidden ones aside) are appended to `ignored` when it is given."""
    if paths is None:
        return bach_chorales()
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[str] = []
    for given in paths:
        if str(given).startswith(MUSIC21_PREFIX):
            files += music21_collection(str(given)[len(MUSIC21_PREFIX):])
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            files += [str(p) for p in found if p.suffix.lower() in READ_SUFFIXES]
            if ignored is not None:
                ignored += [str(p) for p in found if p.suffix.lower() not in READ_SUFFIXES]
        elif path.is_file():
            files.append(str(path))
        else:
            raise CorpusError(f"corpus path {str(given)!r} does not exist; give MIDI files, "
                              f"music21 scores or folders of them ({_types()})")
    files = list(dict.fromkeys(files))
    if not files:
        shown = [str(p) for p in paths]
        raise CorpusError(f"no music files in {shown}; read are {_types()} (folders recursively)")
    return files


def _music21_corpus_dir() -> Path:
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("music21's bundled corpus needs music21: pip install music21, "
                          "or give MIDI files or folders")
    return Path(list(spec.submodule_search_locations)[0]) / "corpus"


def music21_collections() -> list[str]:
    """The names `music21:NAME` accepts: the folders of music21's bundled corpus with scores in."""
    root = _music21_corpus_dir()
    return sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
                  and any(p.suffix.lower() in SCORE_SUFFIXES for p in d.rglob("*")))


def music21_collection(name: str) -> list[str]:
    """The score files of one collection of music21's bundled corpus, e.g. "palestrina"."""
    if name == "bach":
        return bach_chorales()
    folder = _music21_corpus_dir() / name
    found = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in SCORE_SUFFIXES) \
        if name and folder.is_dir() and not name.startswith(("_", ".")) else []
    if not found:
        raise CorpusError(f"{MUSIC21_PREFIX}{name} is not a collection of music21's corpus; "
                          f"valid: {', '.join(MUSIC21_PREFIX + n for n in music21_collections())}")
    return found


def bach_chorales() -> list[str]:
    """music21's bundled Bach chorales (scores only; its roman-numeral analyses are left out).

    Listed from music21's corpus folder without importing music21 (0.5 s), which is what
    music21.corpus.getComposer("bach") lists; that is the fallback when the folder is not there.
    """
    spec = importlib.util.find_spec("music21")
    if spec is None or not spec.submodule_search_locations:
        raise CorpusError("the default corpus (Bach chorales) needs music21: pip install music21, "
                          "or give MIDI files or folders")
    folder = Path(list(spec.submodule_search_locations)[0]) / "corpus" / "bach"
    if folder.is_dir():
        found = folder.rglob("*")
    else:
        from music21 import corpus as m21corpus
        found = m21corpus.getComposer("bach")
    return sorted(str(p) for p in found if Path(p).suffix.lower() in SCORE_SUFFIXES)


def _types() -> str:
    return " ".join(READ_SUFFIXES)


def _nothing_readable(paths, skipped: list[tuple[str, str]]) -> str:
    shown = "the Bach chorales" if paths is None else [str(p) for p in paths]
    reasons = "; ".join(f"{Path(f).name}: {r}" for f, r in skipped[:5])
    more = f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""
    return (f"nothing readable in {shown}: all {len(skipped)} file(s) were skipped - {reasons}{more}."
            f" Read are {_types()}")


def read_files(files: list[str], vocab: Vocab, cache_dir: Path, use_cache: bool,
                workers: int | None, progress: bool, tracks) -> list[FileResult]:
    """Results in the order of `files`: cache hits first looked up here, the rest read (and saved
    in the cache) by the workers."""
    vocab_dict = vocab.to_dict()
    results: dict[str, FileResult] = {}
    keys: dict[str, str] = {}
    for path in files:
        try:
            keys[path] = cache_key(Path(path).read_bytes(), vocab_dict, tracks)
        except OSError as err:
            results[path] = FileResult(path, skip_reason=f"cannot read the file: {err.strerror or err}")
            continue
        hit = load_entry(cache_dir, keys[path], path) if use_cache else None
        if hit is not None:
            results[path] = hit
    todo = [p for p in files if p not in results]
    workers = DEFAULT_WORKERS if workers is None else max(1, int(workers))
    workers = min(workers, os.cpu_count() or 1, len(todo))
    if len(todo) < PARALLEL_MIN_FILES:
        workers = 1
    bar = _progress_bar(len(todo), progress)

    def done(result: FileResult) -> None:
        results[result.path] = result
        if bar is not None:
            bar.update(1)

    try:
        read_many(todo, vocab_dict, tracks, workers, done, cache_dir, keys)   # workers save entries
    finally:
        if bar is not None:
            bar.close()
    return [results[p] for p in files]


def _progress_bar(total: int, progress: bool):
    if not progress or total < PROGRESS_MIN_FILES:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="file", desc="reading", leave=False)


def _assemble(results: list[FileResult], vocab: Vocab) -> Corpus:
    corpus = Corpus(songs=[], skipped=[], vocab=vocab)
    for result in results:
        corpus.warnings += [(result.path, w) for w in result.warnings]
        if result.skip_reason is not None:
            corpus.skipped.append((result.path, result.skip_reason))
            continue
        corpus.files_ok += 1
        corpus.from_cache += int(result.from_cache)
        for song in result.songs:
            name = f"{result.path}#{song.suffix}" if song.suffix else result.path
            corpus.songs.append(Song(name, song.ids))
            corpus.notes += song.notes
            corpus.tokens += len(song.ids)
            corpus.steps += song.steps
    return corpus
