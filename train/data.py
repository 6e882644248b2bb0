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


def random_shifts(songs: Sequence[np.ndarray], vocab: Vocab, max_shift: int,
                  rng: np.random.Generator,
                  ranges: Sequence[tuple[int, int]] | None = None) -> list[int]:
    """One transposition per song, uniform in [-max_shift, max_shift] cut to the piano range
    (`ranges`: each song's vocab.transpose_range, when known, so the songs are not read)."""
    shifts = []
    for i, ids in enumerate(songs):
        lo, hi = ranges[i] if ranges is not None else vocab.transpose_range(ids)
        lo, hi = max(lo, -max_shift), min(hi, max_shift)
        shifts.append(int(rng.integers(lo, hi + 1)) if hi >= lo else 0)
    return shifts


def stream_batches(songs: Sequence[np.ndarray], *, batch_size: int, seq_len: int,
                   rng: np.random.Generator | None = None, vocab: Vocab | None = None,
                   max_shift: int = 0, ranges: Sequence[tuple[int, int]] | None = None,
                   rows: slice | None = None, release: Callable[[], None] | None = None,
                   release_every: int = 64) -> Iterator[Batch]:
    """Yield an epoch of TBPTT batches.

    With `rng` (training): each song is transposed by its own random shift (given `vocab` and
    `max_shift` > 0); songs much longer than a stream's share are cut into pieces (a piece starts
    from a zero state) so that every stream ends at about the same step; the songs of each stream
    come in a random order. Without `rng` (validation, evaluation): songs stay whole, nothing is
    transposed, and the layout depends only on the songs.

    Batches are built as they are asked for, one chunk per stream, from the songs as given (any
    integer dtype, memory maps included): memory does not grow with the corpus. `rows` picks some
    of the streams (a distributed rank's share; the layout is the whole batch's, so every rank
    agrees on the number of batches). `release()` is called every `release_every` batches.
    """
    keep = [i for i, s in enumerate(songs) if len(s) >= 2]
    songs = [songs[i] for i in keep]
    if not songs:
        return
    shifts = [0] * len(songs)
    if rng is not None and vocab is not None and max_shift > 0:
        shifts = random_shifts(songs, vocab, max_shift, rng,
                               [ranges[i] for i in keep] if ranges is not None else None)
    n_rows = min(batch_size, len(songs))
    lengths = [len(s) for s in songs]
    pieces = _cut(lengths, n_rows, seq_len) if rng is not None else \
        [(i, 0, n) for i, n in enumerate(lengths)]
    streams = _deal(pieces, n_rows, seq_len)
    if rng is not None:
        streams = [[stream[i] for i in rng.permutation(len(stream))] for stream in streams]
    n_chunks = max(sum(_chunks(b - a, seq_len) for _, a, b in stream) for stream in streams)
    picked = streams[rows] if rows is not None else streams
    note = (vocab.note_base, vocab.dur_base) if vocab is not None else None
    readers = [_row_chunks(stream, songs, shifts, seq_len, note) for stream in picked]
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
    lengths = [len(s) for s in songs if len(s) >= 2]
    if not lengths:
        return 0
    n_rows = min(batch_size, len(lengths))
    pieces = _cut(lengths, n_rows, seq_len) if training else \
        [(i, 0, n) for i, n in enumerate(lengths)]
    return max(sum(_chunks(b - a, seq_len) for _, a, b in stream)
               for stream in _deal(pieces, n_rows, seq_len))


def _chunks(song_len: int, seq_len: int) -> int:
    return math.ceil((song_len - 1) / seq_len)


def _cut(lengths: list[int], rows: int, seq_len: int) -> list[tuple[int, int, int]]:
    """Cut songs longer than half a stream's share of chunks into pieces of at most that many
    chunks; consecutive pieces overlap by one token (the last target is the next first input).
    A piece is (song index, start, stop)."""
    share = math.ceil(sum(_chunks(n, seq_len) for n in lengths) / rows)
    piece = max(1, share // 2) * seq_len
    out = []
    for i, n in enumerate(lengths):
        out += [(i, a, min(a + piece + 1, n)) for a in range(0, n - 1, piece)]
    return out


def _deal(pieces: list[tuple[int, int, int]], rows: int, seq_len: int) -> list[list[tuple[int, int, int]]]:
    """Longest first, each piece to the stream with the fewest chunks so far (streams end close)."""
    heap = [(0, r) for r in range(rows)]
    streams: list[list[tuple[int, int, int]]] = [[] for _ in range(rows)]
    for i in sorted(range(len(pieces)), key=lambda i: -(pieces[i][2] - pieces[i][1])):   # stable
        total, r = heapq.heappop(heap)
        streams[r].append(pieces[i])
        heapq.heappush(heap, (total + _chunks(pieces[i][2] - pieces[i][1], seq_len), r))
    return streams


def _row_chunks(stream, songs, shifts, seq_len: int, note: tuple[int, int] | None):
    """(tokens of the chunk, inputs and the one next target, as int64; does it start a piece) for
    each chunk of one stream, then (None, True) for ever (a finished stream's empty chunks)."""
    for i, a, b in stream:
        for c in range(_chunks(b - a, seq_len)):
            lo = a + c * seq_len
            chunk = np.asarray(songs[i][lo:min(lo + seq_len + 1, b)], dtype=np.int64)
            if shifts[i] and note is not None:
                chunk = np.where((chunk >= note[0]) & (chunk < note[1]), chunk + shifts[i], chunk)
            yield chunk, c == 0
    while True:
        yield None, True
