"""Prepared corpora as token shards: written once, resumable, read back through memory maps.

    python -m train prepare songs/ --out-shards shards/      # writes (or finishes) shards/
    python -m train shards/ --out runs/big                   # trains from the shards

A shard folder holds
    manifest.json            format, vocabulary, tracks, reader version, sources, the shard list and
                             `complete` (false while a prepare is under way or was killed)
    shard-NNNNN.tokens       the token ids of its songs back to back, raw uint8 (a vocabulary of at
                             most 256 tokens) or uint16, little-endian
    shard-NNNNN.index.npy    int64 (songs, 4): offset, length, lowest and highest transposition
    shard-NNNNN.json         its files in order, each with its result (songs, skip reason, warnings),
                             its songs' names, notes and steps; written last: a shard is done when
                             its .json exists

Each shard is the next `shard_files` files (in the sorted order of `find_files`), read as
`load_corpus` reads them (the per-file cache, the workers, the salvage reader), so a shard's content
does not depend on the number of workers. A killed prepare loses at most the shard being written:
run the same command again and the files of finished shards are not opened again.

Reading maps each .tokens file; a song is a view into the map, nothing is copied. `release()` drops
the mapped pages from this process (the operating system's file cache keeps them), so resident
memory stays flat however large the corpus is.
"""

from __future__ import annotations

import json
import mmap
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence as SequenceABC
from typing import Callable, Iterable, Sequence

import numpy as np

from perform.tokens import Vocab

from .corpus import READ_SUFFIXES, Corpus, Song, read_files, find_files
from .corpus_cache import READER_VERSION, FileResult
from .errors import CorpusError

FORMAT = "lstm-jam-shards"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DEFAULT_SHARD_FILES = 2000


def is_shard_dir(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def token_dtype(vocab: Vocab) -> np.dtype:
    if vocab.size <= 256:
        return np.dtype(np.uint8)
    if vocab.size <= 65536:
        return np.dtype("<u2")
    raise CorpusError(f"a vocabulary of {vocab.size} tokens does not fit uint16 shards; "
                      "use fewer velocity bins or a shorter max_dur_steps")


# writing --------------------------------------------------------------------------------------


@dataclass
class ShardReport:
    """What `prepare_shards` did: the corpus-wide figures (all shards) and this run's share."""

    out_dir: Path
    shards: int = 0
    files: int = 0                 # files the folder holds results for
    files_earlier: int = 0         # of those, done by an earlier (killed) run: not opened again
    files_ok: int = 0
    songs: int = 0
    notes: int = 0
    tokens: int = 0
    steps: int = 0
    from_cache: int = 0
    seconds: float = 0.0
    vocab_size: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The keys of Corpus.summary() plus out_shards, shards, files_earlier, files_read."""
        return {
            "files_ok": self.files_ok, "files_skipped": len(self.skipped), "songs": self.songs,
            "notes": self.notes, "tokens": self.tokens, "steps": self.steps,
            "vocab_size": self.vocab_size, "seconds": round(self.seconds, 4),
            "from_cache": self.from_cache, "files_ignored": len(self.ignored),
            "ignored": list(self.ignored),
            "skipped": [{"file": f, "reason": r} for f, r in self.skipped],
            "warnings": [{"file": f, "reason": r} for f, r in self.warnings],
            "out_shards": str(self.out_dir), "shards": self.shards,
            "files_earlier": self.files_earlier, "files_read": self.files - self.files_earlier,
        }


def prepare_shards(paths: Sequence[str | Path] | None, vocab: Vocab, out_dir: str | Path, *,
                   cache_dir: str | Path, use_cache: bool = True, workers: int | None = None,
                   progress: bool = False, tracks: Sequence[int] | None = None,
                   shard_files: int = DEFAULT_SHARD_FILES,
                   on_shard: Callable[[int], None] | None = None) -> ShardReport:
    """Write (or finish) the shards of every music file under `paths` into `out_dir`.

    A folder prepared earlier with other settings (grid, tracks, reader version) is refused with a
    CorpusError; one left by a killed run is continued. `on_shard(n)` is called after shard n is
    written (the tests kill a run there). Raises CorpusError when nothing gives any notes.
    """
    started = time.perf_counter()
    out = Path(out_dir)
    if shard_files < 1:
        raise CorpusError(f"--shard-files {shard_files} is not a number of files; give 1 or more "
                          f"(default {DEFAULT_SHARD_FILES})")
    token_dtype(vocab)
    ignored: list[str] = []
    files = find_files(paths, ignored)
    settings = _settings(vocab, tracks)
    manifest = _open_manifest(out, settings, paths)
    done = _finished_shards(out)
    done_files = {f["path"] for shard in done for f in _shard_meta(out, shard)["files"]}
    earlier = len(done_files)
    todo = [f for f in files if f not in done_files]
    manifest["complete"] = False
    _write_json(out / MANIFEST, manifest)
    bar = _progress_bar(len(todo), progress)
    number = (max(done) + 1) if done else 0
    try:
        for at in range(0, len(todo), shard_files):
            batch = todo[at:at + shard_files]
            results = read_files(batch, vocab, Path(cache_dir), use_cache, workers, False, tracks)
            _write_shard(out, number, results, vocab)
            done.append(number)
            if bar is not None:
                bar.update(len(batch))
            if on_shard is not None:
                on_shard(number)
            number += 1
    finally:
        if bar is not None:
            bar.close()
    report = _report(out, sorted(done), vocab)
    report.files_earlier, report.ignored = earlier, ignored
    if not report.songs:
        raise CorpusError(f"nothing readable in {[str(p) for p in paths] if paths else 'the Bach chorales'}"
                          f": all {len(report.skipped)} file(s) were skipped (first: "
                          f"{'; '.join(f'{Path(f).name}: {r}' for f, r in report.skipped[:3])}). "
                          f"Read are {' '.join(READ_SUFFIXES)}")
    manifest.update(complete=True, shards=[_shard_name(n) for n in sorted(done)],
                    songs=report.songs, tokens=report.tokens, files=report.files)
    _write_json(out / MANIFEST, manifest)
    report.seconds = time.perf_counter() - started
    return report


def write_shards(out_dir: str | Path, vocab: Vocab, batches: Iterable[list[FileResult]],
                 sources: Sequence[str], tracks: Sequence[int] | None = None) -> Path:
    """A complete shard folder from batches of file results, one shard per batch: for tools and
    benchmarks that make their tokens themselves. `out_dir` must be new or empty."""
    out = Path(out_dir)
    token_dtype(vocab)
    manifest = _open_manifest(out, _settings(vocab, tracks), list(sources) or ["(written directly)"])
    if _finished_shards(out):
        raise CorpusError(f"{out} already holds shards; give a new folder")
    numbers = []
    for number, results in enumerate(batches):
        _write_shard(out, number, results, vocab)
        numbers.append(number)
    report = _report(out, numbers, vocab)
    manifest.update(complete=True, shards=[_shard_name(n) for n in numbers], songs=report.songs,
                    tokens=report.tokens, files=report.files)
    _write_json(out / MANIFEST, manifest)
    return out


def _settings(vocab: Vocab, tracks: Sequence[int] | None) -> dict:
    return {"vocab": vocab.to_dict(), "tracks": list(tracks) if tracks is not None else None,
            "reader_version": READER_VERSION, "dtype": token_dtype(vocab).str}


def _open_manifest(out: Path, settings: dict, paths) -> dict:
    """The folder's manifest: a new one, or the one there when its settings match."""
    if (out / MANIFEST).is_file():
        manifest = _read_manifest(out)
        for key, value in settings.items():
            if manifest.get(key) != value:
                raise CorpusError(f"{out} holds shards prepared with other {_what(key)}; "
                                  "give a new --out-shards folder, or delete this one")
        for stale in out.glob(".*.tmp"):            # writes a kill interrupted (never renamed)
            stale.unlink(missing_ok=True)
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CorpusError(f"--out-shards {out} exists and is not a shard folder; give a new or "
                          "empty folder")
    out.mkdir(parents=True, exist_ok=True)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, **settings,
            "sources": [str(p) for p in paths] if paths else ["music21:bach"], "complete": False,
            "shards": []}


def _what(key: str) -> str:
    return {"vocab": "grid settings ([grid])", "tracks": "--tracks",
            "reader_version": "reader version (an older lstm-jam)",
            "dtype": "token width"}.get(key, key)


def _shard_name(number: int) -> str:
    return f"shard-{number:05d}"


def _finished_shards(out: Path) -> list[int]:
    """Numbers of the shards whose .json (written last) exists."""
    return sorted(int(p.name[6:11]) for p in out.glob("shard-[0-9][0-9][0-9][0-9][0-9].json"))


def _write_shard(out: Path, number: int, results: list[FileResult], vocab: Vocab) -> None:
    """Tokens, then index, then the .json that marks the shard done; each written atomically."""
    dtype = token_dtype(vocab)
    name = _shard_name(number)
    files, songs, index, arrays, offset = [], [], [], [], 0
    for result in results:
        entry = {"path": result.path, "songs": len(result.songs), "from_cache": result.from_cache}
        if result.skip_reason is not None:
            entry["skip_reason"] = result.skip_reason
        if result.warnings:
            entry["warnings"] = list(result.warnings)
        files.append(entry)
        for song in result.songs:
            ids = np.asarray(song.ids)
            lo, hi = vocab.transpose_range(ids)
            index.append((offset, len(ids), lo, hi))
            arrays.append(ids.astype(dtype))
            songs.append({"name": f"{result.path}#{song.suffix}" if song.suffix else result.path,
                          "notes": song.notes, "steps": song.steps})
            offset += len(ids)
    tokens = np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)
    _atomic(out / f"{name}.tokens", tokens.tobytes())
    index_array = np.asarray(index, dtype=np.int64).reshape(-1, 4)
    _atomic_npy(out / f"{name}.index.npy", index_array)
    _write_json(out / f"{name}.json", {"files": files, "songs": songs, "tokens": int(offset)})


def _atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    import io
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    _atomic(path, buf.getvalue())


def _write_json(path: Path, data: dict) -> None:
    _atomic(path, json.dumps(data).encode())


def _progress_bar(total: int, progress: bool):
    if not progress or total < 50:
        return None
    from tqdm import tqdm
    return tqdm(total=total, unit="file", desc="preparing shards", leave=False, file=sys.stderr)


def _read_manifest(out: Path) -> dict:
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError) as err:
        raise CorpusError(f"{out / MANIFEST} cannot be read ({err}); prepare the shards again into "
                          "a new folder") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorpusError(f"{out / MANIFEST} is not an lstm-jam shard manifest; prepare shards with "
                          "`python -m train prepare PATH --out-shards DIR`")
    if manifest.get("format_version", 0) > FORMAT_VERSION:
        raise CorpusError(f"{out} has shard format {manifest.get('format_version')}; this lstm-jam "
                          f"reads up to {FORMAT_VERSION}: upgrade lstm-jam or prepare again")
    return manifest


def _shard_meta(out: Path, number: int) -> dict:
    path = out / f"{_shard_name(number)}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorpusError(f"{path} cannot be read ({err}); delete it and its .tokens and .index.npy, "
                          "then run the prepare command again to rewrite that shard") from err


def _report(out: Path, numbers: list[int], vocab: Vocab) -> ShardReport:
    report = ShardReport(out, shards=len(numbers), vocab_size=vocab.size)
    for number in numbers:
        meta = _shard_meta(out, number)
        for f in meta["files"]:
            report.files += 1
            report.warnings += [(f["path"], w) for w in f.get("warnings", [])]
            if "skip_reason" in f:
                report.skipped.append((f["path"], f["skip_reason"]))
            else:
                report.files_ok += 1
                report.from_cache += int(f.get("from_cache", False))
        report.songs += len(meta["songs"])
        report.notes += sum(s["notes"] for s in meta["songs"])
        report.steps += sum(s["steps"] for s in meta["songs"])
        report.tokens += int(meta["tokens"])
    return report


# reading --------------------------------------------------------------------------------------


class SongTable(SequenceABC):
    """Songs as views into memory-mapped token arrays, held as three arrays (20 bytes a song):
    table[i] is song i's ids (a view, nothing copied), table.lengths every length,
    table.take(indices) a smaller table."""

    def __init__(self, tokens: list[np.ndarray], shard: np.ndarray, offset: np.ndarray,
                 length: np.ndarray) -> None:
        self.tokens, self.shard, self.offset, self.length = tokens, shard, offset, length

    def __len__(self) -> int:
        return len(self.offset)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        start = int(self.offset[i])
        return self.tokens[int(self.shard[i])][start:start + int(self.length[i])]

    @property
    def lengths(self) -> np.ndarray:
        return self.length

    def take(self, indices) -> "SongTable":
        idx = np.asarray(indices, dtype=np.int64)
        return SongTable(self.tokens, self.shard[idx], self.offset[idx], self.length[idx])


class _ShardSongs(SequenceABC):
    """corpus.songs of a ShardCorpus: Song(name, ids) made when asked for (names read once, on
    first use, from the shards' .json files)."""

    def __init__(self, corpus: "ShardCorpus") -> None:
        self.corpus = corpus
        self._names: list[str] | None = None

    def __len__(self) -> int:
        return len(self.corpus.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(len(self))[i]]
        if self._names is None:
            self._names = [song["name"] for name in self.corpus.shard_names
                           for song in _shard_meta(self.corpus.path, int(name[6:11]))["songs"]]
        return Song(self._names[i], self.corpus.table[i])


class ShardCorpus(Corpus):
    """A Corpus whose songs are views into memory-mapped shards (see `open_shards`). For
    training, `song_ids()` and `song_ranges()` give them as arrays, with no object per song."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.maps: list[mmap.mmap] = []
        self.table = SongTable([], np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64))
        self.ranges = np.zeros((0, 2), dtype=np.int64)   # each song's transpose_range
        self.path: Path = Path()
        self.shard_names: list[str] = []

    def song_ids(self) -> SongTable:
        return self.table

    def song_ranges(self) -> np.ndarray:
        return self.ranges

    def release(self) -> None:
        """Drop the pages of the shards from this process's resident memory (they stay in the
        operating system's file cache; the next read maps them back)."""
        for mm in self.maps:
            try:
                mm.madvise(mmap.MADV_DONTNEED)
            except (AttributeError, OSError, ValueError):
                pass


def open_shards(path: str | Path, vocab: Vocab) -> ShardCorpus:
    """Map the shards in `path`. Raises CorpusError when the folder is incomplete, prepared with
    another grid than `vocab`'s, or damaged."""
    out = Path(path)
    manifest = _read_manifest(out)
    if not manifest.get("complete"):
        raise CorpusError(f"{out} is not complete: its prepare was interrupted; run the same "
                          "`python -m train prepare ... --out-shards` command again to finish it")
    if manifest.get("vocab") != vocab.to_dict():
        theirs = Vocab.from_dict(manifest["vocab"])
        raise CorpusError(f"{out} was prepared with another grid (steps_per_beat="
                          f"{theirs.steps_per_beat}, max_dur_steps={theirs.max_dur_steps}, velocity_bins="
                          f"{theirs.velocity_bins}, vocabulary {theirs.size}) than this run's "
                          f"({vocab.steps_per_beat}, {vocab.max_dur_steps}, {vocab.velocity_bins}, "
                          f"{vocab.size}); train with that [grid] (--set grid.KEY=VALUE) or prepare "
                          "the shards again with this one")
    dtype = np.dtype(manifest["dtype"])
    corpus = ShardCorpus(songs=[], skipped=[], vocab=vocab)
    corpus.path = out
    tokens, shard, indices = [], [], []
    for name in manifest["shards"]:
        meta = _shard_meta(out, int(name[6:11]))
        for f in meta["files"]:
            corpus.warnings += [(f["path"], w) for w in f.get("warnings", [])]
            if "skip_reason" in f:
                corpus.skipped.append((f["path"], f["skip_reason"]))
            else:
                corpus.files_ok += 1
        if not meta["songs"]:
            continue
        try:
            index = np.load(out / f"{name}.index.npy", allow_pickle=False)
            with open(out / f"{name}.tokens", "rb") as fh:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError) as err:
            raise CorpusError(f"shard {out / name} cannot be read ({err}); prepare the shards again") \
                from err
        mapped = np.frombuffer(mm, dtype=dtype)
        if index.shape != (len(meta["songs"]), 4) or len(mapped) != meta["tokens"] or \
                (len(index) and int((index[:, 0] + index[:, 1]).max()) > len(mapped)):
            raise CorpusError(f"shard {out / name} is damaged (its index, tokens and .json disagree); "
                              "prepare the shards again")
        corpus.maps.append(mm)
        corpus.shard_names.append(name)
        shard.append(np.full(len(index), len(tokens), dtype=np.int32))
        tokens.append(mapped)
        indices.append(index)
        corpus.notes += sum(song["notes"] for song in meta["songs"])
        corpus.steps += sum(song["steps"] for song in meta["songs"])
        corpus.tokens += len(mapped)
    if not indices:
        raise CorpusError(f"{out} holds no songs; prepare it from music files with notes")
    index = np.concatenate(indices)
    corpus.table = SongTable(tokens, np.concatenate(shard), index[:, 0].copy(), index[:, 1].copy())
    corpus.ranges = index[:, 2:4].copy()
    corpus.songs = _ShardSongs(corpus)
    return corpus
