"""Exits through JACK: does stopping `perform` by a signal ever leave a note on?

    python bench/exits.py --json --runs 200            # JACK's default (asynchronous) mode
    python bench/exits.py --json --runs 200 --sync     # the mode the tests' timing checks use

It starts its own JACK dummy server (128 frames at 48 kHz) and reads one virtual port. Each run:
`perform --api jack --port exits-reader --mode solo --bpm 240 --quiet` (a subprocess, what a user
types), SIGINT (even runs) or SIGTERM (odd runs) 3 to 4 s after it announced itself (uniformly
random, seeded), then SETTLE_S after it exited the messages that arrived are replayed. A note-on
with no note-off (or velocity-0 note-on) for its channel and pitch after it is stuck: all-notes-off
(CC 123) does not count, many synths ignore it. Figures:

- stuck_notes (goal 0), runs_with_stuck_notes, and for each such run what arrived last;
- runs_without_all_notes_off: runs where no CC 123 arrived (the end of the exit lost);
- messages_lost: what perform says it sent (--stats-json messages_sent, which leaves out the
  note-offs its JACK output repeats on closing) minus what arrived up to the first all-notes-off
  (the end of perform's own panic): JACK dropping a cycle's MIDI on the way (asynchronous mode,
  busy machine);
- exit_statuses (goal: all 0), exit_after_signal (signal to process exit; slow_exits: over
  SLOW_EXIT_S), wall_s; bad_runs lists the first 20 runs with anything above amiss.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perform import ports  # noqa: E402

SETTLE_S = 0.3          # after perform exited: what it sent has had time to arrive
SLOW_EXIT_S = 2.0       # a run whose exit took longer is listed among bad_runs
READER = "exits-reader"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stuck_notes(messages) -> list[tuple[int, int]]:
    """(channel, pitch) left on: only a note-off or a velocity-0 note-on ends a note."""
    on: set[tuple[int, int]] = set()
    for msg in messages:
        if msg.type == "note_on" and msg.velocity > 0:
            on.add((msg.channel, msg.note))
        elif msg.type in ("note_on", "note_off"):
            on.discard((msg.channel, msg.note))
    return sorted(on)


def one_exit(model: Path, queue: ports.StampedQueue, sig: signal.Signals, wait_s: float,
             seed: int, bpm: float, stats_path: Path) -> dict:
    """Start perform, signal it after `wait_s` of playing, and replay what arrived."""
    queue.drain()
    stats_path.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "perform.cli", "--model", str(model), "--api", "jack",
           "--port", READER, "--mode", "solo", "--bpm", str(bpm), "--seed", str(seed), "--quiet",
           "--stats-json", str(stats_path)]
    proc, stderr = _start(cmd)
    time.sleep(wait_s)
    signalled_s = time.perf_counter()
    proc.send_signal(sig)
    try:
        code = proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    exited_s = time.perf_counter()
    time.sleep(SETTLE_S)
    received = [msg for msg, _ in queue.drain()]
    return {"signal": sig.name, "exit_status": code, "exit_after_signal_s": exited_s - signalled_s,
            **replay(received, stats_path), "traceback": "Traceback" in "".join(stderr)}


def _start(cmd: list[str]) -> tuple[subprocess.Popen, list[str]]:
    """Run perform (this checkout's) until it announces itself; its stderr lines keep coming in."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT)
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True).start()
    deadline_s = time.monotonic() + 60.0
    while not any("Ctrl-C" in line for line in stderr):
        if proc.poll() is not None or time.monotonic() > deadline_s:
            proc.kill()
            proc.wait()
            raise RuntimeError(f"perform did not start: {''.join(stderr)[-1000:]}")
        time.sleep(0.01)
    return proc, stderr


def replay(received: list, stats_path: Path) -> dict:
    """What one run's messages say: notes left on, whether all-notes-off came, what was lost."""
    try:
        sent = json.loads(stats_path.read_text()).get("messages_sent")
    except (OSError, ValueError):
        sent = None
    panic_end = next((i for i, m in enumerate(received) if _all_notes_off(m)), len(received) - 1)
    return {"messages_sent": sent, "received_until_panic": panic_end + 1,
            "note_ons": sum(1 for m in received if m.type == "note_on" and m.velocity > 0),
            "stuck": [f"ch{c + 1}:{p}" for c, p in stuck_notes(received)],
            "all_notes_off": any(_all_notes_off(m) for m in received),
            "last": [str(m) for m in received[-4:]]}


def _all_notes_off(msg) -> bool:
    return msg.type == "control_change" and msg.control == 123


def summary(runs: list[dict], wall_s: float) -> dict:
    after = sorted(r["exit_after_signal_s"] for r in runs)
    pick = lambda q: after[min(len(after) - 1, int(q * len(after)))]  # noqa: E731
    bad = [dict(run=i, **r) for i, r in enumerate(runs) if r["stuck"] or not r["all_notes_off"]
           or (r["messages_sent"] or 0) > r["received_until_panic"] or r["exit_status"] != 0
           or r["exit_after_signal_s"] > SLOW_EXIT_S]
    return {"runs": len(runs), "stuck_notes": sum(len(r["stuck"]) for r in runs),
            "runs_with_stuck_notes": sum(1 for r in runs if r["stuck"]),
            "runs_without_all_notes_off": sum(1 for r in runs if not r["all_notes_off"]),
            "note_ons": sum(r["note_ons"] for r in runs),
            "messages_lost": sum(max(0, r["messages_sent"] - r["received_until_panic"]) for r in runs
                                 if r["messages_sent"] is not None),
            "runs_losing_messages": sum(1 for r in runs if r["messages_sent"] is not None
                                        and r["received_until_panic"] < r["messages_sent"]),
            "exit_statuses": dict(Counter(f"{r['signal']}:{r['exit_status']}" for r in runs)),
            "tracebacks": sum(r["traceback"] for r in runs),
            "exit_after_signal_s": {"p50": pick(0.5), "p99": pick(0.99), "max": after[-1]},
            "slow_exits": sum(1 for r in runs if r["exit_after_signal_s"] > SLOW_EXIT_S),
            "wall_s": wall_s, "bad_runs": bad[:20]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--sync", action="store_true", help="run JACK with --sync")
    parser.add_argument("--bpm", type=float, default=240.0)
    parser.add_argument("--period-frames", type=int, default=128, help="JACK period (48 kHz)")
    parser.add_argument("--seed", type=int, default=0, help="for the signal times and perform")
    parser.add_argument("--model", type=Path, help="an .onnx model (default: models/default.onnx "
                        "when present, else a tiny untrained one)")
    args = parser.parse_args(argv)
    jack = _load("lstm_jam_tests_jack", ROOT / "tests" / "jack.py")
    reason = jack.jack_available()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    default = ROOT / "models" / "default.onnx"
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-exits-") as tmp:
        model = args.model or (default if default.is_file() else jack.tiny_model(tmp))
        with jack.JackServer(period_frames=args.period_frames, sync=args.sync) as server:
            queue = ports.StampedQueue(maxlen=1_000_000)
            port = ports.open_input(READER, api="jack", virtual=True, client_name="exits",
                                    callback=queue.put)
            runs: list[dict] = []
            start_s = time.perf_counter()
            try:
                for i in range(args.runs):
                    sig = signal.SIGINT if i % 2 == 0 else signal.SIGTERM
                    runs.append(one_exit(model, queue, sig, rng.uniform(3.0, 4.0),
                                         args.seed * 100_000 + i, args.bpm, Path(tmp) / "stats.json"))
                    if not args.json:
                        print(f"{i}: {runs[-1]['signal']} -> {runs[-1]['exit_status']}, "
                              f"stuck {runs[-1]['stuck']}", file=sys.stderr)
            finally:
                port.close()
            result = {"jack": {"sync": server.sync, "period_frames": server.period_frames,
                               "rate_hz": server.rate_hz},
                      "model": str(model), "bpm": args.bpm,
                      **summary(runs, time.perf_counter() - start_s)}
    print(json.dumps(result, indent=2) if args.json else _text(result))
    return 0


def _text(r: dict) -> str:
    return "\n".join([
        f"JACK {'--sync' if r['jack']['sync'] else 'asynchronous'}: {r['runs']} exits in {r['wall_s']:.0f} s",
        f"stuck notes       {r['stuck_notes']} in {r['runs_with_stuck_notes']} runs (goal 0)",
        f"no CC 123         {r['runs_without_all_notes_off']} runs",
        f"exit statuses     {r['exit_statuses']}",
        f"signal -> exit    p50 {r['exit_after_signal_s']['p50']:.2f} s  max "
        f"{r['exit_after_signal_s']['max']:.2f} s"])


if __name__ == "__main__":
    raise SystemExit(main())
