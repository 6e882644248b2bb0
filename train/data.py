"""Batching for truncated back-propagation through time (numpy only).

Every position of every song is supervised. Songs are dealt to `batch_size` parallel streams
(longest first, each to the stream with the least work so far); each stream is its songs one after
another, every song cut into `seq_len` chunks (its last chunk padded with PAD, never a target). Step k of
an epoch is chunk k of every stream, so row r of consecutive batches is consecutive chunks of the
same song and the LSTM state is carried from one to the next; `reset[r]` marks a row whose chunk
starts a new song (zero that row's state).

    for batch in stream_batches(songs, batch_size=32, seq_len=256, rng=rng, vocab=vocab, max_shift=6):
        batch.inputs, batch.targets   # (B, T) int64
        batch.reset                   # (B,) bool
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import numpy as np

from perform.tokens import PAD, Vocab

from .errors import TrainError


@dataclass(frozen=True)
class Batch:
    inputs: np.ndarray    # (B, T) int64
    targets: np.ndarray   # (B, T) int64; PAD where there is nothing to predict
    reset: np.ndarray     # (B,) bool: this row starts a new song

    @property
    def tokens(self) -> int:
        """Supervised positions in this batch."""
        return int((self.targets != PAD).sum())


def split_by_song(names: Sequence[str], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and validation songs: whole songs, a seeded shuffle.

    At least one song goes each way. Raises TrainError for fewer than two songs.
    """
    n = len(names)
    if n < 2:
        raise TrainError(f"need at least 2 songs to hold some out for validation, got {n}; "
                         "add more MIDI files or folders")
    order = np.random.default_rng(seed).permutation(n)
    n_val = min(max(1, round(n * val_fraction)), n - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


def song_lengths(songs: Sequence[np.ndarray]) -> np.ndarray:
    """Each song's length as an int64 array (a SongTable knows them without touching the songs)."""
    known = getattr(songs, "lengths", None)
    if known is not None:
        return np.asarray(known, dtype=np.int64)
    return np.fromiter((len(s) for s in songs), dtype=np.int64, count=len(songs))


def random_shifts(songs: Sequence[np.ndarray], vocab: Vocab, max_shift: int,
                  rng: np.random.Generator, ranges: np.ndarray | None = None,
                  which: np.ndarray | None = None) -> np.ndarray:
    """One transposition per song (of `which`, default all), uniform in [-max_shift, max_shift]
    cut to the piano range (`ranges`: each song's vocab.transpose_range as an (n, 2) array, when
    known, so the songs are not read)."""
    which = np.arange(len(songs)) if which is None else which
    shifts = np.zeros(len(which), dtype=np.int64)
    for j, i in enumerate(which.tolist()):
        lo, hi = (int(ranges[i][0]), int(ranges[i][1])) if ranges is not None else \
            vocab.transpose_range(songs[i])
        lo, hi = max(lo, -max_shift), min(hi, max_shift)
        shifts[j] = int(rng.integers(lo, hi + 1)) if hi >= lo else 0
    return shifts


def stream_batches(songs: Sequence[np.ndarray], *, batch_size: int, seq_len: int,
                   rng: np.random.Generator | None = None, vocab: Vocab | None = None,
                   max_shift: int = 0, ranges: np.ndarray | None = None,
                   rows: slice | None = None, release: Callable[[], None] | None = None,
                   release_every: int = 64) -> Iterator[Batch]:
    """Yield an epoch of TBPTT batches.

    With `rng` (training): each song is transposed by its own random shift (given `vocab` and
    `max_shift` > 0); songs much longer than a stream's share are cut into pieces (a piece starts
    from a zero state) so that every stream ends at about the same step; the songs of each stream
    come in a random order. Without `rng` (validation, evaluation): songs stay whole, nothing is
    transposed, and the layout depends only on the songs.

    Batches are built as they are asked for, one chunk per stream, from the songs as given (any
    integer dtype, memory maps included; a list or a SongTable), and the layout is held in arrays
    (tens of bytes a song): memory does not grow with the corpus's tokens. `rows` picks some of the
    streams (a distributed rank's share; the layout is the whole batch's, so every rank agrees on
    the number of batches). `release()` is called every `release_every` batches.
    """
    keep = np.flatnonzero(song_lengths(songs) >= 2)
    if keep.size == 0:
        return
    shifts = np.zeros(len(keep), dtype=np.int64)
    if rng is not None and vocab is not None and max_shift > 0:
        shifts = random_shifts(songs, vocab, max_shift, rng, ranges, keep)
    n_rows = min(batch_size, len(keep))
    lengths = song_lengths(songs)[keep]
    pieces = _cut(lengths, n_rows, seq_len) if rng is not None else _whole(lengths)
    streams = _deal(pieces, n_rows, seq_len)
    if rng is not None:
        streams = [stream[rng.permutation(len(stream))] for stream in streams]
    n_chunks = max(int(pieces.chunks[stream].sum()) for stream in streams)
    picked = streams[rows] if rows is not None else streams
    note = (vocab.note_base, vocab.dur_base) if vocab is not None else None
    readers = [_row_chunks(stream, pieces, songs, keep, shifts, seq_len, note) for stream in picked]
    for k in range(n_chunks):
        inputs = np.full((len(readers), seq_len), PAD, dtype=np.int64)
        targets = np.full((len(readers), seq_len), PAD, dtype=np.int64)
        reset = np.ones(len(readers), dtype=bool)
        for r, reader in enumerate(readers):
            chunk, first = next(reader)
            if chunk is not None:
                inputs[r, :len(chunk) - 1] = chunk[:-1]
                targets[r, :len(chunk) - 1] = chunk[1:]
                reset[r] = first
        if release is not None and k % release_every == 0:
            release()
        yield Batch(inputs, targets, reset)
    if release is not None:
        release()


def count_batches(songs: Sequence[np.ndarray], batch_size: int, seq_len: int,
                  training: bool = True) -> int:
    """How many batches `stream_batches` yields for these songs (for a progress bar)."""
    lengths = song_lengths(songs)
    lengths = lengths[lengths >= 2]
    if not lengths.size:
        return 0
    n_rows = min(batch_size, len(lengths))
    pieces = _cut(lengths, n_rows, seq_len) if training else _whole(lengths)
    return max(int(pieces.chunks[stream].sum()) for stream in _deal(pieces, n_rows, seq_len))


@dataclass
class _Pieces:
    """Pieces of songs as arrays: song (index into the kept songs), start, stop; chunks (each
    piece's seq_len chunks) is filled in by _deal."""
    song: np.ndarray
    start: np.ndarray
    stop: np.ndarray
    chunks: np.ndarray | None = None


def _n_chunks(lengths: np.ndarray, seq_len: int) -> np.ndarray:
    return (lengths - 1 + seq_len - 1) // seq_len             # ceil((n - 1) / seq_len)


def _whole(lengths: np.ndarray) -> _Pieces:
    n = len(lengths)
    return _Pieces(np.arange(n), np.zeros(n, dtype=np.int64), lengths.copy())


def _cut(lengths: np.ndarray, rows: int, seq_len: int) -> _Pieces:
    """Cut songs longer than half a stream's share of chunks into pieces of at most that many
    chunks; consecutive pieces overlap by one token (the last target is the next first input)."""
    share = math.ceil(int(_n_chunks(lengths, seq_len).sum()) / rows)
    piece = max(1, share // 2) * seq_len
    count = (lengths - 1 + piece - 1) // piece                 # pieces per song: starts 0, piece, ...
    song = np.repeat(np.arange(len(lengths)), count)
    first = np.repeat(np.cumsum(count) - count, count)
    start = (np.arange(len(song)) - first) * piece
    stop = np.minimum(start + piece + 1, lengths[song])
    return _Pieces(song, start, stop)


def _deal(pieces: _Pieces, rows: int, seq_len: int) -> list[np.ndarray]:
    """Longest first, each piece to the stream with the fewest chunks so far (streams end close).
    Returns each stream's piece indices in dealing order; fills in pieces.chunks."""
    length = pieces.stop - pieces.start
    chunks = _n_chunks(length, seq_len)
    pieces.chunks = chunks
    order = np.argsort(-length, kind="stable")                 # stable: ties keep song order
    row_of = np.empty(len(order), dtype=np.int64)
    heap = [(0, r) for r in range(rows)]
    for j, c in enumerate(chunks[order].tolist()):
        total, r = heapq.heappop(heap)
        row_of[j] = r
        heapq.heappush(heap, (total + c, r))
    return [order[row_of == r] for r in range(rows)]


def _row_chunks(stream: np.ndarray, pieces: _Pieces, songs, keep: np.ndarray, shifts: np.ndarray,
                seq_len: int, note: tuple[int, int] | None):
    """(tokens of the chunk, inputs and the one next target, as int64; does it start a piece) for
    each chunk of one stream, then (None, True) for ever (a finished stream's empty chunks)."""
    for p in stream.tolist():
        i, a, b = int(pieces.song[p]), int(pieces.start[p]), int(pieces.stop[p])
        ids, shift = songs[int(keep[i])], int(shifts[i])
        for c in range(int(pieces.chunks[p])):
            lo = a + c * seq_len
            chunk = np.asarray(ids[lo:min(lo + seq_len + 1, b)], dtype=np.int64)
            if shift and note is not None:
                chunk = np.where((chunk >= note[0]) & (chunk < note[1]), chunk + shift, chunk)
            yield chunk, c == 0
    while True:
        yield None, True
