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
from typing import Iterator, Sequence

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
                  rng: np.random.Generator) -> list[int]:
    """One transposition per song, uniform in [-max_shift, max_shift] cut to the piano range."""
    shifts = []
    for ids in songs:
        lo, hi = vocab.transpose_range(ids)
        lo, hi = max(lo, -max_shift), min(hi, max_shift)
        shifts.append(int(rng.integers(lo, hi + 1)) if hi >= lo else 0)
    return shifts


def stream_batches(songs: Sequence[np.ndarray], *, batch_size: int, seq_len: int,
                   rng: np.random.Generator | None = None, vocab: Vocab | None = None,
                   max_shift: int = 0) -> Iterator[Batch]:
    """Yield an epoch of TBPTT batches.

    With `rng` (training): each song is transposed by its own random shift (given `vocab` and
    `max_shift` > 0); songs much longer than a stream's share are cut into pieces (a piece starts
    from a zero state) so that every stream ends at about the same step; the songs of each stream
    come in a random order. Without `rng` (validation, evaluation): songs stay whole, nothing is
    transposed, and the layout depends only on the songs.
    """
    songs = [np.asarray(s, dtype=np.int64) for s in songs if len(s) >= 2]
    if not songs:
        return
    if rng is not None and vocab is not None and max_shift > 0:
        shifts = random_shifts(songs, vocab, max_shift, rng)
        songs = [vocab.transpose(s, k) for s, k in zip(songs, shifts)]
    rows = min(batch_size, len(songs))
    if rng is not None:
        songs = _cut(songs, rows, seq_len)
    streams = _deal(songs, rows, seq_len)
    if rng is not None:
        streams = [[stream[i] for i in rng.permutation(len(stream))] for stream in streams]
    inputs, targets, reset = _layout(streams, seq_len)
    for k in range(inputs.shape[1]):
        yield Batch(inputs[:, k], targets[:, k], reset[:, k])


def count_batches(songs: Sequence[np.ndarray], batch_size: int, seq_len: int,
                  training: bool = True) -> int:
    """How many batches `stream_batches` yields for these songs (for a progress bar)."""
    songs = [np.asarray(s) for s in songs if len(s) >= 2]
    if not songs:
        return 0
    rows = min(batch_size, len(songs))
    if training:
        songs = _cut(songs, rows, seq_len)
    return max(sum(_chunks(len(s), seq_len) for s in stream) for stream in _deal(songs, rows, seq_len))


def _chunks(song_len: int, seq_len: int) -> int:
    return math.ceil((song_len - 1) / seq_len)


def _cut(songs: list[np.ndarray], rows: int, seq_len: int) -> list[np.ndarray]:
    """Cut songs longer than half a stream's share of chunks into pieces of at most that many
    chunks; consecutive pieces overlap by one token (the last target is the next first input)."""
    share = math.ceil(sum(_chunks(len(s), seq_len) for s in songs) / rows)
    piece = max(1, share // 2) * seq_len
    out = []
    for ids in songs:
        out += [ids[a:a + piece + 1] for a in range(0, len(ids) - 1, piece)]
    return out


def _deal(songs: list[np.ndarray], rows: int, seq_len: int) -> list[list[np.ndarray]]:
    """Longest first, each song to the stream with the fewest chunks so far (streams end close)."""
    heap = [(0, r) for r in range(rows)]
    streams: list[list[np.ndarray]] = [[] for _ in range(rows)]
    for i in sorted(range(len(songs)), key=lambda i: -len(songs[i])):   # stable: ties keep order
        total, r = heapq.heappop(heap)
        streams[r].append(songs[i])
        heapq.heappush(heap, (total + _chunks(len(songs[i]), seq_len), r))
    return streams


def _layout(streams: list[list[np.ndarray]], seq_len: int):
    """Arrays (rows, K, T) of inputs and targets and (rows, K) of resets."""
    rows = len(streams)
    n_chunks = max(sum(_chunks(len(s), seq_len) for s in stream) for stream in streams)
    inputs = np.full((rows, n_chunks * seq_len), PAD, dtype=np.int64)
    targets = np.full((rows, n_chunks * seq_len), PAD, dtype=np.int64)
    reset = np.ones((rows, n_chunks), dtype=bool)   # empty tail chunks: reset, nothing to learn
    for r, stream in enumerate(streams):
        at = 0                                       # chunk index within the row
        for ids in stream:
            n = len(ids) - 1
            start = at * seq_len
            inputs[r, start:start + n] = ids[:-1]
            targets[r, start:start + n] = ids[1:]
            c = _chunks(len(ids), seq_len)
            reset[r, at + 1:at + c] = False
            at += c
    return (inputs.reshape(rows, n_chunks, seq_len), targets.reshape(rows, n_chunks, seq_len), reset)
