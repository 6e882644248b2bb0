"""Scale figures, in one run: corpus preparation throughput on 20,000 MIDI files, peak resident memory
of training on shards 1x, 10x and 100x the Bach chorales, and 2-process gloo DDP against 1 process.

    python bench/scale.py --json                          # all three parts: ~13 minutes on 2 cores
    python bench/scale.py --json --parts prepare          # ~3 min (writing 25-30 s, 4 prepares of 30-40 s)
    python bench/scale.py --json --parts memory           # ~7 min (12 trainings of 300 steps)
    python bench/scale.py --json --parts ddp              # ~2.5 min (7 trainings of 200 steps)
    python bench/scale.py --json --parts memory --memory-copies 1,10 --memory-repeat 1

Everything is made in a temporary folder that is deleted afterwards (no corpus is kept or committed);
every random choice is seeded (--seed). `machine` gives the core count, Python, torch, numpy; each part
records `loadavg_at_start` (os.getloadavg(): 1, 5, 15 minutes), since another job on these cores
slows the figures down. MiB = 2**20 bytes.

Figures:
- prepare: --files synthetic piano pieces written with mido by this bench (seeded: 8-32 bars of 2/4,
  3/4 or 4/4, 60-180 BPM, a scale-wise melody over block, broken or arpeggiated chords, some swung or
  humanized off the grid, some with a drum track, format 0 or 1, ticks per beat 96-960), of which
  --corrupt-fraction are broken on purpose (truncated, garbage bytes, empty) so that skipping is
  exercised. `write_s` is the time to write them (workers: every core; not part of any figure).
  `prepare_shards` (train.shards) then reads them all with use_cache=False into a fresh temporary
  cache and shard folder (the files are in the OS file cache, having just been written), with 1
  reader process (`workers_1`) and with one per core (`workers_all`), --prepare-repeat times each,
  interleaved (1, all, 1, all); the best run of each is kept (`seconds_every_run` lists them all):
  seconds, files/s (all files, skipped ones included), tokens/s, files_ok/skipped with the skip
  reasons, files_with_warnings (truncated files read as far as valid), songs, notes, tokens, shards
  and shard bytes. `corpus.corrupt_salvaged` is the broken files that still gave notes. `per_core` is
  the 1-process figure; `parallel_speedup` = seconds(1) / seconds(all) and `parallel_efficiency` =
  parallel_speedup / workers. `resume` runs prepare_shards again on the last finished folder:
  `files_read` must be 0; `seconds` is what checking a finished folder costs.
  `lakh_extrapolation` is NOT a measurement: Lakh MIDI's 176,581 files and the issue's ~1e9 tokens
  divided by this run's rates (`hours_by_files_per_s`, `hours_by_tokens_per_s`, for all cores and
  for one); Lakh files average ~5,700 tokens against ~850 here and carry many tracks, drums and
  controllers, so the by-tokens figure is the likelier one and both are optimistic.
- memory: shard folders written with train.shards.write_shards from the chorales' songs (as
  load_corpus gives them: the cache) replicated `copies` times under unique names (copy{k}/{file}),
  --files-per-shard files per shard, token ids as they are; `open_shards_heap_mib` is what
  open_shards's result holds on the heap (tracemalloc in this process; the maps are not counted),
  also per song. On each folder `python -m train DIR --out RUN --max-steps --memory-steps --threads 1
  --quiet --set train.val_fraction=0.01` runs in a fresh subprocess, --memory-repeat times (the
  sizes interleaved). Per run: `peak_rss_mib` is its own ru_maxrss (os.wait4 on its pid),
  `vm_hwm_mib` the last VmHWM read from /proc/PID/status (the same peak, as polled),
  `rss_anon_max_mib` and `rss_file_max_mib` the maxima of RssAnon (heap: arrays, Python objects,
  torch's allocations) and RssFile (mapped files: the shards and torch's libraries) polled every
  --poll-s. The run is split at the line the trainer prints once the corpus is open and the
  baselines are fitted: `peak_rss_to_baselines_mib` (VmHWM then), and after it (batches, optimizer
  steps, validation, checkpoints) `max_rss_training_mib` / `median_rss_training_mib` (largest and
  median polled VmRSS) and the RssAnon / RssFile maxima. Also wall_s, steps, tokens_per_s, val_nll.
  Per size: tokens, songs, shards, shard_bytes, and the runs' mean of each memory figure with its
  [min, max] (`..._range`). `growth_10x_to_100x` gives the means' change in MiB (and the peak's in
  %). `fixed_malloc` (per size, and in the growth) is one more run with MALLOC_MMAP_THRESHOLD_ and
  MALLOC_TRIM_THRESHOLD_ set to 1 MiB: glibc then no longer raises its mmap threshold after a large
  block is freed (the n-gram fit frees 100+ MiB ones), so what is left is what the trainer holds,
  without the allocator's history (--no-fixed-malloc skips it). For scale: `import torch` alone is ~220 MiB resident here, and the n-gram baselines are fitted
  on at most train.baseline_max_tokens (2,000,000) training tokens, so at 10x and 100x they cost the
  same (at 1x they see 0.4M).
- ddp: on the 1x chorales shards, --ddp-steps optimizer steps (they span two epochs: a chorales
  epoch is ~190 batches; the validation after the first is not timed), default settings otherwise
  (val fraction 0.1). Runs: `one_process_1_thread`, `one_process_2_threads`, `two_processes`
  (python -m torch.distributed.run --standalone --nproc-per-node 2 -m train ..., gloo, 1 thread
  each), `one_process_1_thread_dropout_masks_1` and `_2` (1 process whose dropout masks alone
  differ: this bench runs the trainer with train_epoch's torch.manual_seed shifted by 1000 or 2000;
  the split, the shuffle, the transpositions and the initial weights are unchanged), and
  `one_process_1_thread_dropout_0` / `two_processes_dropout_0` (--set train.dropout=0.0). Per run:
  tokens_per_s (training tokens, the whole batch's, over training seconds, summed over the epochs
  the steps span; validation and start-up excluded; `last_epoch_tokens_per_s` is metrics.json's
  last entry), val_nll after the last step, steps, wall_s. `two_vs_one`: the speedups, and the
  |val_nll differences|: with dropout 0 the two should agree to ~1e-3 (only the float summation
  order differs: `abs_val_nll_diff_dropout_0`); with dropout the 2-process run draws other masks,
  so `abs_val_nll_diff` is to be read against `dropout_mask_noise` (the three pairs of 1-process
  runs differing only in their masks, and their mean) and `thread_order_noise` (1 against 2
  threads: summation order only).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from perform.config import load_config  # noqa: E402
from perform.tokens import STEP, Vocab  # noqa: E402

PARTS = ("prepare", "memory", "ddp")
LAKH_FILES = 176_581
LAKH_TOKENS = 1e9
MIB = 2 ** 20
CHILD_MASKS = "--child-train-mask-offset"     # hidden: run the trainer with shifted dropout seeds
MASK_OFFSETS = (1000, 2000)                   # far from the per-epoch seeds (seed * 100003 + epoch)


def say(text: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import torch
    return {"cpu_count": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform()}


# synthetic MIDI ---------------------------------------------------------------------------------

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 1, 4), (5, 3, 0, 4), (0, 4, 5, 3))


def synth_midi(index: int, seed: int) -> bytes:
    """One plausible small piano piece as MIDI bytes (deterministic in seed and index)."""
    import random

    import mido
    rng = random.Random(seed * 1_000_003 + index)
    tpb = rng.choice([96, 120, 192, 240, 384, 480, 960])
    beats = rng.choice([2, 3, 4, 4, 4])
    bars = rng.randint(8, 32)
    tonic = rng.randrange(12)
    scale = MAJOR if rng.random() < 0.6 else MINOR
    progression = rng.choice(PROGRESSIONS)
    swing = rng.random() < 0.15
    jitter = int(tpb * 0.04) if rng.random() < 0.3 else 0
    base_vel = rng.randint(55, 99)
    notes = []                                  # (start beat, length beats, pitch, velocity, channel)
    # melody: a walk over the scale, mostly steps, some leaps and rests
    degree, t, end = rng.randint(7, 13), 0.0, float(bars * beats)
    lengths, weights = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0), (12, 38, 6, 30, 7, 7)
    while t < end:
        length = min(rng.choices(lengths, weights)[0], end - t)
        if rng.random() > 0.08:
            degree = min(max(degree + rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)), 0), 20)
            pitch = 48 + tonic + 12 * (degree // 7) + scale[degree % 7]
            start = t + (1 / 6 if swing and abs(t % 1 - 0.5) < 1e-9 else 0.0)
            vel = min(max(int(rng.gauss(base_vel + 8, 10)), 20), 127)
            notes.append((start, length * 0.95, pitch, vel, 0))
        t += length
    # accompaniment: the progression's triads, one per bar or half bar
    style = rng.randrange(3)                    # 0 block, 1 broken (Alberti), 2 arpeggio
    per_bar = 2 if beats == 4 and rng.random() < 0.4 else 1
    span = beats / per_bar
    for k in range(bars * per_bar):
        root = progression[(k // per_bar) % len(progression)]
        chord = [48 + tonic + scale[(root + j) % 7] + 12 * ((root + j) // 7) for j in (0, 2, 4)]
        at = k * span
        vel = min(max(int(rng.gauss(base_vel - 10, 8)), 20), 127)
        if style == 0:
            notes += [(at, span * 0.9, p, vel, 1) for p in chord]
        else:
            order = (0, 2, 1, 2) if style == 1 else (0, 1, 2, 1)
            notes += [(at + j * 0.5, 0.45, chord[order[j % 4]], vel, 1) for j in range(int(span / 0.5))]
    if rng.random() < 0.1:                      # a drum track (channel 10: left out when read)
        notes += [(float(b), 0.1, 36 if b % 2 == 0 else 38, 90, 9) for b in range(bars * beats)]
    bpm = rng.uniform(60, 180)

    def ticks(beat: float) -> int:
        return max(0, round(beat * tpb) + (rng.randint(-jitter, jitter) if jitter else 0))

    def track(events, name: str, programs: dict[int, int]) -> list:
        timed = []                              # (tick, off before on, channel, pitch, velocity)
        for start, length, pitch, vel, ch in events:
            on = ticks(start)
            timed.append((on, 1, ch, pitch, vel))
            timed.append((max(on + 1, ticks(start + length)), 0, ch, pitch, 0))
        timed.sort()
        msgs = [mido.MetaMessage("track_name", name=name, time=0)]
        msgs += [mido.Message("program_change", channel=c, program=p, time=0)
                 for c, p in programs.items()]
        now = 0
        for tick, is_on, ch, pitch, vel in timed:
            msgs.append(mido.Message("note_on" if is_on else "note_off", channel=ch, note=pitch,
                                     velocity=vel, time=tick - now))
            now = tick
        return msgs

    meta = [mido.MetaMessage("time_signature", numerator=beats, denominator=4, time=0),
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)]
    programs = {0: rng.choice([0, 0, 1, 4]), 1: 0}
    if rng.random() < 0.5:                      # format 0: one track, every channel
        midi = mido.MidiFile(type=0, ticks_per_beat=tpb)
        midi.tracks.append(mido.MidiTrack([*meta, *track(notes, "piano", programs)]))
    else:                                       # format 1: a tempo track, then one per part
        midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
        midi.tracks.append(mido.MidiTrack(meta))
        for ch, name in ((0, "melody"), (1, "chords"), (9, "drums")):
            part = [n for n in notes if n[4] == ch]
            if part:
                midi.tracks.append(mido.MidiTrack(track(part, name, {ch: programs.get(ch, 0)})))
    for t_ in midi.tracks:
        t_.append(mido.MetaMessage("end_of_track", time=0))
    buf = io.BytesIO()
    midi.save(file=buf)
    return buf.getvalue()


def corrupt(data: bytes, index: int, seed: int) -> bytes:
    """A broken file: truncated, garbage after a MIDI header, pure garbage, or empty."""
    rng = np.random.default_rng([seed, index, 1])
    kind = index % 4
    if kind == 0:
        return data[:int(rng.integers(10, max(11, len(data) // 2)))]
    if kind == 1:
        return data[:14] + rng.integers(0, 256, int(rng.integers(50, 2000)), dtype=np.uint8).tobytes()
    if kind == 2:
        return rng.integers(0, 256, int(rng.integers(50, 2000)), dtype=np.uint8).tobytes()
    return b""


def _write_range(args: tuple[str, int, int, int, frozenset]) -> int:
    folder, start, stop, seed, broken = args
    written = 0
    for i in range(start, stop):
        data = synth_midi(i, seed)
        if i in broken:
            data = corrupt(data, i, seed)
        path = Path(folder) / f"{i // 1000:03d}" / f"piece{i:06d}.mid"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += len(data)
    return written


def write_corpus(folder: Path, files: int, corrupt_fraction: float, seed: int) -> dict:
    rng = np.random.default_rng([seed, 999])
    n_broken = int(round(files * corrupt_fraction))
    broken = frozenset(rng.choice(files, n_broken, replace=False).tolist())
    workers = os.cpu_count() or 1
    chunk = 500
    jobs = [(str(folder), a, min(a + chunk, files), seed, broken) for a in range(0, files, chunk)]
    started = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        total = sum(pool.map(_write_range, jobs))
    return {"files": files, "corrupt_written": n_broken, "bytes": total,
            "mean_file_bytes": round(total / files), "write_s": round(time.perf_counter() - started, 2),
            "write_workers": workers}


# part 1: prepare throughput --------------------------------------------------------------------


def _prepare_once(corpus: Path, vocab: Vocab, tmp: Path, name: str, workers: int) -> dict:
    """prepare_shards into a fresh shard folder and cache (tmp/shards-NAME, tmp/cache-NAME)."""
    from train.shards import prepare_shards
    out = tmp / f"shards-{name}"
    say(f"prepare_shards with {workers} worker(s) ({name})")
    load = loadavg()
    report = prepare_shards([corpus], vocab, out, cache_dir=tmp / f"cache-{name}", use_cache=False,
                            workers=workers)
    s = report.summary()
    files = s["files_ok"] + s["files_skipped"]
    reasons: dict[str, int] = {}
    for item in s["skipped"]:
        key = item["reason"].split(" (")[0].split(":")[0][:60]
        reasons[key] = reasons.get(key, 0) + 1
    return {"workers": workers, "seconds": round(report.seconds, 2),
            "files_per_s": round(files / report.seconds, 1),
            "tokens_per_s": round(s["tokens"] / report.seconds),
            "files_ok": s["files_ok"], "files_skipped": s["files_skipped"],
            "skip_reasons": reasons, "files_with_warnings": len({w["file"] for w in s["warnings"]}),
            "songs": s["songs"], "notes": s["notes"], "tokens": s["tokens"], "shards": s["shards"],
            "shard_bytes": _folder_bytes(out), "files_read": s["files_read"], "loadavg_at_start": load}


def part_prepare(args, vocab: Vocab) -> dict:
    from train.shards import prepare_shards
    out: dict = {"loadavg_at_start": loadavg(), "repeat": args.prepare_repeat}
    all_workers = os.cpu_count() or 1
    runs: dict[int, list[dict]] = {1: [], all_workers: []}
    with tempfile.TemporaryDirectory(prefix="scale-prepare-") as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "midi"
        say(f"writing {args.files} MIDI files")
        out["corpus"] = write_corpus(corpus, args.files, args.corrupt_fraction, args.seed)
        last = ""
        for k in range(args.prepare_repeat):             # 1, all, 1, all: load drifts hit both
            for workers in runs:
                last = f"{workers}w-{k}"
                runs[workers].append(_prepare_once(corpus, vocab, tmp, last, workers))
                if k < args.prepare_repeat - 1 or workers != all_workers:
                    shutil.rmtree(tmp / f"shards-{last}")
                shutil.rmtree(tmp / f"cache-{last}")
        say("prepare_shards again on the finished folder (resume)")
        report = prepare_shards([corpus], vocab, tmp / f"shards-{last}", cache_dir=tmp / "cache-resume",
                                use_cache=False, workers=all_workers)
        s = report.summary()
        out["resume"] = {"files_read": s["files_read"], "files_earlier": s["files_earlier"],
                         "seconds": round(report.seconds, 3)}
    every = [r for rs in runs.values() for r in rs]
    same = {(r["tokens"], r["notes"], r["files_ok"]) for r in every}
    out["corpus"]["same_tokens_every_run"] = len(same) == 1
    out["corpus"]["corrupt_salvaged"] = out["corpus"]["corrupt_written"] - every[0]["files_skipped"]
    best = {w: min(rs, key=lambda r: r["seconds"]) for w, rs in runs.items()}
    one, many = best[1], best[all_workers]
    for w, key in ((1, "workers_1"), (all_workers, "workers_all")):
        out[key] = {**best[w], "seconds_every_run": [r["seconds"] for r in runs[w]],
                    "loadavg_every_run": [r["loadavg_at_start"] for r in runs[w]]}
        out[key].pop("loadavg_at_start")
    out["per_core"] = {"files_per_s": one["files_per_s"], "tokens_per_s": one["tokens_per_s"]}
    speedup = one["seconds"] / many["seconds"]
    out["parallel_speedup"] = round(speedup, 2)
    out["parallel_efficiency"] = round(speedup / all_workers, 2)
    out["tokens_per_file"] = round(many["tokens"] / max(many["files_ok"], 1))

    def hours(rate: float, amount: float) -> float:
        return round(amount / rate / 3600, 2)

    out["lakh_extrapolation"] = {
        "files": LAKH_FILES, "tokens_assumed": LAKH_TOKENS,
        "tokens_per_file_assumed": round(LAKH_TOKENS / LAKH_FILES),
        f"hours_by_files_per_s_{all_workers}_workers": hours(many["files_per_s"], LAKH_FILES),
        f"hours_by_tokens_per_s_{all_workers}_workers": hours(many["tokens_per_s"], LAKH_TOKENS),
        "hours_by_files_per_s_1_worker": hours(one["files_per_s"], LAKH_FILES),
        "hours_by_tokens_per_s_1_worker": hours(one["tokens_per_s"], LAKH_TOKENS),
        "note": ("an extrapolation, not a measurement: Lakh's file count and ~1e9 tokens divided by "
                 "the rates on these synthetic files (~{} tokens each; Lakh's average ~{}, with "
                 "many tracks, drums and controllers to parse); expect the by-tokens figure or "
                 "longer").format(out["tokens_per_file"], round(LAKH_TOKENS / LAKH_FILES)),
    }
    return out


# child processes: peak memory and timing ------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int] | None:
    """VmRSS, VmHWM, RssAnon, RssFile of a live process in kB (None once it is gone or a zombie)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = int(value.split()[0])
    return out if len(out) == 4 else None


def run_measured(cmd: list[str], poll_s: float = 0.1, env: dict | None = None) -> dict:
    """Run `cmd` from the repository root; its wall time, output lines (with the second each came),
    its own ru_maxrss (os.wait4) and the /proc/PID/status samples taken every `poll_s`."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[tuple[float, str]] = []

    def read() -> None:
        for line in proc.stdout:
            lines.append((time.perf_counter() - started, line.rstrip()))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, dict]] = []
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        s = _proc_status(proc.pid)
        if s is not None:
            samples.append((time.perf_counter() - started, s))
        time.sleep(poll_s)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=10)
    if proc.returncode != 0:
        tail = "\n".join(text for _, text in lines[-20:])
        raise SystemExit(f"{' '.join(cmd)} failed with status {proc.returncode}:\n{tail}")
    return {"wall_s": wall, "ru_maxrss_kb": usage.ru_maxrss, "samples": samples, "lines": lines}


def _mib(kb: float) -> float:
    return round(kb * 1024 / MIB, 1)


def _child_env() -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)        # torchrun sets 1 per process; --threads does the rest
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _train_figures(run_dir: Path) -> dict:
    log = json.loads((run_dir / "metrics.json").read_text())
    hist = log["history"]
    tokens = sum(h["train_tokens"] for h in hist)
    seconds = sum(h["train_s"] for h in hist)
    return {"steps": log["metrics"]["steps"], "epochs": len(hist),
            "tokens_per_s": round(tokens / seconds),
            "last_epoch_tokens_per_s": round(hist[-1]["tokens_per_s"]),
            "train_s": round(seconds, 2), "val_nll": round(hist[-1]["val_nll"], 5),
            "processes": log["metrics"]["processes"], "train_tokens": log["corpus"]["train_tokens"],
            "val_tokens": log["corpus"]["val_tokens"]}


# part 2: memory over shards ---------------------------------------------------------------------


def chorale_results(vocab: Vocab, cache_dir: str) -> list:
    """The chorales' songs as FileResults (one per file, from load_corpus and its cache)."""
    from train.corpus import load_corpus
    from train.corpus_cache import FileResult, SongData
    corpus = load_corpus(None, vocab, cache_dir=cache_dir)
    by_file: dict[str, list] = {}
    for song in corpus.songs:
        path, _, suffix = song.name.partition("#")
        ids = np.asarray(song.ids)
        notes = int(np.count_nonzero((ids >= vocab.note_base) & (ids < vocab.dur_base)))
        by_file.setdefault(path, []).append(SongData(suffix, ids, notes, int(np.count_nonzero(ids == STEP))))
    return [FileResult(path, songs) for path, songs in by_file.items()]


def write_copies(out: Path, vocab: Vocab, base: list, copies: int, per_shard: int) -> Path:
    """A shard folder of `copies` copies of `base` under the names copy{k}/{file}."""
    from train.corpus_cache import FileResult
    from train.shards import write_shards
    root = str(Path(base[0].path).parent)

    def results():
        for k in range(copies):
            for r in base:
                yield FileResult(f"copy{k}/{os.path.relpath(r.path, root)}", r.songs)

    def batches():
        batch = []
        for r in results():
            batch.append(r)
            if len(batch) == per_shard:
                yield batch
                batch = []
        if batch:
            yield batch

    return write_shards(out, vocab, batches(), [f"music21:bach x{copies} (bench/scale.py)"])


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(1 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 20)}


def _memory_run(folder: Path, run_dir: Path, args, env_extra: dict | None = None) -> dict:
    """One training in a fresh subprocess; its peak and polled memory, split at the baselines line."""
    load = loadavg()
    m = run_measured([sys.executable, "-m", "train", str(folder), "--out", str(run_dir),
                      "--max-steps", str(args.memory_steps), "--threads", "1", "--quiet",
                      "--set", "train.val_fraction=0.01"], args.poll_s,
                     {**_child_env(), **(env_extra or {})})
    split = next((t for t, text in m["lines"] if "baselines:" in text), None)
    samples = [s for _, s in m["samples"]]
    before = [s for t, s in m["samples"] if split is None or t < split]
    after = [s for t, s in m["samples"] if split is not None and t >= split]
    fig = _train_figures(run_dir)
    shutil.rmtree(run_dir)

    def top(rows, key):
        return _mib(max(s[key] for s in rows)) if rows else None

    return {"loadavg_at_start": load, "peak_rss_mib": _mib(m["ru_maxrss_kb"]),
            "vm_hwm_mib": top(samples, "VmHWM"), "rss_anon_max_mib": top(samples, "RssAnon"),
            "rss_file_max_mib": top(samples, "RssFile"),
            "to_baselines_s": round(split, 1) if split is not None else None,
            "peak_rss_to_baselines_mib": top(before, "VmHWM"),
            "max_rss_training_mib": top(after, "VmRSS"),
            "median_rss_training_mib": _mib(float(np.median([s["VmRSS"] for s in after]))) if after else None,
            "max_rss_anon_training_mib": top(after, "RssAnon"),
            "max_rss_file_training_mib": top(after, "RssFile"),
            "samples": len(samples), "wall_s": round(m["wall_s"], 1), "steps": fig["steps"],
            "tokens_per_s": fig["tokens_per_s"], "val_nll": fig["val_nll"],
            "train_tokens": fig["train_tokens"], "val_tokens": fig["val_tokens"]}


def _heap_of_open_shards(folder: Path, vocab: Vocab) -> int:
    """Bytes that open_shards's result holds on the heap (tracemalloc; the maps are not counted)."""
    import gc
    import tracemalloc

    from train.shards import open_shards
    gc.collect()
    tracemalloc.start()
    corpus = open_shards(folder, vocab)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del corpus
    gc.collect()
    return held


RUN_KEYS = ("peak_rss_mib", "rss_anon_max_mib", "rss_file_max_mib", "peak_rss_to_baselines_mib",
            "max_rss_training_mib", "median_rss_training_mib")


def part_memory(args, vocab: Vocab, base: list) -> dict:
    out: dict = {"loadavg_at_start": loadavg(), "steps": args.memory_steps,
                 "files_per_shard": args.files_per_shard, "repeat": args.memory_repeat,
                 "command": f"python -m train DIR --out RUN --max-steps {args.memory_steps} --threads 1 "
                            "--quiet --set train.val_fraction=0.01", "sizes": {}}
    sizes = out["sizes"]
    with tempfile.TemporaryDirectory(prefix="scale-memory-") as tmp_name:
        tmp = Path(tmp_name)
        folders = {}
        for copies in args.memory_copies:
            name = f"{copies}x"
            say(f"memory: writing {name} shards")
            started = time.perf_counter()
            folders[name] = write_copies(tmp / f"shards-{name}", vocab, base, copies, args.files_per_shard)
            write_s = time.perf_counter() - started
            manifest = json.loads((folders[name] / "manifest.json").read_text())
            heap = _heap_of_open_shards(folders[name], vocab)
            sizes[name] = {"copies": copies, "songs": manifest["songs"], "tokens": manifest["tokens"],
                           "shards": len(manifest["shards"]), "shard_bytes": _folder_bytes(folders[name]),
                           "write_shards_s": round(write_s, 2), "open_shards_heap_mib": round(heap / MIB, 1),
                           "open_shards_heap_bytes_per_song": round(heap / manifest["songs"]),
                           "runs": []}
        for k in range(args.memory_repeat):             # sizes interleaved: load drifts hit all
            for name, folder in folders.items():
                say(f"memory: training on {name} ({sizes[name]['tokens']:,} tokens), run {k + 1}")
                sizes[name]["runs"].append(_memory_run(folder, tmp / f"run-{name}-{k}", args))
        for name, folder in folders.items():            # glibc's dynamic mmap threshold pinned
            if args.fixed_malloc:
                say(f"memory: training on {name} with {FIXED_MALLOC}")
                run = _memory_run(folder, tmp / f"run-{name}-fixed", args, FIXED_MALLOC)
                sizes[name]["fixed_malloc"] = {key: run[key] for key in RUN_KEYS}
    for entry in sizes.values():
        runs = entry["runs"]
        entry.update(train_tokens=runs[0]["train_tokens"], val_tokens=runs[0]["val_tokens"])
        for key in RUN_KEYS:
            values = [r[key] for r in runs if r[key] is not None]
            if values:
                entry[key] = round(float(np.mean(values)), 1)
                entry[f"{key}_range"] = [min(values), max(values)]
        entry["wall_s"] = round(float(np.mean([r["wall_s"] for r in runs])), 1)
        entry["tokens_per_s"] = round(float(np.mean([r["tokens_per_s"] for r in runs])))
        for r in runs:
            for key in ("train_tokens", "val_tokens"):
                r.pop(key)
    if "10x" in sizes and "100x" in sizes:
        a, b = sizes["10x"], sizes["100x"]
        growth = {"tokens_ratio": round(b["tokens"] / a["tokens"], 1),
                  "peak_rss_percent": round(100 * (b["peak_rss_mib"] / a["peak_rss_mib"] - 1), 1)}
        for key in (*RUN_KEYS, "open_shards_heap_mib"):
            if key in a and key in b:
                growth[key] = round(b[key] - a[key], 1)
        if "fixed_malloc" in a and "fixed_malloc" in b:
            growth["fixed_malloc"] = {key: round(b["fixed_malloc"][key] - a["fixed_malloc"][key], 1)
                                      for key in RUN_KEYS if a["fixed_malloc"][key] is not None
                                      and b["fixed_malloc"][key] is not None}
        out["growth_10x_to_100x"] = growth
    return out


# part 3: DDP ------------------------------------------------------------------------------------


def _train_cmd(folder: Path, run_dir: Path, steps: int, threads: int, sets: list[str]) -> list[str]:
    return [str(folder), "--out", str(run_dir), "--max-steps", str(steps), "--threads", str(threads),
            "--quiet", *[f for s in sets for f in ("--set", s)]]


def part_ddp(args, vocab: Vocab, base: list) -> dict:
    out: dict = {"loadavg_at_start": loadavg(), "steps": args.ddp_steps, "corpus": "chorales 1x shards",
                 "runs": {}}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                "-m", "train"]
    single = [sys.executable, "-m", "train"]
    masks = [sys.executable, str(Path(__file__).resolve()), CHILD_MASKS]
    drop0 = ["train.dropout=0.0"]
    plan = [("one_process_1_thread", single, 1, []),
            ("one_process_2_threads", single, 2, []),
            ("two_processes", launcher, 1, []),
            ("one_process_1_thread_dropout_masks_1", [*masks, str(MASK_OFFSETS[0])], 1, []),
            ("one_process_1_thread_dropout_masks_2", [*masks, str(MASK_OFFSETS[1])], 1, []),
            ("one_process_1_thread_dropout_0", single, 1, drop0),
            ("two_processes_dropout_0", launcher, 1, drop0)]
    with tempfile.TemporaryDirectory(prefix="scale-ddp-") as tmp_name:
        tmp = Path(tmp_name)
        folder = write_copies(tmp / "shards-1x", vocab, base, 1, args.files_per_shard)
        for name, prefix, threads, sets in plan:
            say(f"ddp: {name}")
            run_dir = tmp / name
            load = loadavg()
            m = run_measured([*prefix, *_train_cmd(folder, run_dir, args.ddp_steps, threads, sets)],
                             args.poll_s, _child_env())
            out["runs"][name] = {**_train_figures(run_dir), "threads_per_process": threads,
                                 "wall_s": round(m["wall_s"], 1), "loadavg_at_start": load}
    r = out["runs"]

    def diff(a: str, b: str) -> float:
        return round(abs(r[a]["val_nll"] - r[b]["val_nll"]), 5)

    def speed(a: str, b: str) -> float:
        return round(r[a]["tokens_per_s"] / r[b]["tokens_per_s"], 2)

    noise = [diff("one_process_1_thread_dropout_masks_1", "one_process_1_thread"),
             diff("one_process_1_thread_dropout_masks_2", "one_process_1_thread"),
             diff("one_process_1_thread_dropout_masks_1", "one_process_1_thread_dropout_masks_2")]
    out["two_vs_one"] = {
        "speedup_vs_1_thread": speed("two_processes", "one_process_1_thread"),
        "speedup_vs_2_threads": speed("two_processes", "one_process_2_threads"),
        "speedup_2_threads_vs_1": speed("one_process_2_threads", "one_process_1_thread"),
        "same_steps": len({x["steps"] for x in r.values()}) == 1,
        "abs_val_nll_diff_dropout_0": diff("two_processes_dropout_0", "one_process_1_thread_dropout_0"),
        "abs_val_nll_diff": diff("two_processes", "one_process_1_thread"),
        "dropout_mask_noise": noise,
        "dropout_mask_noise_mean": round(float(np.mean(noise)), 5),
        "thread_order_noise": diff("one_process_2_threads", "one_process_1_thread"),
    }
    return out


def child_train_with_mask_offset(offset: int, argv: list[str]) -> int:
    """`python -m train ARGV` whose dropout masks alone differ: train_epoch's torch.manual_seed
    (the only seeding inside it; it drives dropout) gets `offset` added."""
    import torch

    from train import fit
    original, seed = fit.train_epoch, torch.manual_seed

    def shifted(*a, **kw):
        torch.manual_seed = lambda s: seed(s + offset)
        try:
            return original(*a, **kw)
        finally:
            torch.manual_seed = seed

    fit.train_epoch = shifted
    return fit.main(argv)


# main -------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == [CHILD_MASKS]:
        return child_train_with_mask_offset(int(argv[1]), argv[2:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, of {','.join(PARTS)}")
    p.add_argument("--seed", type=int, default=0, help="seeds the synthetic MIDI files")
    p.add_argument("--files", type=int, default=20_000, help="synthetic MIDI files to prepare")
    p.add_argument("--corrupt-fraction", type=float, default=0.005, help="of them broken on purpose")
    p.add_argument("--prepare-repeat", type=int, default=2, help="prepares per worker count (best kept)")
    p.add_argument("--memory-copies", type=_ints, default=[1, 10, 100], help="chorale copies per size")
    p.add_argument("--memory-steps", type=int, default=300, help="optimizer steps per memory run")
    p.add_argument("--memory-repeat", type=int, default=3, help="trainings per size (interleaved)")
    p.add_argument("--no-fixed-malloc", dest="fixed_malloc", action="store_false",
                   help="skip the extra run per size with glibc's mmap threshold pinned")
    p.add_argument("--files-per-shard", type=int, default=500)
    p.add_argument("--ddp-steps", type=int, default=200, help="optimizer steps per DDP run")
    p.add_argument("--poll-s", type=float, default=0.1, help="/proc/PID/status sampling period")
    args = p.parse_args(argv)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}; choose from {','.join(PARTS)}")
    started = time.perf_counter()
    cfg = load_config(None)
    vocab = Vocab.from_grid(cfg.grid)
    result: dict = {"machine": machine(), "parts": parts}
    base = chorale_results(vocab, cfg.paths.cache_dir) if {"memory", "ddp"} & set(parts) else None
    if "prepare" in parts:
        result["prepare"] = part_prepare(args, vocab)
    if "memory" in parts:
        result["memory"] = part_memory(args, vocab, base)
    if "ddp" in parts:
        result["ddp"] = part_ddp(args, vocab, base)
    result["total_wall_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
