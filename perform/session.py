"""The live loop: listen, fold the player into the model's context, play on the grid.

    session = Session(config, generator, output_port, provider="CPUExecutionProvider")
    input_port.callback = session.listener.callback
    session.run()                      # until stop(), Ctrl-C or an error; always silences notes

One thread does everything that touches the output port. It sleeps towards the next deadline (the
next tick, or the next scheduled message), waking early when the player sends something. At tick n
(due at t0 + n * period_s) it prepares step n + 1: it folds what the player played into the model's
context (perform.context), decides whether the instrument plays that step (mode and turn taking),
samples it, and puts its note-ons at the step's deadline and note-offs DUR steps later on the heap.
Preparing one step ahead means a note is never late by the time it took to compute it.

Modes: "call" listens while the player plays, answers `answer_bars` bars once the player has been
silent for `answer_pause_beats`, and stops (releasing its notes) as soon as the player comes back;
"duet" plays every step, with the player's notes in its context; "solo" plays and does not listen.
In every mode but solo the player's finished notes also go, once each, to the generator's steering
(perform.steer: the key and register it follows); the status line shows the key.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from typing import Callable

import mido

from .clock import MasterLock, TickClock
from .context import ContextFolder, SendingEngine
from .controls import Controls
from .errors import PortError
from .listener import CLOCK_TYPES, Listener, PlayerTrack
from .record import INSTRUMENT, PLAYER, Recorder
from .scheduler import INST, THRU, Scheduler
from .status import LatencyWindow, StatusLine
from .tokens import Note

CLOCK = "clock"
ALL_NOTES_OFF = 123
SUSTAIN = 64                      # the sustain pedal: held notes sound on (perform.listener)
SPIN_S = 0.0005                   # spin (yielding) the last half millisecond before a deadline
THRU_TYPES = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "program_change"})


class Session:
    """The instrument's engine loop. See the module docstring."""

    def __init__(self, config, generator, output, *, listener: Listener | None = None,
                 now: Callable[[], float] = time.perf_counter,
                 sleep: Callable[[float], object] | None = None, provider: str = "",
                 recorder: Recorder | None = None, status: StatusLine | None = None,
                 clock_follower=None) -> None:
        self.cfg = config
        grid, perf = config.grid, config.perform
        self.now = now
        self.listener = listener or Listener(now=now)
        self.sleep = sleep or self.listener.wait
        spin_s = SPIN_S if sleep is None else 0.0       # a fake clock's sleep needs no spinning
        self.clock = TickClock(config.clock.bpm, grid.steps_per_beat, now, self.sleep, spin_s=spin_s)
        self.scheduler = Scheduler(output, now, on_sent=self._on_sent)
        if getattr(generator, "engine", None) is not None:
            generator.engine = SendingEngine(generator.engine, self.scheduler.send_due)
        self.folder = ContextFolder(generator, keep_steps=grid.max_dur_steps + 8)
        self.player = PlayerTrack(grid.max_dur_steps)
        self.controls = Controls(config, generator)
        self._hear_player = getattr(generator, "hear_player", None)
        self.steering = getattr(generator, "steering", None)
        self.recorder, self.status, self.provider = recorder, status, provider
        self.sync = (MasterLock(clock_follower, grid.steps_per_beat)
                     if clock_follower is not None else None)
        self.channel = config.ports.channel - 1
        self.thru = config.ports.thru
        self.send_clock = config.clock.send_clock
        self.pause_steps = perf.answer_pause_beats * grid.steps_per_beat
        self.instrument: dict[int, list[Note]] = {}     # step -> notes the instrument played
        self.answer_end: int | None = None               # first step after the current answer
        self.phrase_pending = False                      # the player played since the last answer
        self.tick = 0
        self.last_notes: tuple[int, ...] = ()
        self.step_latency = LatencyWindow()
        self.answer_latency_s: deque[float] = deque(maxlen=1024)  # pause noticed -> answer scheduled
        self._answer_starts = False
        self.answers = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self.closing = False          # set while silencing on the way out
        self._lost_port: str | None = None     # why, when a port vanished (set by the port watch)

    # public --------------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.controls.mode

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Ask the loop to end at its next wake-up (safe from a signal handler or another thread)."""
        self._stop.set()
        self.listener.wake()

    def run(self, max_ticks: int | None = None, stop_event: threading.Event | None = None) -> dict:
        """Play until `max_ticks` ticks were processed (counted from the first run), `stop_event`
        or stop() is set, or an error. Every way out silences every sounding note, then sends
        all-notes-off. Returns stats(). A later run() resumes at the current tick; a stop()
        asked before it (a Ctrl-C while the ports opened) ends it at once."""
        stop_event = stop_event or self._stop
        if self.tick == 0:
            self.clock.start()
        else:                               # resumed (e.g. after replace_output): from now on
            self.clock.anchor(self.tick, self.now())
        self.closing = False
        if self.send_clock:
            self.scheduler.at(self.clock.deadline_s(0), mido.Message("start"), CLOCK)
            self._schedule_clock(0)
        try:
            while max_ticks is None or self.tick < max_ticks:
                if not self._wait_until(self.clock.deadline_s(self.tick), stop_event):
                    break
                self._process_tick(self.tick)
                self.tick += 1
        finally:
            self.close()
        return self.stats()

    def replace_output(self, port) -> None:
        """Play on another port from the next run() (after the old one failed: reconnecting).
        The notes the old port was playing are forgotten, and all-notes-off goes to the new port
        on every channel used (a synth that lost only its connection may still hold some);
        run() resumes at the current tick. Raises PortError when the new port fails too."""
        self.scheduler.port = port
        self._lost_port = None
        for owner in self.scheduler.sounding:
            self.scheduler.sounding[owner].clear()
        self.scheduler.cancel(INST)
        self.scheduler.cancel(THRU)
        self.scheduler.cancel(CLOCK)
        self.scheduler.panic(extra_channels=(self.channel,))

    def port_lost(self, message: str) -> None:
        """A port vanished (called from another thread, e.g. perform.watch): run() ends with
        PortError(message) at its next wake-up, silencing what it can on the way out."""
        self._lost_port = message
        self.listener.wake()

    def close(self) -> None:
        """Silence everything (note-offs, then CC 123), stop clock, write the recording."""
        self.closing = True
        try:
            self.scheduler.panic(extra_channels=(self.channel,))
            if self.send_clock:
                self.scheduler.cancel(CLOCK)
                self.scheduler.send_now(mido.Message("stop"), CLOCK)
        except PortError as err:
            self.errors.append(str(err))
        if self.status is not None:
            self.status.close()
        if self.recorder is not None:
            self.recorder.write(self.clock.tempo_changes)
        self.closing = False

    def stats(self) -> dict:
        """Figures for --stats-json. `t0_s`: the grid's origin in seconds of `now()` (live:
        time.perf_counter, CLOCK_MONOTONIC on Linux, the clock another process stamps arrivals
        with): tick n is due at t0_s + n * period_s (since the last tempo change or --sync lock)."""
        lateness = sorted(self.scheduler.lateness_s) or [0.0]
        pick = lambda q: 1000.0 * lateness[min(len(lateness) - 1, int(q * len(lateness)))]  # noqa: E731
        return {"ticks": self.tick, "late_ticks": self.clock.late_ticks, "answers": self.answers,
                "t0_s": self.clock.deadline_s(0), "period_s": self.clock.period_s,
                "step_p50_ms": self.step_latency.percentile_ms(50),
                "step_p99_ms": self.step_latency.percentile_ms(99),
                "send_lateness_p50_ms": pick(0.5), "send_lateness_p99_ms": pick(0.99),
                "answer_compute_ms": [1000.0 * s for s in self.answer_latency_s],
                "messages_sent": self.scheduler.sent, "input_dropped": self.listener.dropped,
                "input_received": self.listener.received,
                "input_ignored": self.listener.ignored, "reruns": self.folder.reruns,
                "rerun_steps": self.folder.rerun_steps, "errors": list(self.errors)}

    # waiting, input ------------------------------------------------------------------------------
    def _wait_until(self, deadline_s: float, stop_event: threading.Event) -> bool:
        """Handle input and send due messages until `deadline_s`. False when asked to stop."""
        while True:
            for stamp_s, msg in self.listener.drain():
                self._on_input(stamp_s, msg)
            self.scheduler.send_due()
            if self._lost_port is not None:
                raise PortError(self._lost_port)
            if stop_event.is_set() or self._stop.is_set():
                return False
            if self.now() >= deadline_s:
                return True
            next_s = self.scheduler.next_deadline_s()
            self.clock.sleep_until(deadline_s if next_s is None else min(next_s, deadline_s))

    def _on_input(self, stamp_s: float, msg: mido.Message) -> None:
        at_steps = self.clock.steps_at(stamp_s)
        if msg.type in CLOCK_TYPES:
            if self.sync is not None:
                self.sync.feed(msg, stamp_s)
            return
        if msg.type == "control_change" and self.controls.handles(msg.control):
            self._on_control(msg.control, msg.value)
            return
        if msg.type == "control_change" and msg.control == ALL_NOTES_OFF:
            self.player.release_all(at_steps)      # also what a vanished input sends (cli.py)
        if self.recorder is not None:
            self.recorder.add(PLAYER, at_steps, msg)
        if self.thru and msg.type in THRU_TYPES:
            self.scheduler.send_now(msg, THRU)
        if msg.type == "control_change" and msg.control == SUSTAIN and self.mode != "solo":
            self.player.pedal(at_steps, msg.value >= 64)
        if self.mode == "solo" or msg.type not in ("note_on", "note_off"):
            return
        if msg.type == "note_on" and msg.velocity > 0:
            self.player.note_on(at_steps, msg.note, msg.velocity)
            self.phrase_pending = True
            if self.answer_end is not None and self.mode == "call":
                self._cut_answer(at_steps)
        else:
            self.player.note_off(at_steps, msg.note)

    def _on_control(self, control: int, value: int) -> None:
        action = self.controls.apply(control, value)
        if action in ("mute", "mode"):
            self._cut_answer(self.clock.steps_at(self.now()))
        elif action == "panic":
            self.answer_end, self.phrase_pending = None, False
            self._drop_future(self.clock.steps_at(self.now()))
            self.scheduler.panic(extra_channels=(self.channel,))

    def _cut_answer(self, at_steps: float) -> None:
        """Stop the instrument now: its pending notes dropped, sounding ones released."""
        self.answer_end = None
        self.scheduler.release(INST)
        self._drop_future(at_steps)

    def _drop_future(self, at_steps: float) -> None:
        """Make the instrument's history say what was heard: unplayed notes gone, cut ones short."""
        for step in list(self.instrument):
            if step > at_steps:
                del self.instrument[step]
                continue
            end = max(step + 1, math.ceil(at_steps))
            self.instrument[step] = [n if n.start_step + n.dur_steps <= end else
                                     Note(n.start_step, n.pitch, end - n.start_step, n.velocity)
                                     for n in self.instrument[step]]

    # ticks ---------------------------------------------------------------------------------------
    def _process_tick(self, tick: int) -> None:
        self.clock.mark(tick)
        started_s = self.now()
        self._follow_clock(tick)
        step = tick + 1
        now_steps = self.clock.steps_at(started_s)
        self._answer_starts = False
        play = self._decide(step)
        finished = self.player.take_finished()
        if finished and self._hear_player is not None:
            self._hear_player(finished)
        self.folder.sync(self._heard(now_steps), step)
        if play:
            notes = self.folder.generate()
            self._schedule(step, notes)
            if self._answer_starts:         # the pause was noticed on this tick
                self.answer_latency_s.append(self.now() - started_s)
        if self.send_clock:
            self._schedule_clock(step)
        self.step_latency.add(self.now() - started_s)
        self._forget(step - self.folder.keep_steps)
        self._show_status()

    def answer_steps(self) -> int:
        return self.controls.answer_bars * self.cfg.perform.beats_per_bar * self.cfg.grid.steps_per_beat

    def _decide(self, step: int) -> bool:
        """Does the instrument play `step`?"""
        if self.controls.muted or (self.sync is not None and not self.sync.locked):
            return False
        if self.mode != "call":
            return True
        if self.answer_end is not None:
            if step < self.answer_end:
                return True
            self.answer_end = None
        release = self.player.last_release_steps
        if not self.phrase_pending or self.player.is_holding() or release is None:
            return False
        if step >= release + self.pause_steps:
            self.answer_end = step + self.answer_steps()
            self.phrase_pending, self._answer_starts = False, True
            self.answers += 1
            return True
        return False

    def _heard(self, now_steps: float) -> dict[int, list[Note]]:
        heard = self.player.notes_by_step(now_steps)
        for step, notes in self.instrument.items():
            heard[step] = heard.get(step, []) + notes
        return heard

    def _schedule(self, step: int, notes: list[Note]) -> None:
        if not notes:
            return
        self.instrument[step] = notes
        on_s = self.clock.deadline_s(step)
        for n in notes:
            off_s = self.clock.deadline_s(step + n.dur_steps)
            velocity = min(max(int(n.velocity), 1), 127)
            self.scheduler.note(on_s, off_s, self.channel, n.pitch, velocity, INST)
        self.last_notes = tuple(n.pitch for n in notes)

    def _schedule_clock(self, step: int) -> None:
        """MIDI clock pulses (24 per beat) that fall within `step`."""
        spb = self.cfg.grid.steps_per_beat
        first, last = math.ceil(step * 24 / spb), math.ceil((step + 1) * 24 / spb)
        for pulse in range(first, last):
            self.scheduler.at(self.clock.deadline_s(pulse * spb / 24), mido.Message("clock"), CLOCK)

    def _follow_clock(self, tick: int) -> None:
        """--sync: lock onto the master; when it stops, stop playing (and release the notes)."""
        if self.sync is None:
            return
        was_locked = self.sync.locked
        self.sync.follow(tick, self.clock, self.now())
        if was_locked and not self.sync.locked:
            self._cut_answer(self.clock.steps_at(self.now()))

    def _forget(self, before_step: int) -> None:
        for step in [s for s in self.instrument if s < before_step]:
            del self.instrument[step]
        self.player.forget_before(before_step)

    def _on_sent(self, stamp_s: float, msg: mido.Message, owner: str) -> None:
        if self.recorder is not None and owner == INST:
            self.recorder.add(INSTRUMENT, self.clock.steps_at(stamp_s), msg)

    def _show_status(self) -> None:
        if self.status is None:
            return
        if self.controls.muted:
            state = "muted"
        elif self.sync is not None and not self.sync.locked:
            state = "waiting for MIDI clock"
        elif self.mode != "call":
            state = "playing"
        else:
            state = "answering" if self.answer_end is not None else "listening"
        self.status.update(self.mode, self.clock.bpm, self.provider or "-",
                           self.step_latency.percentile_ms(99), self.clock.late_ticks, state,
                           self.last_notes, self._status_extra)

    def _status_extra(self) -> str:
        """The key and dynamics estimates (a key estimate costs 24 correlations: only when the
        status line is written), and dropped input."""
        extra = f"  dropped {self.listener.dropped}" if self.listener.dropped else ""
        if self.steering is not None:
            extra = (f"  key {self.steering.describe_key()}  vel {self.steering.describe_velocity()}"
                     + extra)
        return extra
