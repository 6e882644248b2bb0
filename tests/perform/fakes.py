"""Fakes for the live loop: a clock, a port that records what it gets, a deterministic generator,
an engine with flat logits."""

from __future__ import annotations

import heapq
import itertools

import mido
import numpy as np
from mido.ports import BaseIOPort

from perform.tokens import Note, Vocab


class FakeClock:
    """now()/sleep() on invented time. Actions scheduled with `at` run when time reaches them; a
    sleep that reaches an action returns early at its time, as the real loop wakes on input."""

    def __init__(self, t0_s: float = 100.0) -> None:
        self.t = t0_s
        self._actions: list = []
        self._seq = itertools.count()
        self.sleeps = 0

    def now(self) -> float:
        return self.t

    def at(self, time_s: float, action) -> None:
        heapq.heappush(self._actions, (time_s, next(self._seq), action))

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        target = self.t + max(seconds, 0.0)
        if self._actions and self._actions[0][0] <= target:
            time_s, _, action = heapq.heappop(self._actions)
            self.t = max(self.t, time_s)
            action()
            return
        self.t = target


class FakePort(BaseIOPort):
    """Records (time_s, message) for everything sent; can be told to fail."""

    def __init__(self, clock: FakeClock, fail_after: int | None = None, failures: int = 10**9) -> None:
        self.clock = clock
        self.sent: list[tuple[float, mido.Message]] = []
        self.fail_after = fail_after      # fail once this many messages were sent ...
        self.failures = failures          # ... this many times, then work again
        super().__init__("fake")

    def _send(self, msg: mido.Message) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after and self.failures > 0:
            self.failures -= 1
            raise OSError("port vanished")
        self.sent.append((self.clock.now(), msg))

    def notes_on(self) -> list[tuple[float, int]]:
        return [(t, m.note) for t, m in self.sent if m.type == "note_on" and m.velocity > 0]

    def sounding_after(self) -> set[tuple[int, int]]:
        """(channel, pitch) still on at the end: only its note-off ends a note (see sounding)."""
        return sounding(m for _, m in self.sent)


def sounding(messages) -> set[tuple[int, int]]:
    """(channel, pitch) still on after replaying `messages`. Only a note-off (or a velocity-0
    note-on) for that channel and pitch ends a note: all-notes-off (CC 123) does not, because many
    synths ignore it, so every exit must send a note-off for every note it left sounding."""
    on: set[tuple[int, int]] = set()
    for m in messages:
        if m.type == "note_on" and m.velocity > 0:
            on.add((m.channel, m.note))
        elif m.type in ("note_on", "note_off"):
            on.discard((m.channel, m.note))
    return on


class FakeSampler:
    def __init__(self) -> None:
        self.temperature = 1.0


class FakeGenerator:
    """Plays `pattern(step)` -> [(pitch, dur_steps, velocity)]; default one note a step.
    Keeps the context it was given so tests can check what the model heard."""

    def __init__(self, pattern=None, fail_at_step: int | None = None) -> None:
        self.pattern = pattern or (lambda step: [(60 + step % 12, 1, 80)])
        self.fail_at_step = fail_at_step
        self.sampler = FakeSampler()
        self.step_index = 0
        self.context: list[tuple[int, tuple[Note, ...], str]] = []
        self.restores = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.step_index = 0
        self.context = []

    def feed_step(self, notes) -> None:
        self.context.append((self.step_index, tuple(notes), "fed"))
        self.step_index += 1

    def next_step(self) -> list[Note]:
        step = self.step_index
        if self.fail_at_step is not None and step >= self.fail_at_step:
            raise RuntimeError("model exploded")
        notes = [Note(step, p, d, v) for p, d, v in self.pattern(step)]
        self.context.append((step, tuple(notes), "gen"))
        self.step_index += 1
        return notes

    def snapshot(self):
        return (self.step_index, len(self.context))

    def restore(self, snap) -> None:
        self.restores += 1
        self.step_index, length = snap
        del self.context[length:]

    def heard(self) -> dict[int, tuple[Note, ...]]:
        """step -> notes in the model's context now."""
        return {step: notes for step, notes, _ in self.context}


class FlatEngine:
    """A model with no opinion: every token equally likely, whatever came before."""

    vocab = Vocab()

    def initial_state(self):
        return 0

    def step(self, token, state):
        return np.zeros(self.vocab.size, np.float32), state + 1
