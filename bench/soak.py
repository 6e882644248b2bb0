"""Soak: duet mode at a fast tempo through real JACK ports, a player feeding notes, and a flood.

    python bench/soak.py --json                 # 1 minute
    python bench/soak.py --json --minutes 10    # the issue's figure

`perform --mode duet` (a subprocess) plays on a port we read while a player thread plays a note every
half beat into its input. Ten seconds after the start (the first 20 s of a short run: at most
`--flood-s`), a flood of `--flood-hz` messages a second (notes, sysex, clock, aftertouch, CCs,
pitch bends) is poured into the same input. Figures:

- memory: perform's resident set (VmRSS) sampled every second; growth = median of the last ten
  samples minus median of the ten after the warm-up (goal < 5 MB).
- drift: median error of perform's MIDI clock (--send-clock) over the last minute minus over the
  first, in ms and ticks (goal 0): pulse n is due at the grid origin perform reports (t0_s) plus n
  pulses, counted, so a step lost on the way reads as one tick. (Not from a --record pairing as in
  bench/live.py: a recording grows for the whole run and would blur the memory figure.)
- stuck notes: note-ons and note-offs counted on the receiving port; a pitch left on with no
  note-off (an all-notes-off does not count) is stuck (goal 0).
- flood: grid error p99 (to the nearest step of perform's reported grid) of the notes that arrived
  during the flood vs. outside it, perform's own
  send lateness and step time, and the messages dropped (perform's input queue and rtmidi's).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import mido

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


jack = _load("lstm_jam_tests_jack", ROOT / "tests" / "jack.py")
live = _load("lstm_jam_bench_live", ROOT / "bench" / "live.py")


def rss_kb(pid: int) -> int | None:
    """Resident set size of a process in kB (Linux /proc); None elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def count_notes(received) -> dict:
    """Note-ons, note-offs and the pitches left on (only a note-off or velocity-0 note-on ends one)."""
    on: dict[tuple[int, int], int] = {}
    ons = offs = 0
    for msg, _ in received:
        if msg.type == "note_on" and msg.velocity > 0:
            ons += 1
            on[(msg.channel, msg.note)] = on.get((msg.channel, msg.note), 0) + 1
        elif msg.type in ("note_on", "note_off"):
            offs += 1
            on.pop((msg.channel, msg.note), None)
    return {"note_ons": ons, "note_offs": offs, "stuck_notes": len(on),
            "stuck": sorted(f"ch{c + 1}:{p}" for c, p in on)}


class LockedPort:
    """One rtmidi output written from two threads: a lock keeps their messages whole."""

    def __init__(self, port) -> None:
        self.port, self.lock = port, threading.Lock()

    def send(self, msg: mido.Message) -> None:
        with self.lock:
            self.port.send(msg)


def player(port, bpm: float, stop: threading.Event) -> int:
    """A note every half beat, held a quarter beat, wandering around middle C; returns notes played."""
    rng, half_beat_s, played = random.Random(7), 30.0 / bpm, 0
    next_s = time.perf_counter()
    pitch = 60
    while not stop.is_set():
        pitch = min(84, max(48, pitch + rng.choice((-5, -3, -2, 2, 3, 5))))
        port.send(mido.Message("note_on", note=pitch, velocity=rng.randint(50, 110)))
        time.sleep(half_beat_s / 2)
        port.send(mido.Message("note_off", note=pitch))
        played += 1
        next_s += half_beat_s
        time.sleep(max(0.0, next_s - time.perf_counter()))
    return played


def soak(model: Path, minutes: float, bpm: float, flood_hz: float, flood_s: float, loop: dict) -> dict:
    inst = live.Instrument(model, "duet", bpm, ["--send-clock"])   # the pulses count the steps
    stop = threading.Event()
    played: list[int] = []
    thread = threading.Thread(target=lambda: played.append(player(shared, bpm, stop)), daemon=True)
    shared = LockedPort(inst.player)    # the player and the flood share perform's input port
    rss: list[tuple[float, int]] = []
    flood_report: dict = {}
    try:
        inst.wait_for_note()
        thread.start()
        start_s = time.perf_counter()
        end_s = start_s + minutes * 60.0
        flood_at_s = start_s + 10.0
        flood_s = min(flood_s, max(1.0, minutes * 60.0 / 3))
        flood_window = (flood_at_s, flood_at_s + flood_s)
        flood_thread = threading.Thread(
            target=lambda: flood_report.update(jack.flood(shared, flood_hz, flood_s)), daemon=True)
        while time.perf_counter() < end_s and inst.proc.poll() is None:
            if not flood_thread.is_alive() and not flood_report and time.perf_counter() >= flood_at_s:
                flood_window = (time.perf_counter(), time.perf_counter() + flood_s)
                flood_thread.start()
            kb = rss_kb(inst.proc.pid)
            if kb is not None:
                rss.append((time.perf_counter() - start_s, kb))
            inst.collect()
            time.sleep(1.0)
        flood_thread.join(timeout=flood_s + 5) if flood_thread.ident else None
    finally:
        stop.set()
        thread.join(timeout=5)
        stats = inst.stop()
    return figures(inst, stats, rss, flood_window, flood_report, bpm, loop, played)


def figures(inst, stats, rss, flood_window, flood_report, bpm, loop, played) -> dict:
    period_s = 60.0 / (bpm * 4)
    out = {"bpm": bpm, "player_notes": played[0] if played else 0}
    timing = live.timing_figures(inst.received, period_s, stats, loop)
    out["drift_ms"], out["drift_ticks"] = timing.get("drift_ms"), timing.get("drift_ticks")
    out["drift_of"] = timing.get("drift_of")
    out["timing_all"] = {k: v for k, v in timing.items() if k.startswith("error_")}
    out.update(count_notes(inst.received))
    warm = [kb for t, kb in rss if t >= 15.0] or [kb for _, kb in rss]
    if len(warm) >= 2:
        first, last = statistics.median(warm[:10]), statistics.median(warm[-10:])
        out["rss_mb"] = {"after_warmup": first / 1024, "end": last / 1024, "growth": (last - first) / 1024}
    ons = [t for m, t in inst.received if m.type == "note_on" and m.velocity > 0]
    if ons and timing.get("error_p50_ms") is not None:      # (so perform reported t0_s)
        errors = live.grid_errors(ons, period_s, stats["t0_s"])
        lo, hi = flood_window
        during = [e for t, e in zip(ons, errors) if lo <= t <= hi]
        outside = [e for t, e in zip(ons, errors) if not lo - 1 <= t <= hi + 1]
        out["flood"] = {**flood_report, "error_during": live.percentiles_ms(during),
                        "error_outside": live.percentiles_ms(outside)}
    out["dropped"] = {"input_queue": stats.get("input_dropped"),
                      "ignored_types": stats.get("input_ignored")}
    out["perform_stats"] = {k: stats.get(k) for k in (
        "ticks", "late_ticks", "step_p50_ms", "step_p99_ms", "send_lateness_p50_ms",
        "send_lateness_p99_ms", "input_received", "messages_sent", "reruns", "errors") if k in stats}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--bpm", type=float, default=300.0, help="tempo (fast: 20 steps a second)")
    parser.add_argument("--flood-hz", type=float, default=5000.0, help="flood messages a second")
    parser.add_argument("--flood-s", type=float, default=10.0, help="flood length")
    parser.add_argument("--model", type=Path, help="an .onnx model (default: models/default.onnx)")
    args = parser.parse_args(argv)
    reason = jack.jack_available()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    default = ROOT / "models" / "default.onnx"
    model = args.model or (default if default.is_file() else None)
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        model = model or jack.tiny_model(tmp)
        with jack.JackServer(period_frames=128) as server:
            loop = live.loopback()
            result = {"jack": {"period_frames": server.period_frames, "rate_hz": server.rate_hz},
                      "minutes": args.minutes, "model": str(model), "loopback": loop,
                      **soak(model, args.minutes, args.bpm, args.flood_hz, args.flood_s, loop)}
    print(json.dumps(result, indent=2) if args.json else _text(result))
    return 0


def _text(r: dict) -> str:
    rss, flood = r.get("rss_mb", {}), r.get("flood", {})
    return "\n".join([
        f"memory growth   {rss.get('growth', float('nan')):.2f} MB (goal < 5)",
        f"drift           {r.get('drift_ms')} ms = {r.get('drift_ticks')} ticks (goal 0)",
        f"stuck notes     {r['stuck_notes']} ({r['note_ons']} on, {r['note_offs']} off; goal 0)",
        f"flood           {flood.get('rate_hz', 0):.0f} msg/s: error p99 "
        f"{flood.get('error_during', {}).get('p99_ms')} ms during, "
        f"{flood.get('error_outside', {}).get('p99_ms')} ms outside",
        f"dropped         {r['dropped']}"])


if __name__ == "__main__":
    raise SystemExit(main())
