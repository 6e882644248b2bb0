"""The live loop's own timing, without ports: how late messages leave the scheduler, ticks late,
step compute time, and drift (the last deadline against t0 + n * period).

    python bench/loop.py --json                            # models/default.onnx, duet, 10 s
    python bench/loop.py --json --seconds 60 --bpm 180 --model tiny.onnx
    python bench/loop.py --json --synthetic                # no model: the loop alone

The output port is a stand-in that stamps each message with time.perf_counter() when the loop hands
it over; a player is simulated by a thread that calls the input callback (four notes, then four beats
of rest), so duet mode folds real input into the context. Real ports add their own latency,
measured by bench/live.py.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import threading
import time
from pathlib import Path

import mido
from mido.ports import BaseOutput

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perform.config import load_config  # noqa: E402
from perform.session import Session  # noqa: E402
from perform.tokens import Note  # noqa: E402


class StampingPort(BaseOutput):
    def __init__(self) -> None:
        self.sent: list[tuple[float, mido.Message]] = []
        super().__init__("bench")

    def _send(self, msg: mido.Message) -> None:
        self.sent.append((time.perf_counter(), msg))


class Synthetic:
    """A stand-in generator: a note every other step, no model."""

    def __init__(self) -> None:
        self.step_index = 0

    def reset(self) -> None:
        self.step_index = 0

    def feed_step(self, notes) -> None:
        self.step_index += 1

    def next_step(self):
        self.step_index += 1
        return [Note(self.step_index - 1, 60 + self.step_index % 12, 1, 80)] if self.step_index % 2 else []

    def snapshot(self):
        return self.step_index

    def restore(self, snap) -> None:
        self.step_index = snap


def player(session: Session, beat_s: float, stop: threading.Event) -> None:
    """Four notes (a beat each, held half a beat), then four beats of rest, over and over."""
    pitch = 48
    while not stop.is_set():
        for _ in range(4):
            session.listener.callback(mido.Message("note_on", note=pitch, velocity=80))
            if stop.wait(beat_s / 2):
                return
            session.listener.callback(mido.Message("note_off", note=pitch))
            pitch = 48 + (pitch - 47) % 24
            if stop.wait(beat_s / 2):
                return
        if stop.wait(4 * beat_s):
            return


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--bpm", type=float, default=120.0)
    p.add_argument("--mode", default="duet", choices=("call", "duet", "solo"))
    p.add_argument("--model", help="an .onnx model (default: models/default.onnx)")
    p.add_argument("--synthetic", action="store_true", help="no model: a stand-in generator")
    args = p.parse_args(argv)
    cfg = load_config(None, {"clock": {"bpm": args.bpm}, "perform": {"mode": args.mode}})
    provider = "none"
    if args.synthetic:
        generator = Synthetic()
    else:
        from perform.cli import load_generator, with_model_grid
        if args.model:
            cfg = load_config(None, {"clock": {"bpm": args.bpm},
                                     "perform": {"mode": args.mode, "model": args.model}})
        generator, provider, vocab = load_generator(cfg)
        cfg = with_model_grid(cfg, vocab)
    port = StampingPort()
    session = Session(cfg, generator, port, provider=provider)
    period_s = session.clock.period_s
    stop = threading.Event()
    beat_s = period_s * cfg.grid.steps_per_beat
    thread = threading.Thread(target=player, args=(session, beat_s, stop), daemon=True)
    thread.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    stats = session.run(max_ticks=int(args.seconds / period_s))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    lateness = session.scheduler.lateness_s
    drift_ticks = (lateness[-1] if lateness else 0.0) / period_s    # the last send vs t0 + n * period
    cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    figures = {
        "mode": args.mode, "bpm": args.bpm, "seconds": args.seconds, "provider": provider,
        "ticks": stats["ticks"], "late_ticks": stats["late_ticks"],
        "send_lateness_p50_ms": 1000 * pct(lateness, 0.5), "send_lateness_p99_ms": 1000 * pct(lateness, 0.99),
        "send_lateness_max_ms": 1000 * max(lateness, default=0.0),
        "step_p50_ms": stats["step_p50_ms"], "step_p99_ms": stats["step_p99_ms"],
        "answer_compute_ms": stats["answer_compute_ms"][:10],
        "drift_ticks_at_end": drift_ticks, "reruns": stats["reruns"], "rerun_steps": stats["rerun_steps"],
        "messages_sent": len(port.sent), "cpu_percent": 100.0 * cpu_s / args.seconds,
        "cpus": os.cpu_count(),
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for key, value in figures.items():
            print(f"{key:>22}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
