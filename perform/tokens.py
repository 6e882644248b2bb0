"""The instrument's token language.

Time is a grid of steps (default a quarter beat). Each step is the notes that start on it, in rising
pitch, then a step marker:

    NOTE_<pitch> DUR_<steps> VEL_<bin>  ...  STEP

A rest is a lone STEP. A song is BOS, its steps, EOS. Every note keeps its octave, so any chord is
representable and transposition is adding to pitch numbers.

Encoding is exact for notes on the grid within the caps: pitch in [pitch_min, pitch_max] (others are
moved by octaves into range), duration 1..max_dur_steps (longer ones are cut to the cap), velocity
at its bin's centre (others come back as their bin's centre). Two notes of one pitch on one step
are one note: the longer one is kept.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Iterable, Sequence

import numpy as np

from .errors import VocabError

VOCAB_FORMAT_VERSION = 1

PAD, BOS, EOS, STEP = 0, 1, 2, 3
SPECIALS = ("PAD", "BOS", "EOS", "STEP")


@dataclass(frozen=True, order=True)
class Note:
    """One note on the grid. Ordered by start, then pitch."""

    start_step: int
    pitch: int
    dur_steps: int
    velocity: int


@dataclass(frozen=True)
class Vocab:
    """Token ids: the specials, then NOTE_<pitch_min..pitch_max>, DUR_<1..max>, VEL_<0..bins-1>."""

    steps_per_beat: int = 4
    pitch_min: int = 21
    pitch_max: int = 108
    max_dur_steps: int = 32
    velocity_bins: int = 8

    @classmethod
    def from_grid(cls, grid) -> "Vocab":
        """Build from a GridConfig (or anything with the same attributes)."""
        return cls(grid.steps_per_beat, grid.pitch_min, grid.pitch_max, grid.max_dur_steps,
                   grid.velocity_bins)

    # ids ---------------------------------------------------------------------------------------
    @property
    def note_base(self) -> int:
        return len(SPECIALS)

    @property
    def num_pitches(self) -> int:
        return self.pitch_max - self.pitch_min + 1

    @property
    def dur_base(self) -> int:
        return self.note_base + self.num_pitches

    @property
    def vel_base(self) -> int:
        return self.dur_base + self.max_dur_steps

    @property
    def size(self) -> int:
        return self.vel_base + self.velocity_bins

    def __len__(self) -> int:
        return self.size

    @cached_property
    def tokens(self) -> tuple[str, ...]:
        return (SPECIALS
                + tuple(f"NOTE_{p}" for p in range(self.pitch_min, self.pitch_max + 1))
                + tuple(f"DUR_{d}" for d in range(1, self.max_dur_steps + 1))
                + tuple(f"VEL_{b}" for b in range(self.velocity_bins)))

    def note_id(self, pitch: int) -> int:
        return self.note_base + self.fold_pitch(pitch) - self.pitch_min

    def dur_id(self, dur_steps: int) -> int:
        return self.dur_base + min(max(int(dur_steps), 1), self.max_dur_steps) - 1

    def vel_id(self, velocity: int) -> int:
        return self.vel_base + self.velocity_bin(velocity)

    def is_note(self, token: int) -> bool:
        return self.note_base <= token < self.dur_base

    def is_dur(self, token: int) -> bool:
        return self.dur_base <= token < self.vel_base

    def is_vel(self, token: int) -> bool:
        return self.vel_base <= token < self.size

    def pitch_of(self, token: int) -> int:
        return token - self.note_base + self.pitch_min

    def dur_of(self, token: int) -> int:
        return token - self.dur_base + 1

    def velocity_of(self, token: int) -> int:
        return self.bin_velocity(token - self.vel_base)

    # values ------------------------------------------------------------------------------------
    def fold_pitch(self, pitch: int) -> int:
        """Move a pitch by octaves into [pitch_min, pitch_max] (a narrow range may clamp)."""
        while pitch < self.pitch_min and pitch + 12 <= 127:
            pitch += 12
        while pitch > self.pitch_max and pitch - 12 >= 0:
            pitch -= 12
        return min(max(pitch, self.pitch_min), self.pitch_max)

    def velocity_bin(self, velocity: int) -> int:
        """Velocity 1..127 to a bin 0..bins-1 of equal width."""
        v = min(max(int(velocity), 1), 127)
        return min((v - 1) * self.velocity_bins // 127, self.velocity_bins - 1)

    def bin_velocity(self, bin_index: int) -> int:
        """The centre velocity of a bin (what decoding gives back)."""
        lo = -(-127 * bin_index // self.velocity_bins) + 1          # first velocity in the bin
        hi = -(-127 * (bin_index + 1) // self.velocity_bins)        # last velocity in the bin
        return (lo + hi) // 2

    # encode / decode ---------------------------------------------------------------------------
    def encode(self, notes: Iterable[Note], *, bos: bool = True, eos: bool = True) -> np.ndarray:
        """Notes to token ids (int64). Steps run from 0 to the last onset; leading rests are kept."""
        by_step: dict[int, dict[int, Note]] = {}
        for n in notes:
            if n.start_step < 0:
                raise ValueError(f"note {n} starts before step 0; shift the notes first")
            pitch = self.fold_pitch(n.pitch)
            slot = by_step.setdefault(n.start_step, {})
            old = slot.get(pitch)
            if old is None or n.dur_steps > old.dur_steps:
                slot[pitch] = n
        out: list[int] = [BOS] if bos else []
        last = max(by_step, default=-1)
        for step in range(last + 1):
            for pitch, n in sorted(by_step.get(step, {}).items()):
                out += (self.note_id(pitch), self.dur_id(n.dur_steps), self.vel_id(n.velocity))
            out.append(STEP)
        if eos:
            out.append(EOS)
        return np.asarray(out, dtype=np.int64)

    def decode(self, ids: Iterable[int], start_step: int = 0) -> list[Note]:
        """Token ids to notes, sorted. Lenient: an incomplete NOTE/DUR/VEL group is dropped,
        BOS and PAD are ignored, EOS ends the song."""
        reader = TokenReader(self, start_step)
        notes: list[Note] = []
        for token in ids:
            token = int(token)
            if token == EOS:
                break
            note = reader.feed(token)
            if note is not None:
                notes.append(note)
        return sorted(notes)

    def transpose(self, ids: np.ndarray, semitones: int) -> np.ndarray:
        """Shift every NOTE token by `semitones`. Raises ValueError when a pitch leaves the range."""
        ids = np.asarray(ids, dtype=np.int64)
        is_note = (ids >= self.note_base) & (ids < self.dur_base)
        if semitones == 0 or not is_note.any():
            return ids.copy()
        lo, hi = self.transpose_range(ids)
        if not lo <= semitones <= hi:
            raise ValueError(f"transposing by {semitones} leaves the pitch range; allowed {lo}..{hi}")
        return np.where(is_note, ids + semitones, ids)

    def transpose_range(self, ids: np.ndarray) -> tuple[int, int]:
        """The smallest and largest shift that keeps every NOTE in range ((0, 0) when none)."""
        ids = np.asarray(ids)
        notes = ids[(ids >= self.note_base) & (ids < self.dur_base)]
        if notes.size == 0:
            return 0, 0
        return self.note_base - int(notes.min()), self.dur_base - 1 - int(notes.max())

    def describe(self, ids: Iterable[int]) -> list[str]:
        """Token ids to their names, for reading and debugging."""
        return [self.tokens[int(i)] for i in ids]

    # persistence -------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"format_version": VOCAB_FORMAT_VERSION, **asdict(self), "tokens": list(self.tokens)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict) -> "Vocab":
        """Rebuild from `to_dict` output. Raises VocabError for a newer format or a mismatch."""
        if not isinstance(data, dict):
            raise VocabError(f"a vocabulary must be a JSON object, got {type(data).__name__}")
        version = data.get("format_version")
        if not isinstance(version, int) or version > VOCAB_FORMAT_VERSION:
            raise VocabError(f"vocabulary format_version {version!r} is not supported (this lstm-jam "
                             f"reads up to {VOCAB_FORMAT_VERSION}); upgrade lstm-jam or re-export")
        names = ("steps_per_beat", "pitch_min", "pitch_max", "max_dur_steps", "velocity_bins")
        missing = [n for n in names if not isinstance(data.get(n), int)]
        if missing:
            raise VocabError(f"vocabulary lacks whole-number fields {missing}")
        try:
            vocab = cls(**{n: data[n] for n in names})
        except Exception as err:  # noqa: BLE001 - any malformed value
            raise VocabError(f"vocabulary settings are invalid: {err}") from err
        if "tokens" in data and list(data["tokens"]) != list(vocab.tokens):
            raise VocabError("vocabulary token list does not match its settings; the file is corrupt")
        return vocab

    @classmethod
    def from_json(cls, text: str) -> "Vocab":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise VocabError(f"vocabulary is not valid JSON: {err}") from err
        return cls.from_dict(data)


# States of a NOTE DUR VEL group.
EXPECT_EVENT, EXPECT_DUR, EXPECT_VEL = 0, 1, 2


class TokenReader:
    """Reads a token stream one id at a time: tracks the step and completes NOTE DUR VEL groups.

    `feed` returns the Note a VEL token completes, else None. `allowed()` gives the mask of tokens
    that make sense next (used to mask sampling): after NOTE only a DUR, after DUR only a VEL; at
    an event boundary a NOTE higher than the last one on this step, STEP or EOS.
    """

    def __init__(self, vocab: Vocab, start_step: int = 0) -> None:
        self.vocab = vocab
        self.step = start_step
        self.state = EXPECT_EVENT
        self.last_pitch = -1          # highest pitch already started on this step
        self._pitch = 0
        self._dur = 0
        v = vocab
        self._masks = np.zeros((3, v.size), dtype=bool)
        self._masks[EXPECT_EVENT, v.note_base:v.dur_base] = True
        self._masks[EXPECT_EVENT, [STEP, EOS]] = True
        self._masks[EXPECT_DUR, v.dur_base:v.vel_base] = True
        self._masks[EXPECT_VEL, v.vel_base:v.size] = True
        self._event_mask = self._masks[EXPECT_EVENT].copy()

    def allowed(self) -> np.ndarray:
        """Boolean mask over the vocabulary (a view; do not modify)."""
        if self.state != EXPECT_EVENT or self.last_pitch < 0:
            return self._masks[self.state]
        mask = self._event_mask
        mask[:] = self._masks[EXPECT_EVENT]
        mask[self.vocab.note_base:self.vocab.note_id(self.last_pitch) + 1] = False
        return mask

    def feed(self, token: int) -> Note | None:
        v = self.vocab
        if token == STEP:
            self.step += 1
            self.state, self.last_pitch = EXPECT_EVENT, -1
        elif v.is_note(token):
            self._pitch, self.state = v.pitch_of(token), EXPECT_DUR
        elif v.is_dur(token) and self.state == EXPECT_DUR:
            self._dur, self.state = v.dur_of(token), EXPECT_VEL
        elif v.is_vel(token) and self.state == EXPECT_VEL:
            self.state = EXPECT_EVENT
            self.last_pitch = max(self.last_pitch, self._pitch)
            return Note(self.step, self._pitch, self._dur, v.velocity_of(token))
        else:                          # BOS, PAD, or a token out of place: drop the open group
            self.state = EXPECT_EVENT
            if token == BOS:
                self.last_pitch = -1
        return None


def split_songs(ids: Sequence[int]) -> list[np.ndarray]:
    """Split a stream at BOS tokens into songs (each starting with its BOS)."""
    ids = np.asarray(ids, dtype=np.int64)
    starts = list(np.flatnonzero(ids == BOS)) or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    return [ids[a:b] for a, b in zip(starts, starts[1:] + [len(ids)]) if b > a]
