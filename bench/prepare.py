"""Corpus preparation speed and what the token language keeps, on one MIDI corpus, in one run.

    python bench/prepare.py --json                       # ff-piano; about a minute (music21 ~45 s)
    python bench/prepare.py --json --corpus DIR --no-music21

Figures:
- cold_prepare_s: load_corpus with use_cache=False (best of --repeat), in this process, with
  --workers reader processes (default: one per core); cold_prepare_1_worker_s: the same read serially;
- cached_prepare_s: load_corpus again, every file from the cache (best of --repeat);
- cli_cold_s / cli_cached_s: `python -m train prepare` as a subprocess, interpreter start included;
- music21_parse_s: music21.converter.parse of each file (forceSource: no pickle cache), the seed
  tutorials' way: one serial run, in this process; speedup_vs_music21 = music21_parse_s /
  cold_prepare_s (ours with the workers, best of --repeat: goal >= 30), and
  speedup_vs_music21_1_worker = music21_parse_s / cold_prepare_1_worker_s (one process each);
- round_trip: of the notes quantized onto the grid (perform.quantize's rules), the fraction that
  come back from encode -> decode with the same start step, pitch and duration
  (`on_grid_pitch_start_dur`), and the fraction that also keep their exact velocity
  (`exact_with_velocity`; velocity is binned, so it comes back as its bin's centre). `lost` counts
  why: pitches folded by octaves into the range, velocities moved to their bin's centre. `grid`
  says what quantization itself changed in the raw file: onsets not on the grid, durations capped,
  notes merged (one pitch twice on one step). Fractions are of the quantized notes, except
  onsets_off_the_grid and notes_merged (of the raw notes).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perform.config import load_config  # noqa: E402
from perform.quantize import notes_from_events  # noqa: E402
from perform.tokens import Vocab  # noqa: E402
from train.corpus import DEFAULT_WORKERS, find_files, load_corpus  # noqa: E402
from train.midi_read import ReadSkip, read_midi  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus" / "ff-piano"


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


def cli_seconds(corpus: Path, cache_dir: Path, *flags: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "train", "prepare", str(corpus), "--json", *flags,
                    "--set", f"paths.cache_dir={json.dumps(str(cache_dir))}"],
                   check=True, capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def music21_seconds(files: list[str]) -> float:
    import warnings

    from music21 import converter
    warnings.filterwarnings("ignore", module="music21")
    started = time.perf_counter()
    for path in files:
        converter.parse(path, forceSource=True)
    return time.perf_counter() - started


def round_trip(files: list[str], vocab: Vocab) -> dict:
    """What quantization and the language keep of each file's notes (see the module docstring)."""
    c = Counter()
    for path in files:
        try:
            songs = read_midi(Path(path).read_bytes(), vocab.steps_per_beat).songs
        except ReadSkip:
            continue
        for events in songs.values():
            _count_file(events, vocab, c)
    n = max(c["quantized"], 1)
    return {
        "notes_quantized": c["quantized"],
        "on_grid_pitch_start_dur": c["same_psd"] / n,
        "exact_with_velocity": c["same_all"] / n,
        "lost": {"pitch_folded_into_range": c["folded"] / n,
                 "velocity_moved_to_bin_centre": c["vel_moved"] / n,
                 "velocity_mean_abs_change": c["vel_abs_change"] / n},
        "grid": {"raw_notes": c["raw"],
                 "onsets_off_the_grid": c["off_grid"] / max(c["raw"], 1),
                 "durations_capped": c["capped"] / n,
                 "notes_merged_same_step_and_pitch": (c["raw"] - c["quantized"]) / max(c["raw"], 1)},
    }


def _count_file(events, vocab: Vocab, c: Counter) -> None:
    onsets = [t for t, _, v in events if v > 0]
    c["raw"] += len(onsets)
    c["off_grid"] += sum(1 for t in onsets if abs(t - round(t)) > 1e-9)
    notes = notes_from_events(events, vocab.max_dur_steps)
    if not notes:
        return
    first = notes[0].start_step
    keys = Counter((n.start_step - first, n.pitch, n.dur_steps) for n in notes)
    full = Counter((n.start_step - first, n.pitch, n.dur_steps, n.velocity) for n in notes)
    back = vocab.decode(vocab.encode(_shifted(notes, first)))
    c["quantized"] += len(notes)
    c["capped"] += sum(1 for n in notes if n.dur_steps == vocab.max_dur_steps)
    c["folded"] += sum(1 for n in notes if vocab.fold_pitch(n.pitch) != n.pitch)
    moved = [abs(vocab.bin_velocity(vocab.velocity_bin(n.velocity)) - n.velocity) for n in notes]
    c["vel_moved"] += sum(1 for m in moved if m)
    c["vel_abs_change"] += sum(moved)
    c["same_psd"] += sum((keys & Counter((n.start_step, n.pitch, n.dur_steps) for n in back)).values())
    c["same_all"] += sum((full & Counter((n.start_step, n.pitch, n.dur_steps, n.velocity)
                                         for n in back)).values())


def _shifted(notes, first):
    from perform.tokens import Note
    return [Note(n.start_step - first, n.pitch, n.dur_steps, n.velocity) for n in notes]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeat", type=int, default=3, help="timings are the best of this many runs")
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--no-music21", action="store_true", help="skip the ~45 s music21 parse")
    args = p.parse_args(argv)
    vocab = Vocab.from_grid(load_config(None).grid)
    files = find_files([args.corpus])
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold_s, corpus = best_of(args.repeat, lambda: load_corpus(
            [args.corpus], vocab, cache_dir=cache, use_cache=False, workers=args.workers))
        serial_s, _ = best_of(args.repeat, lambda: load_corpus(
            [args.corpus], vocab, cache_dir=cache, use_cache=False, workers=1))
        cached_s, again = best_of(args.repeat, lambda: load_corpus(
            [args.corpus], vocab, cache_dir=cache, workers=args.workers))
        cli_cold = cli_seconds(args.corpus, Path(tmp) / "cli", "--no-cache")
        cli_cached = cli_seconds(args.corpus, Path(tmp) / "cli")
    s = corpus.summary()
    out = {"corpus": str(args.corpus), "files": len(files), "files_ok": s["files_ok"],
           "files_skipped": s["files_skipped"], "skipped": s["skipped"], "songs": s["songs"],
           "notes": s["notes"], "tokens": s["tokens"], "steps": s["steps"],
           "vocab_size": s["vocab_size"], "cold_prepare_s": round(cold_s, 4),
           "workers": args.workers or DEFAULT_WORKERS, "cold_prepare_1_worker_s": round(serial_s, 4),
           "cached_prepare_s": round(cached_s, 4), "cached_from_cache": again.from_cache,
           "cli_cold_s": round(cli_cold, 3), "cli_cached_s": round(cli_cached, 3),
           "repeat": args.repeat, "round_trip": round_trip(files, vocab)}
    if not args.no_music21:
        m21_s = music21_seconds(files)
        out.update(music21_parse_s=round(m21_s, 3), speedup_vs_music21=round(m21_s / cold_s, 1),
                   speedup_vs_music21_1_worker=round(m21_s / serial_s, 1))
    out["goals"] = {"speedup_vs_music21>=30": out.get("speedup_vs_music21", 0) >= 30,
                    "cached_prepare_s<=0.2": cached_s <= 0.2,
                    "all_files_read": s["files_skipped"] == 0 and s["files_ok"] == len(files)}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        for key, value in out.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
