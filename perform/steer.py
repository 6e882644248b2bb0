"""The player in control: the answer in their key, near their register, busier or sparser (numpy only).

    steerer = Steerer(config.steer, vocab)           # settings: the [steer] table (perform.config)
    steerer.hear(player_notes)                       # the player's finished notes, once each
    steerer.begin_step(step)                         # False: nothing to do this step (all neutral)
    logits = steerer.bias(logits, reader.state, mask)   # a float64 copy to sample from
    notes = steerer.voice(notes)                     # the step's notes at the velocity policy's

What each setting does to one draw's logits (nats are natural-log units of probability):
    key_strength 0..1    NOTEs outside the key's scale lose KEY_NATS * s / (1 - s) nats (0.5: 2 nats,
                         0.75: 6, 0.9: 18); at 1 they are never drawn. The key is `key` ("D minor",
                         "F# major"), else the KeyTracker's estimate once the player played anything.
                         Major: the major scale. Minor: natural minor plus the raised 7th (harmonic
                         minor's leading tone), so a minor-key answer keeps its dominant chord.
    register_follow 0..1 NOTEs lose register_follow * REGISTER_NATS_PER_SEMITONE nats per semitone
                         beyond FREE_SEMITONES from the player's register centre (1: an octave
                         away costs 3 nats).
    density -1..1        at an event boundary (another NOTE or STEP), NOTEs gain density * c nats
                         and STEP loses as much: the log-odds of another note move by
                         2 * c * density, c = DENSITY_NATS_BUSIER above 0 and DENSITY_NATS_SPARSER
                         below (chosen so both ends are audible on the shipped model: notes per
                         beat 2.5, 4.0, 4.5, 4.9, 9.5 for density -1, -0.5, 0, 0.5, 1).
    pitch_temperature    reshapes only which pitch a NOTE is (its logits divided by it, then put
                         back to the NOTEs' total probability), never whether a note comes.
    rhythm_temperature   reshapes the choice between another NOTE and STEP, and the DUR draw.
    velocity             "auto", "model", "player" or "fixed N": how loud the answer plays
                         (perform.dynamics). It never touches a draw: `voice` sets the velocities
                         of the notes drawn, after the model chose them.
Both temperatures multiply the sampler's own. The KeyTracker lives outside the model's state, so a
snapshot restore (perform.context) never counts a note twice.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Iterable

import numpy as np

from .analysis import MAJOR_SCALE, MINOR_SCALE, estimate_key
from .dynamics import VelocityShaper, parse_velocity
from .tokens import EXPECT_DUR, EXPECT_EVENT, STEP, Note

KEY_NATS = 2.0
REGISTER_NATS_PER_SEMITONE = 0.5
FREE_SEMITONES = 6.0
DENSITY_NATS_BUSIER = 1.25
DENSITY_NATS_SPARSER = 2.0

TONIC_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
_LETTERS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])([#b]?)\s*(major|minor)\s*$", re.IGNORECASE)
KEY_FORMS = ('"" (follow the player) or a tonic and a mode, e.g. "D minor", "F# major", '
             '"Bb minor" (tonic A-G with an optional # or b; mode major or minor)')


def parse_key(text: str) -> tuple[int, str] | None:
    """'D minor' -> (2, "minor"); '' -> None (follow the player). Raises ValueError naming the
    accepted forms."""
    if not text.strip():
        return None
    match = _KEY_RE.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a key; expected {KEY_FORMS}")
    letter, accidental, mode = match.groups()
    tonic = _LETTERS[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]
    return tonic % 12, mode.lower()


def key_name(tonic: int, mode: str) -> str:
    return f"{TONIC_NAMES[tonic % 12]} {mode}"


def scale_mask(tonic: int, mode: str) -> np.ndarray:
    """(12,) bool: the pitch classes the instrument counts as in the key (minor: natural minor
    plus the raised 7th)."""
    degrees = MAJOR_SCALE if mode == "major" else MINOR_SCALE + (11,)
    mask = np.zeros(12, dtype=bool)
    mask[[(tonic + d) % 12 for d in degrees]] = True
    return mask


class KeyTracker:
    """The player's recent notes: a pitch-class profile (each note adds its duration in steps to
    its pitch class), a register centre (the mean pitch, each note counted once) and their dynamics
    (the mean and deviation of their velocities, each note once), all decaying with a half-life of
    `half_life_beats`. Time is the step of the latest `advance_to`; a note is weighted by its age
    then, so notes may be heard late or out of order."""

    def __init__(self, half_life_beats: float = 8.0, steps_per_beat: int = 4) -> None:
        if not half_life_beats > 0:
            raise ValueError(f"half_life_beats must be > 0, got {half_life_beats}")
        self.decay_per_step = 0.5 ** (1.0 / (half_life_beats * steps_per_beat))
        self.reset()

    def reset(self) -> None:
        self.step = 0
        self.profile = np.zeros(12)
        self._pitch_sum = self._count = 0.0
        self._vel_sum = self._vel_squares = 0.0

    def hear(self, notes: Iterable[Note]) -> None:
        for n in notes:
            weight = self.decay_per_step ** (self.step - n.start_step)
            self.profile[n.pitch % 12] += n.dur_steps * weight
            self._pitch_sum += n.pitch * weight
            self._count += weight
            self._vel_sum += n.velocity * weight
            self._vel_squares += n.velocity * n.velocity * weight

    def advance_to(self, step: int) -> None:
        """Decay to `step`; an earlier step (a snapshot restored) changes nothing."""
        if step > self.step:
            factor = self.decay_per_step ** (step - self.step)
            self.profile *= factor
            self._pitch_sum *= factor
            self._count *= factor
            self._vel_sum *= factor
            self._vel_squares *= factor
            self.step = step

    def estimate(self) -> tuple[int, str, float] | None:
        """(tonic, mode, confidence: the winning Krumhansl-Kessler correlation), None when nothing
        was heard (or all twelve pitch classes equally)."""
        if not self.profile.sum() > 0:
            return None
        tonic, mode, r = estimate_key(self.profile)
        return None if math.isnan(r) else (tonic, mode, r)

    @property
    def centre(self) -> float | None:
        """The decaying mean pitch of the player's notes; None before any."""
        return self._pitch_sum / self._count if self._count > 0 else None

    @property
    def dynamics(self) -> tuple[float, float] | None:
        """(level, spread): the decaying mean and standard deviation of the player's velocities;
        None before any note."""
        if not self._count > 0:
            return None
        level = self._vel_sum / self._count
        return level, math.sqrt(max(self._vel_squares / self._count - level * level, 0.0))


class Steerer:
    """One generator's steering: the settings (replace them live), the player's KeyTracker, and
    `bias`, which the generator applies to each draw's logits. See the module docstring."""

    def __init__(self, settings, vocab) -> None:
        self.vocab = vocab
        self._notes = slice(vocab.note_base, vocab.dur_base)
        self._durs = slice(vocab.dur_base, vocab.vel_base)
        self._pitches = np.arange(vocab.pitch_min, vocab.pitch_max + 1)
        self.tracker = KeyTracker(settings.key_half_life_beats, vocab.steps_per_beat)
        self.shaper = VelocityShaper(vocab)
        self._note_bias: np.ndarray | None = None
        self.settings = settings

    @property
    def settings(self):
        return self._settings

    @settings.setter
    def settings(self, settings) -> None:
        self._settings = settings
        self.fixed_key = parse_key(settings.key)
        self.velocity_policy = parse_velocity(settings.velocity)
        decay = 0.5 ** (1.0 / (settings.key_half_life_beats * self.vocab.steps_per_beat))
        self.tracker.decay_per_step = decay
        self.neutral = (settings.key_strength == 0 and settings.register_follow == 0
                        and settings.density == 0 and settings.pitch_temperature == 1
                        and settings.rhythm_temperature == 1)

    def hear(self, notes: Iterable[Note]) -> None:
        self.tracker.hear(notes)

    def reset(self) -> None:
        self.tracker.reset()

    def use_velocity_bins(self, bins: Iterable[int]) -> None:
        """The velocity bins the model was trained on (perform.generator: its metadata, or asked of
        the model); "auto" picks "model" for three or more, else "player"."""
        self.shaper = VelocityShaper(self.vocab, tuple(bins))

    def voice(self, notes: list[Note]) -> list[Note]:
        """The notes drawn, at the velocity policy's velocities (perform.dynamics)."""
        if not notes or self.shaper.resolve(self.velocity_policy) == "model":
            return notes
        player = self.tracker.dynamics
        return [replace(n, velocity=self.shaper.velocity(self.velocity_policy, n, player)) for n in notes]

    def describe_velocity(self) -> str:
        """For the status line: 'player 84 sd 12', 'player -' (none heard: the model's), 'model',
        'fixed 100'."""
        return self.shaper.describe(self.velocity_policy, self.tracker.dynamics)

    def key(self) -> tuple[int, str, float] | None:
        """The key steered to: the fixed one (confidence 1.0), else the tracker's estimate."""
        if self.fixed_key is not None:
            return (*self.fixed_key, 1.0)
        return self.tracker.estimate()

    def describe_key(self) -> str:
        """For the status line: 'D minor 0.82', 'D minor fixed', or '-' before any note."""
        if self.fixed_key is not None:
            return f"{key_name(*self.fixed_key)} fixed"
        key = self.tracker.estimate()
        return f"{key_name(key[0], key[1])} {key[2]:.2f}" if key else "-"

    def begin_step(self, step: int) -> bool:
        """Advance the tracker to `step` and prepare this step's NOTE bias; False when every
        setting is neutral (then `bias` need not be called)."""
        self.tracker.advance_to(step)
        if self.neutral:
            return False
        self._note_bias = self._compute_note_bias()
        return True

    def _compute_note_bias(self) -> np.ndarray | None:
        s = self._settings
        bias = np.zeros(self._pitches.size)
        key = self.key() if s.key_strength > 0 else None
        if key is not None:
            penalty = math.inf if s.key_strength >= 1 else KEY_NATS * s.key_strength / (1 - s.key_strength)
            bias[~scale_mask(key[0], key[1])[self._pitches % 12]] -= penalty
        centre = self.tracker.centre if s.register_follow > 0 else None
        if centre is not None:
            beyond = np.maximum(np.abs(self._pitches - centre) - FREE_SEMITONES, 0.0)
            bias -= s.register_follow * REGISTER_NATS_PER_SEMITONE * beyond
        return bias if key is not None or centre is not None else None

    def bias(self, logits: np.ndarray, state: int, mask: np.ndarray) -> np.ndarray:
        """The logits to sample from at grammar position `state` (perform.tokens EXPECT_*), as a
        float64 copy; `logits` is not modified. `mask` is the draw's mask (True = allowed)."""
        s = self._settings
        x = np.array(logits, dtype=np.float64)
        if state == EXPECT_DUR and s.rhythm_temperature != 1:
            x[self._durs] /= s.rhythm_temperature
        if state != EXPECT_EVENT:
            return x
        notes = x[self._notes]                                   # a view
        if self._note_bias is not None:
            notes += self._note_bias
        if s.density:
            nats = s.density * (DENSITY_NATS_BUSIER if s.density > 0 else DENSITY_NATS_SPARSER)
            notes += nats
            x[STEP] -= nats
        if s.pitch_temperature != 1 or s.rhythm_temperature != 1:
            self._event_temperatures(x, mask)
        return x

    def _event_temperatures(self, x: np.ndarray, mask: np.ndarray) -> None:
        notes = x[self._notes]
        allowed = mask[self._notes] & np.isfinite(notes)
        if not allowed.any():
            return
        kept = notes[allowed]
        total = _logsumexp(kept)                                 # log of the NOTEs' total
        if self._settings.pitch_temperature != 1:
            scaled = kept / self._settings.pitch_temperature
            notes[allowed] = total + scaled - _logsumexp(scaled)
        if self._settings.rhythm_temperature != 1 and mask[STEP] and np.isfinite(x[STEP]):
            groups = np.array([total, x[STEP]])
            before = groups - _logsumexp(groups)                 # log P(note), log P(STEP)
            after = before / self._settings.rhythm_temperature
            after -= _logsumexp(after)
            notes[allowed] += after[0] - before[0]
            x[STEP] += after[1] - before[1]


def _logsumexp(values: np.ndarray) -> float:
    top = float(values.max())
    return top + math.log(float(np.exp(values - top).sum()))
