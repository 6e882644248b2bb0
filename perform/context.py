"""Keeps the model's context equal to what was heard, re-running it from a snapshot when needed.

The generator consumes one step at a time: either sampled (`next_step`, the instrument's notes) or
fed (`feed_step`, notes known from elsewhere). What was *heard* on a step can change after the
generator went past it: the player's note arrives a little after the tick, a held note's duration
becomes known on release, the instrument's answer is cut short. Before each new step the folder
compares what was heard with what the generator consumed, restores the snapshot taken before the
first step that differs and feeds the steps since (DESIGN.md: "keep a state snapshot at the last
fully-known step... re-run the model from that snapshot").
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

from .quantize import merge_same_step
from .tokens import Note


def normalize(notes: Sequence[Note], step: int) -> tuple[Note, ...]:
    """One canonical form per step: start_step set, one note per pitch, rising pitch."""
    if not notes:
        return ()
    if len(notes) == 1 and notes[0].start_step == step:
        return (notes[0],)
    return tuple(merge_same_step(Note(step, n.pitch, n.dur_steps, n.velocity) for n in notes))


class ContextFolder:
    """Wraps a Generator (perform.generator API: step_index, feed_step, next_step, snapshot,
    restore, reset). Steps are counted from the generator's step 0."""

    def __init__(self, generator, keep_steps: int = 64) -> None:
        self.generator = generator
        self.keep_steps = keep_steps      # how far back a re-run may start
        self.consumed: dict[int, tuple[Note, ...]] = {}
        self.snapshots: dict[int, object] = {}      # step -> state before that step
        self.reruns = 0
        self.rerun_steps = 0
        self.reset()

    def reset(self) -> None:
        self.generator.reset()
        self.consumed.clear()
        self.snapshots.clear()

    @property
    def step_index(self) -> int:
        return self.generator.step_index

    def sync(self, heard: Mapping[int, Sequence[Note]], upto_step: int) -> None:
        """Make the generator's context hold exactly `heard` for every step before `upto_step`
        (as far back as the kept snapshots reach), and stand at `upto_step`."""
        gen = self.generator
        first = min(self.snapshots, default=gen.step_index)
        first = max(first, upto_step - self.keep_steps)
        changed = None
        for step in range(first, min(gen.step_index, upto_step)):
            if self.consumed.get(step, ()) != normalize(heard.get(step, ()), step):
                changed = step
                break
        if changed is None and gen.step_index > upto_step:
            changed = upto_step                     # went too far (cannot happen in the loop)
        if changed is not None and changed in self.snapshots:
            gen.restore(self.snapshots[changed])
            self.reruns += 1
            self.rerun_steps += upto_step - changed
        while gen.step_index < upto_step:
            step = gen.step_index
            notes = normalize(heard.get(step, ()), step)
            self.snapshots[step] = gen.snapshot()
            gen.feed_step(list(notes))
            self.consumed[step] = notes
        self._forget(upto_step - self.keep_steps)

    def generate(self) -> list[Note]:
        """Sample the notes of the step the generator stands at."""
        gen = self.generator
        step = gen.step_index
        self.snapshots[step] = gen.snapshot()
        notes = gen.next_step()
        self.consumed[step] = normalize(notes, step)
        return [Note(step, n.pitch, n.dur_steps, n.velocity) for n in notes]

    def _forget(self, before_step: int) -> None:
        for step in [s for s in self.snapshots if s < before_step]:
            del self.snapshots[step]
            self.consumed.pop(step, None)


class SendingEngine:
    """Wraps the generator's engine so that every model step first sends what is due: a long
    step computation (a re-run, a dense chord) then never holds back a MIDI clock pulse or a
    note-off that falls inside it. Everything else is the engine's."""

    def __init__(self, engine, send_due: Callable[[], object]) -> None:
        self._engine, self._send_due = engine, send_due

    def step(self, token: int, state):
        self._send_due()
        return self._engine.step(token, state)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)
