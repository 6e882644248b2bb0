"""The end-to-end rig: `perform` as a subprocess between two of our virtual JACK ports.

    rig = Rig(tiny_onnx, tmp_path / "stats.json", "--mode", "solo")   # player -> perform -> reader
    rig.player.send(...); time.sleep(...); rig.note_ons(); rig.stop()

Used by test_live_jack.py and test_reliability_jack.py (they need the jack_server fixture).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import mido

from perform import ports

import fakes

PERIOD_S = 60.0 / (240.0 * 4)        # a step at 240 bpm: what Rig.play times its notes by
PERFORM = [sys.executable, "-c", "from perform.cli import main; raise SystemExit(main())"]


class Rig:
    """Our two virtual ports (player -> perform -> reader) and a running `perform`."""

    def __init__(self, model, stats_path, *options: str, bpm: float = 240.0) -> None:
        self.queue = ports.StampedQueue(maxlen=100_000)
        self.reader = self.open_reader()
        self.player = self.open_player()
        self.received: list[tuple[mido.Message, float]] = []
        self.stats_path = stats_path
        self.proc = subprocess.Popen(
            PERFORM + ["--model", str(model), "--api", "jack", "--port", "e2e-reader",
                       "--input", "e2e-player", "--bpm", str(bpm), "--quiet",
                       "--stats-json", str(stats_path), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # SIGABRT dumps every thread's stack
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._wait_started()

    def open_reader(self):
        """The port perform plays on (JACK name e2e-r:e2e-reader); again after closing it."""
        return ports.open_input("e2e-reader", api="jack", virtual=True, client_name="e2e-r",
                                callback=self.queue.put)

    def open_player(self):
        """The port perform listens to (JACK name e2e-p:e2e-player); again after closing it."""
        return ports.open_output("e2e-player", api="jack", virtual=True, client_name="e2e-p")

    def wait_for_stderr(self, text: str, timeout_s: float = 10.0) -> bool:
        """Until perform has written a line containing `text`; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.stderr):
                return True
            time.sleep(0.02)
        return False

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _wait_started(self, timeout_s: float = 30.0) -> None:
        """Until perform says it plays (it has loaded its model and opened both ports)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any("Ctrl-C" in line for line in self.stderr):
                time.sleep(0.2)
                return
            if self.proc.poll() is not None:
                time.sleep(0.1)
                raise AssertionError(f"perform exited {self.proc.returncode}: {''.join(self.stderr)}")
            time.sleep(0.02)
        raise AssertionError(f"perform did not start within {timeout_s} s: {''.join(self.stderr)}")

    def stats(self) -> str:
        """What perform reported on exit (for failure messages)."""
        try:
            return self.stats_path.read_text()
        except OSError:
            return "(no stats)"

    def t0_s(self) -> float:
        """perform's grid origin (tick n is due at t0_s + n * its period), on the time.perf_counter
        clock our arrival stamps use; reported in --stats-json on exit, so only after stop()."""
        return json.loads(self.stats_path.read_text())["t0_s"]

    def collect(self) -> list[tuple[mido.Message, float]]:
        self.received += self.queue.drain()
        return self.received

    def note_ons(self, after_s: float = 0.0) -> list[float]:
        return [t for m, t in self.collect() if m.type == "note_on" and m.velocity > 0 and t > after_s]

    def play(self, pitches, step_s: float = 2 * PERIOD_S) -> float:  # PERIOD_S: of 240 bpm
        """Play each pitch for one step, one every `step_s`. Returns the time of the last release."""
        for pitch in pitches:
            self.player.send(mido.Message("note_on", note=pitch, velocity=96))
            time.sleep(PERIOD_S)
            released_s = time.perf_counter()
            self.player.send(mido.Message("note_off", note=pitch))
            time.sleep(step_s - PERIOD_S)
        return released_s

    def stop(self, sig=signal.SIGINT) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            time.sleep(0.2)
            raise AssertionError(f"perform did not exit within 15 s of {sig!r}: {''.join(self.stderr)}")
        finally:
            time.sleep(0.2)
            self.collect()
            self.reader.close()
            self.player.close()
        return self.proc.returncode, "".join(self.stderr)


def grid_errors_s(times_s: list[float], t0_s: float, period_s: float = PERIOD_S) -> list[float]:
    """Each time minus the nearest tick of the grid t0_s + n * period_s (perform's reported grid:
    a constant lateness shows, where a phase fitted to the times would hide it)."""
    return [((t - t0_s + period_s / 2) % period_s) - period_s / 2 for t in times_s]


def sounding(received) -> set[tuple[int, int]]:
    """(channel, pitch) still on after replaying what arrived, as (msg, time) pairs."""
    return fakes.sounding(msg for msg, _ in received)
