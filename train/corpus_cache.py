"""The corpus cache: one .npz per source file, named by a hash of its bytes and the grid settings.

An entry holds what reading the file gave: its songs' token ids and counts, or the reason it was
skipped (so hostile files are not re-read every run). JSON metadata and the narrowest unsigned
arrays that hold the ids (uint8 for the default vocabulary; read back as int64); loaded with
allow_pickle=False. Writes are atomic (a temporary file renamed into place), so a killed run leaves
no torn entry; an unreadable entry is treated as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

# Bump when reading or quantization changes what a file becomes: old entries are then misses.
READER_VERSION = 2


@dataclass
class SongData:
    suffix: str          # "" for the whole file, "track<i>" for a format-2 pattern
    ids: np.ndarray      # int64 token ids
    notes: int
    steps: int


@dataclass
class FileResult:
    """What one file gave: songs, or a skip reason; warnings say what was cut or repaired."""

    path: str
    songs: list[SongData] = field(default_factory=list)
    skip_reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    from_cache: bool = False
    cacheable: bool = True


def cache_key(data: bytes, vocab_dict: dict, tracks: Sequence[int] | None) -> str:
    """sha256 of the file's bytes, the grid settings, the picked tracks and READER_VERSION."""
    settings = json.dumps({"vocab": vocab_dict, "tracks": list(tracks) if tracks is not None else None,
                           "reader": READER_VERSION}, sort_keys=True)
    digest = hashlib.sha256(data)
    digest.update(b"\0" + settings.encode())
    return digest.hexdigest()


def entry_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / key[:2] / f"{key}.npz"


def load_entry(cache_dir: Path, key: str, path: str) -> FileResult | None:
    """The cached result for `key` (labelled with `path`), or None on a miss or a bad entry."""
    file = entry_path(cache_dir, key)
    try:
        with np.load(file, allow_pickle=False) as npz:
            meta = json.loads(str(npz["meta"]))
            songs = [SongData(s["suffix"], npz[f"ids_{i}"].astype(np.int64), s["notes"], s["steps"])
                     for i, s in enumerate(meta["songs"])]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile):
        return None
    return FileResult(path, songs, meta.get("skip_reason"), meta.get("warnings", []), True)


def _compact(ids: np.ndarray) -> np.ndarray:
    """The ids in the narrowest unsigned type that holds them (read back as int64): an entry is
    then about a byte a token, not eight."""
    ids = np.asarray(ids)
    top = int(ids.max()) if ids.size else 0
    if ids.size and int(ids.min()) < 0:
        return ids
    return ids.astype(np.uint8 if top < 256 else np.uint16 if top < 65536 else np.int64)


def save_entry(cache_dir: Path, key: str, result: FileResult) -> None:
    """Atomically write `result` under `key`. Cache trouble never fails a run: it is ignored."""
    file = entry_path(cache_dir, key)
    meta = {"songs": [{"suffix": s.suffix, "notes": s.notes, "steps": s.steps} for s in result.songs],
            "skip_reason": result.skip_reason, "warnings": result.warnings}
    arrays = {f"ids_{i}": _compact(s.ids) for i, s in enumerate(result.songs)}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".entry.", suffix=".npz", dir=file.parent)
        with os.fdopen(fd, "wb") as out:
            np.savez(out, meta=np.array(json.dumps(meta)), **arrays)
        os.replace(tmp, file)
    except OSError:
        try:
            os.unlink(tmp)
        except (OSError, UnboundLocalError):
            pass
