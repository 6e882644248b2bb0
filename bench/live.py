"""Live timing through real MIDI ports on a JACK dummy server (it starts and stops its own).

    python bench/live.py --json                 # about two minutes: a 1-minute solo run
    python bench/live.py --json --minutes 10    # the issue's drift figure

Figures:
- loopback: port-to-port latency of the JACK ports alone (send on one port, stamp on another).
- output timing: the instrument (`perform --mode solo --record`, a subprocess) plays on a port we
  read; each note-on's arrival minus the deadline t0_s + k * period_s of its step k, with the grid
  origin t0_s that perform reports (--stats-json) and k from its recording (the n-th note-on that
  arrived is the n-th it played). Both processes stamp with time.perf_counter (CLOCK_MONOTONIC on
  Linux, one clock for every process), so a constant lateness shows, and nothing is wrapped into
  a step: a note a whole step late reads as 62.5 ms at 240 bpm.
  `beyond_loopback_p99_ms` = output p99 - loopback p99 (goal <= 1 ms).
- drift: median error over the last minute minus over the first, in ms and ticks (goal 0 ticks);
  a step lost on the way reads as one tick.
- answer compute: in call mode, a phrase is played in; the time perform reports from the tick
  where the pause is recognised to the first answer note being scheduled (goal <= 5 ms).
- cpu: the perform process's CPU time over the playing window / wall time (/proc/PID/stat).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perform import ports  # noqa: E402


def _load_jack_helpers():
    spec = importlib.util.spec_from_file_location("lstm_jam_tests_jack", ROOT / "tests" / "jack.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def percentiles_ms(values_s: list[float]) -> dict:
    if not values_s:
        return {"n": 0}
    xs = sorted(values_s)
    pick = lambda q: 1000.0 * xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {"n": len(xs), "min_ms": 1000.0 * xs[0], "p50_ms": pick(0.50), "p99_ms": pick(0.99),
            "max_ms": 1000.0 * xs[-1]}


# ---- loopback --------------------------------------------------------------------------------


def loopback(count: int = 500, gap_s: float = 0.0037) -> dict:
    """Latency of the ports alone: send a note on one client, stamp its arrival on another."""
    queue = ports.StampedQueue(maxlen=count * 2)
    sink = ports.open_input("loop-sink", api="jack", virtual=True, client_name="bench-loop",
                            callback=queue.put)
    out = ports.open_output("bench-loop:loop-sink", api="jack", client_name="bench-send")
    latencies: list[float] = []
    try:
        time.sleep(0.2)
        for i in range(count):
            sent_s = time.perf_counter()
            out.send(mido.Message("note_on", note=60 + i % 12, velocity=64))
            deadline = sent_s + 0.5
            got: list = []
            while not got and time.perf_counter() < deadline:
                time.sleep(0.0002)
                got = queue.drain()
            if got:
                latencies.append(got[0][1] - sent_s)
            time.sleep(gap_s)  # not a multiple of the JACK period: sends land at every phase
    finally:
        out.close()
        sink.close()
    return percentiles_ms(latencies)


# ---- the instrument as a subprocess -----------------------------------------------------------


class SleepJitter:
    """The machine's own scheduling while perform plays, with no MIDI at all: how late a 20 ms
    sleep wakes up, sampled on a thread of this (benchmark) process. On a virtual machine whose
    host deschedules it, no code can place a note more precisely than these tails allow."""

    def __init__(self, sleep_s: float = 0.02) -> None:
        self.sleep_s, self.oversleep_s = sleep_s, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "SleepJitter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            start_s = time.perf_counter()
            time.sleep(self.sleep_s)
            self.oversleep_s.append(time.perf_counter() - start_s - self.sleep_s)

    def figures(self) -> dict:
        return {"sleep_s": self.sleep_s, "oversleep": percentiles_ms(self.oversleep_s)}


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, from /proc (Linux); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Instrument:
    """`perform` on real ports: we read its output on a virtual port and play into it on another."""

    def __init__(self, model: Path, mode: str, bpm: float, extra: list[str] = ()) -> None:
        self.queue = ports.StampedQueue(maxlen=2_000_000)
        self.reader = ports.open_input("bench-reader", api="jack", virtual=True,
                                       client_name="bench", callback=self.queue.put)
        self.player = ports.open_output("bench-player", api="jack", virtual=True, client_name="bench")
        self.stats_path = Path(tempfile.mkstemp(prefix="perform-stats-", suffix=".json")[1])
        cmd = [sys.executable, "-m", "perform.cli", "--model", str(model), "--api", "jack",
               "--port", "bench-reader", "--input", "bench-player", "--mode", mode,
               "--bpm", str(bpm), "--quiet", "--stats-json", str(self.stats_path), *extra]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.received: list[tuple[mido.Message, float]] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read_stderr, daemon=True).start()
        self._wait_started()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr.append(line)

    def _wait_started(self, timeout_s: float = 60.0) -> None:
        """Until perform announces itself: model loaded, both ports open."""
        deadline = time.monotonic() + timeout_s
        while not any("Ctrl-C" in line for line in self.stderr):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"perform did not start: {''.join(self.stderr)[-1000:]}")
            time.sleep(0.02)
        time.sleep(0.2)

    def collect(self) -> list[tuple[mido.Message, float]]:
        self.received += self.queue.drain()
        return self.received

    def wait_for_note(self, timeout_s: float = 30.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(m.type == "note_on" for m, _ in self.collect()):
                return time.perf_counter()
            if self.proc.poll() is not None:
                raise RuntimeError(f"perform exited {self.proc.returncode}: {''.join(self.stderr)}")
            time.sleep(0.01)
        raise RuntimeError("perform played nothing within 30 s")

    def stop(self) -> dict:
        """SIGINT, wait, and return what perform reported (its --stats-json), or {}."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        time.sleep(0.1)
        self.collect()
        self.reader.close()
        self.player.close()
        try:
            return json.loads(self.stats_path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return {"stderr": "".join(self.stderr)[-500:]}
        finally:
            self.stats_path.unlink(missing_ok=True)


def grid_errors(arrivals_s: list[float], period_s: float, t0_s: float,
                steps: list[int] | None = None) -> list[float]:
    """Each arrival minus the deadline t0_s + step * period_s of its step. With `steps` (the step
    of each arrival, in order) that is exact, however late; without, the nearest step from a quarter
    step early to three quarters late is taken, so a note a whole step late reads as on time."""
    if steps is not None:
        return [a - (t0_s + k * period_s) for a, k in zip(arrivals_s, steps)]
    return [_wrap(a - t0_s, period_s, 0.25) for a in arrivals_s]


def _wrap(x_s: float, period_s: float, early_fraction: float) -> float:
    """x modulo period, in [-early_fraction * period, (1 - early_fraction) * period)."""
    return (x_s + early_fraction * period_s) % period_s - early_fraction * period_s


def recorded_note_steps(path: Path, steps_per_beat: int) -> list[int] | None:
    """The step of each note-on perform played, in the order it sent them: the "instrument" track
    of its --record file (None when there is none)."""
    try:
        mid = mido.MidiFile(path)
    except (OSError, ValueError, EOFError):
        return None
    for track in mid.tracks:
        if any(m.type == "track_name" and m.name == "instrument" for m in track):
            ticks, steps = 0, []
            for msg in track:
                ticks += msg.time
                if msg.type == "note_on" and msg.velocity > 0:
                    steps.append(round(ticks * steps_per_beat / mid.ticks_per_beat))
            return steps
    return None


def pulse_errors(received, period_s: float, t0_s: float, steps_per_beat: int) -> list[tuple[float, float]]:
    """(arrival, error) of each MIDI clock pulse after the first 'start' (perform --send-clock):
    pulse n is due at t0_s + n * period_s * steps_per_beat / 24; counted, so a lost step shows."""
    pulse_s, out, n = period_s * steps_per_beat / 24, [], None
    for msg, t_s in received:
        if msg.type == "start" and n is None:
            n = 0
        elif msg.type == "clock" and n is not None:
            out.append((t_s, t_s - (t0_s + n * pulse_s)))
            n += 1
    return out


def drift(times_s: list[float], errors_s: list[float], period_s: float) -> dict:
    """Median error over the last minute (a third of the run when shorter) minus over the first."""
    span_s = times_s[-1] - times_s[0]
    window_s = min(60.0, span_s / 3)
    first = [e for t, e in zip(times_s, errors_s) if t - times_s[0] <= window_s]
    last = [e for t, e in zip(times_s, errors_s) if times_s[-1] - t <= window_s]
    drift_s = statistics.median(last) - statistics.median(first)
    return {"span_s": span_s, "drift_ms": 1000.0 * drift_s, "drift_ticks": round(drift_s / period_s)}


def timing_figures(received, period_s: float, stats: dict, loop: dict,
                   note_steps: list[int] | None = None, steps_per_beat: int = 4) -> dict:
    """Output error against perform's grid (its reported t0_s) and drift. Each note-on's step comes
    from `note_steps` (perform's recording) when as many arrived as it sent; drift is taken on the
    clock pulses when perform sent them, else on the notes: only the first two count whole steps."""
    ons = [t for m, t in received if m.type == "note_on" and m.velocity > 0]
    if len(ons) < 10:
        return {"error": f"only {len(ons)} note-ons arrived"}
    if stats.get("t0_s") is None:
        return {"error": f"perform reported no grid origin (t0_s): {stats}"}
    paired = note_steps is not None and len(note_steps) == len(ons)
    errors = grid_errors(ons, period_s, stats["t0_s"], note_steps if paired else None)
    out = {"notes": len(ons), "steps_of_notes": "recorded" if paired else (
               f"nearest (recorded {len(note_steps)} note-ons)" if note_steps is not None else "nearest"),
           **{f"error_{k}": v for k, v in percentiles_ms(errors).items() if k != "n"}}
    out["beyond_loopback_p99_ms"] = out["error_p99_ms"] - loop["p99_ms"]
    pulses = pulse_errors(received, period_s, stats["t0_s"], steps_per_beat)
    if len(pulses) >= 10:
        out.update(drift([t for t, _ in pulses], [e for _, e in pulses], period_s), drift_of="clock pulses")
    else:
        out.update(drift(ons, errors, period_s),
                   drift_of="recorded notes" if paired else "notes, nearest step: a whole step unseen")
    return out


def run_solo(model: Path, minutes: float, bpm: float, steps_per_beat: int, loop: dict,
             tmp: Path) -> dict:
    """perform --mode solo for `minutes`; it records (--record) the step of every note it plays."""
    record = tmp / "solo.mid"
    inst = Instrument(model, "solo", bpm, ["--record", str(record)])
    try:
        inst.wait_for_note()
        time.sleep(1.0)
        cpu0, wall0 = cpu_seconds(inst.proc.pid), time.perf_counter()
        end_s = wall0 + minutes * 60.0
        while time.perf_counter() < end_s and inst.proc.poll() is None:
            inst.collect()
            time.sleep(0.2)
        cpu1, wall1 = cpu_seconds(inst.proc.pid), time.perf_counter()
    finally:
        stats = inst.stop()
    period_s = 60.0 / (bpm * steps_per_beat)
    figures = timing_figures(inst.received, period_s, stats, loop,
                             recorded_note_steps(record, steps_per_beat), steps_per_beat)
    if cpu0 is not None and cpu1 is not None:
        figures["cpu_percent_of_one_core"] = 100.0 * (cpu1 - cpu0) / (wall1 - wall0)
    figures["perform_stats"] = {k: stats.get(k) for k in (
        "ticks", "late_ticks", "step_p50_ms", "step_p99_ms", "send_lateness_p50_ms",
        "send_lateness_p99_ms", "messages_sent") if k in stats}
    return figures


def run_call(model: Path, bpm: float, phrases: int) -> dict:
    """Play `phrases` short phrases, each followed by a pause long enough for an answer."""
    inst = Instrument(model, "call", bpm, ["--set", "perform.answer_bars=1"])
    beat_s = 60.0 / bpm
    try:
        for _ in range(phrases):
            for pitch in (60, 64, 67, 72):
                inst.player.send(mido.Message("note_on", note=pitch, velocity=90))
                time.sleep(beat_s / 2)
                inst.player.send(mido.Message("note_off", note=pitch))
            time.sleep(beat_s * (2 + 4 + 1))  # pause (2 beats), one bar of answer, a beat more
    finally:
        stats = inst.stop()
    computes = stats.get("answer_compute_ms") or []
    answer_ons = sum(1 for m, _ in inst.received if m.type == "note_on" and m.velocity > 0)
    return {"answers": stats.get("answers"), "answer_note_ons": answer_ons,
            "answer_compute_ms": percentiles_ms([c / 1000.0 for c in computes])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--minutes", type=float, default=1.0, help="length of the solo run")
    parser.add_argument("--bpm", type=float, default=240.0)
    parser.add_argument("--period-frames", type=int, default=128, help="JACK period (48 kHz)")
    parser.add_argument("--model", type=Path, help="an .onnx model (default: models/default.onnx "
                        "when present, else a tiny untrained one)")
    parser.add_argument("--phrases", type=int, default=5, help="phrases played in call mode")
    args = parser.parse_args(argv)
    jack = _load_jack_helpers()
    reason = jack.jack_available()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    default = ROOT / "models" / "default.onnx"
    if args.model is None and default.is_file():
        args.model = default
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        model = args.model or jack.tiny_model(tmp)
        with jack.JackServer(period_frames=args.period_frames) as server:
            loop = loopback()
            result = {"jack": {"period_frames": server.period_frames, "rate_hz": server.rate_hz},
                      "bpm": args.bpm, "model": str(args.model or "tiny untrained (16/32/1)"),
                      "loopback": loop}
            with SleepJitter() as jitter:
                result["solo"] = run_solo(model, args.minutes, args.bpm, 4, loop, Path(tmp))
            result["machine_during_solo"] = jitter.figures()
            result["call"] = run_call(model, args.bpm, args.phrases)
    print(json.dumps(result, indent=2) if args.json else _text(result))
    return 0


def _text(result: dict) -> str:
    loop, solo = result["loopback"], result["solo"]
    lines = [f"loopback latency  p50 {loop['p50_ms']:.2f} ms  p99 {loop['p99_ms']:.2f} ms",
             f"output error      p50 {solo.get('error_p50_ms', float('nan')):.2f} ms  "
             f"p99 {solo.get('error_p99_ms', float('nan')):.2f} ms  "
             f"(+{solo.get('beyond_loopback_p99_ms', float('nan')):.2f} ms beyond loopback)",
             f"drift             {solo.get('drift_ms', float('nan')):.3f} ms = "
             f"{solo.get('drift_ticks')} ticks over {solo.get('span_s', 0):.0f} s",
             f"cpu               {solo.get('cpu_percent_of_one_core', float('nan')):.1f} % of a core",
             f"answer compute    {result['call']['answer_compute_ms']}"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
