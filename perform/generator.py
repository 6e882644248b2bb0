"""The model as a player: one grid step at a time, listening (`feed_step`) or playing (`next_step`).

    gen = Generator(Engine(path), Sampler(seed=1))   # BOS fed, step_index 0
    gen.feed_step([Note(0, 60, 4, 90)])              # the player's notes on this step, then STEP
    notes = gen.next_step()                          # the model's notes on the next step
    snap = gen.snapshot(); ...; gen.restore(snap)    # back to a known step, e.g. to re-feed it

Sampling is masked by the token grammar (perform.tokens.TokenReader.allowed): after NOTE only a DUR,
after DUR only a VEL, and at a step's event boundary only a NOTE above the last one, or STEP. EOS is
never drawn: a live instrument does not end the song by itself. Fed notes take the nearest velocity
bin the model was trained on (a chorale corpus has one; a model file that does not say is asked:
`probe_velocity_bins`), so the player's dynamics never become tokens the model never saw.

With a `steering` (perform.steer.Steerer), each draw's logits are biased towards the key, the
player's register and the asked-for density before sampling; `hear_player` tells it what the player
played (once per note: its tracker lives outside the model's state, so restores never recount),
and the notes drawn take the velocity policy's velocities (perform.dynamics: the model's, the
player's level and spread, or fixed); the model's context keeps the velocity bins it drew.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from .sampling import Sampler
from .tokens import BOS, EOS, EXPECT_EVENT, STEP, Note, TokenReader


@dataclass(frozen=True)
class Snapshot:
    """Everything `restore` needs; cheap to keep (the engine's state is never mutated)."""

    state: object
    logits: np.ndarray
    reader: TokenReader
    step_index: int


PROBE_NOTES = ((60, 4), (48, 8), (72, 2), (67, 1))     # (pitch, dur_steps) after BOS
PROBE_MIN_PROBABILITY = 1e-3


def trained_velocity_bins(engine) -> tuple[int, ...]:
    """The velocity bins the model's training corpus had: its metadata `corpus.velocity_bins`, else
    (a model file from before that was recorded) `probe_velocity_bins`. Empty for an engine with no
    metadata at all (a stand-in: then every bin is taken as trained)."""
    metadata = getattr(engine, "metadata", None)
    corpus = (metadata or {}).get("corpus") or {}
    if corpus.get("velocity_bins"):
        return tuple(sorted(int(b) for b in corpus["velocity_bins"]))
    return probe_velocity_bins(engine) if metadata is not None else ()


def probe_velocity_bins(engine) -> tuple[int, ...]:
    """The bins the model gives a probability of at least PROBE_MIN_PROBABILITY to the velocity
    of a first note (a few pitches and durations): a bin its corpus never had gets about 1e-7
    (the shipped chorale model: bin 4 alone, the others <= 1e-6)."""
    v, found = engine.vocab, set()
    for pitch, dur in PROBE_NOTES:
        state = engine.initial_state()
        for token in (BOS, v.note_id(v.fold_pitch(pitch)), v.dur_id(min(dur, v.max_dur_steps))):
            logits, state = engine.step(token, state)
        x = np.asarray(logits[v.vel_base:v.size], dtype=np.float64)
        p = np.exp(x - x.max())
        found.update(int(b) for b in np.flatnonzero(p / p.sum() >= PROBE_MIN_PROBABILITY))
    return tuple(sorted(found))


class Generator:
    def __init__(self, engine, sampler: Sampler, max_notes_per_step: int = 12,
                 steering=None) -> None:
        if max_notes_per_step < 0:
            raise ValueError(f"max_notes_per_step must be >= 0, got {max_notes_per_step}")
        self.engine = engine
        self.sampler = sampler
        self.vocab = engine.vocab
        self.max_notes_per_step = max_notes_per_step
        self._mask = np.zeros(self.vocab.size, dtype=bool)       # reused every draw
        self._no_eos = np.ones(self.vocab.size, dtype=bool)
        self._no_eos[EOS] = False
        self.velocity_bins = trained_velocity_bins(engine)
        self.steering = steering
        if steering is not None:
            steering.use_velocity_bins(self.velocity_bins)
        self.reset()

    def reset(self) -> None:
        """Fresh state with BOS fed; step_index 0; the steering has heard nothing."""
        if self.steering is not None:
            self.steering.reset()
        self._reader = TokenReader(self.vocab)
        self._state = self.engine.initial_state()
        self.step_index = 0
        self._feed(BOS)

    def feed_step(self, notes: Sequence[Note]) -> None:
        """Feed the notes known to start on the current step (their start_step is ignored), in
        rising pitch with one note per pitch (the longest), then STEP."""
        by_pitch: dict[int, Note] = {}
        for note in notes:
            pitch = self.vocab.fold_pitch(note.pitch)
            if pitch not in by_pitch or note.dur_steps > by_pitch[pitch].dur_steps:
                by_pitch[pitch] = note
        for pitch in sorted(by_pitch):
            note = by_pitch[pitch]
            self._feed(self.vocab.note_id(pitch))
            self._feed(self.vocab.dur_id(note.dur_steps))
            self._feed(self.vocab.vel_base + self._trained_bin(note.velocity))
        self._feed(STEP)
        self.step_index += 1
        if self.steering is not None:
            self.steering.tracker.advance_to(self.step_index)

    def hear_player(self, notes: Sequence[Note]) -> None:
        """The player's notes (with their start steps), for the steering's key and register; each
        note once. Without a steering, nothing."""
        if self.steering is not None:
            self.steering.hear(notes)

    def next_step(self) -> list[Note]:
        """Sample one step's notes, then STEP. The notes' start_step is the step_index before the
        call; after max_notes_per_step notes the step is closed."""
        start = self.step_index
        steer = self.steering if self.steering is not None and self.steering.begin_step(start) else None
        notes: list[Note] = []
        while True:
            if len(notes) >= self.max_notes_per_step and self._reader.state == EXPECT_EVENT:
                token = STEP
            else:
                np.logical_and(self._reader.allowed(), self._no_eos, out=self._mask)
                logits = self._logits if steer is None else steer.bias(
                    self._logits, self._reader.state, self._mask)
                token = self.sampler.sample(logits, self._mask)
            note = self._feed(token)
            if note is not None:
                notes.append(replace(note, start_step=start))
            if token == STEP:
                break
        self.step_index += 1
        return notes if self.steering is None else self.steering.voice(notes)

    def snapshot(self) -> Snapshot:
        """The model's state, next-token logits, grammar position and step, to `restore` later."""
        return Snapshot(self._state, self._logits, copy.copy(self._reader), self.step_index)

    def restore(self, snap: Snapshot) -> None:
        """Go back to `snap` (it stays usable: restoring twice gives the same starting point)."""
        self._state, self._logits = snap.state, snap.logits
        self._reader = copy.copy(snap.reader)
        self.step_index = snap.step_index

    def _trained_bin(self, velocity: int) -> int:
        """The velocity bin nearest to `velocity` among those the model was trained on: a velocity
        its corpus never had would be a token it never saw, which throws its context off."""
        wanted = self.vocab.velocity_bin(velocity)
        bins = self.velocity_bins
        if not bins or wanted in bins:
            return wanted
        return min(bins, key=lambda b: (abs(b - wanted), b))

    def _feed(self, token: int) -> Note | None:
        self._logits, self._state = self.engine.step(token, self._state)
        return self._reader.feed(token)
