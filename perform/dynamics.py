"""Dynamics: how loud the answer plays, the `[steer] velocity` policy (numpy only).

    policy = parse_velocity("fixed 100")              # ("fixed", 100); or "auto", "model", "player"
    shaper = VelocityShaper(vocab, trained_bins)      # the bins the model's corpus had (perform.generator)
    shaper.velocity(policy, note, player)             # player: (level, spread) of the player, or None

    model    the model's own VEL draws (the centre velocity of each drawn bin).
    player   the player's recent level and spread (a decaying mean and standard deviation of their
             note velocities: perform.steer.KeyTracker.dynamics), keeping the model's accents: a note
             the model drew k deviations above the centre of its trained bins plays k of the
             player's deviations above their level. A model trained on one bin has no accents: its
             notes take the player's level, each moved by a fixed pseudo-random amount (per step and
             pitch, so a take replays exactly) with half the player's spread. Before the player
             played anything, the model's velocities.
    fixed N  every note at N (1..127).
    auto     "model" when the model's corpus had dynamics (3 or more velocity bins), else "player".
"""

from __future__ import annotations

import numpy as np

from .tokens import Note

SIMPLE_POLICIES = ("auto", "model", "player")
VELOCITY_FORMS = '"auto", "model", "player" or "fixed N" with N a velocity 1..127, e.g. "fixed 100"'
DYNAMIC_BINS = 3            # a corpus with at least this many velocity bins had dynamics
ONE_BIN_SPREAD = 0.5        # a one-bin model's notes: this share of the player's spread ...
MAX_JITTER = 2.0            # ... times a normal draw cut to +-2


def parse_velocity(text: str) -> tuple[str, int | None]:
    """'player' -> ("player", None); 'fixed 100' -> ("fixed", 100). Raises ValueError naming the
    accepted forms."""
    words = text.lower().split()
    if len(words) == 1 and words[0] in SIMPLE_POLICIES:
        return words[0], None
    if len(words) == 2 and words[0] == "fixed" and words[1].isdigit() and 1 <= int(words[1]) <= 127:
        return "fixed", int(words[1])
    raise ValueError(f"{text!r} is not a velocity policy; expected {VELOCITY_FORMS}")


def _jitter(step: int, pitch: int) -> float:
    """A standard normal draw (cut to +-MAX_JITTER) fixed by the note's step and pitch."""
    z = np.random.default_rng([max(int(step), 0), int(pitch) & 0x7F]).standard_normal()
    return float(np.clip(z, -MAX_JITTER, MAX_JITTER))


class VelocityShaper:
    """The velocities of the model's trained bins (their centre and spread) and the policy's
    arithmetic. `trained_bins` empty: every bin of the vocabulary."""

    def __init__(self, vocab, trained_bins=()) -> None:
        self.bins = tuple(trained_bins) or tuple(range(vocab.velocity_bins))
        centres = np.array([vocab.bin_velocity(b) for b in self.bins], dtype=float)
        self.centre, self.spread = float(centres.mean()), float(centres.std())
        self.auto = "model" if len(self.bins) >= DYNAMIC_BINS else "player"

    def resolve(self, policy: tuple[str, int | None]) -> str:
        """"auto" -> "model" or "player" for this model; the others as they are."""
        return self.auto if policy[0] == "auto" else policy[0]

    def velocity(self, policy: tuple[str, int | None], note: Note,
                 player: tuple[float, float] | None) -> int:
        """The velocity `note` (as the model drew it) plays at, 1..127."""
        kind = self.resolve(policy)
        if kind == "fixed":
            return int(policy[1])
        if kind == "model" or player is None:
            return note.velocity
        level, spread = player
        if self.spread > 0:
            z = (note.velocity - self.centre) / self.spread
        else:
            z = ONE_BIN_SPREAD * _jitter(note.start_step, note.pitch)
        return int(min(max(round(level + z * spread), 1), 127))

    def describe(self, policy: tuple[str, int | None], player: tuple[float, float] | None) -> str:
        """For the status line: 'model', 'fixed 100', 'player 84 sd 12', 'player -' (none heard)."""
        kind = self.resolve(policy)
        if kind == "fixed":
            return f"fixed {policy[1]}"
        if kind == "player":
            return f"player {player[0]:.0f} sd {player[1]:.0f}" if player else "player -"
        return "model"
