"""A model judged by what a listener hears: does it stay in a key, follow the player's key, loop?

    python bench/music.py --json                         # models/default.onnx (+ models/default.pt)
    python bench/music.py --model runs/x/model.onnx --checkpoint runs/x/best.pt --n 30 --json
    python bench/music.py --primes my/midi/folder --n 10 --temperature 0.8
    python bench/music.py --n 30 --sections unprimed primed --key-strength 1 --density 0.5 --json
    python bench/music.py --n 30 --sections primed --velocity model --json

Sections (perform.analysis defines the measures):
    unprimed  --n renders of --bars bars, seeds seed..seed+n-1: exactly `perform --out F --bars B
              --seed S` (CPU). Scale consistency per piece and per bar (bars of >= 3 notes),
              pitch-class entropy, the longest run of identical onsets, notes per beat.
    primed    --n phrases from --primes (MIDI the model never saw; default ../shared/corpus/ff-piano):
              --prime-bars bars as the prime, the next --continue-bars bars as the human answer, both
              transposed by a seeded shift in -5..6. Key following, three ways: the prime against
              the model's continuation (`model`), against the music's own next bars (`human`), and
              against the model's continuation of another prime (`shuffled`, the control near 0):
              pitch-class correlation (duration-weighted histograms), key agreement (Krumhansl-
              Kessler), register gap (semitones between mean pitches). With --n 30 a median moves
              by about +-0.15 from one --seed to another: `sem` is the mean's standard error.
              `scale_consistency_vs_prime_key`: the share of the continuation's notes inside the
              scale of the prime's estimated key, as perform.steer counts it (minor: natural minor
              plus the raised 7th), `..._diatonic` (natural minor only), and `..._vs_steered_key`
              against the key the steering heard in the prime (its recent notes weigh more).
              `velocity_correlation` (in model, human, shuffled): across phrases, the Pearson
              correlation of the prime's mean velocity with the continuation's (0 when the
              continuations all have one mean, null when the primes do); the primes keep their
              own velocities (only pitches are transposed).
    steering  --key-strength, --key, --register-follow, --density, --pitch-temperature,
              --rhythm-temperature, --key-half-life-beats and --velocity steer both sections as
              `perform` does (perform.steer, perform.dynamics); in the primed section the steering
              hears the prime as the player's music.
    nll       with a checkpoint (default: the model path with .pt, when it exists): NLL per token
              type on the checkpoint's own validation split, and the 5-gram's on the same split.
    corpus    the unprimed figures of the training corpus's first --bars bars (first
              --corpus-limit songs; --corpus names another) and its `human` key following: the
              reference.
    goals     the targets, true or false.
The same command gives the same JSON (apart from `seconds`). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

# bench/ holds train.py, which would shadow the train package for `python bench/music.py`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import mido  # noqa: E402
import numpy as np  # noqa: E402

from perform import analysis as A  # noqa: E402
from perform.config import SteerConfig, load_config  # noqa: E402
from perform.engine import CPU, Engine  # noqa: E402
from perform.errors import JamError  # noqa: E402
from perform.generator import Generator  # noqa: E402
from perform.model_file import default_model_path  # noqa: E402
from perform.quantize import notes_from_events  # noqa: E402
from perform.render import _note_events, render  # noqa: E402
from perform.sampling import Sampler  # noqa: E402
from perform.steer import Steerer, scale_mask  # noqa: E402
from perform.tokens import Note, Vocab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PRIMES = REPO.parent / "shared" / "corpus" / "ff-piano"
SHIFTS = (-5, 6)                 # transposition of a primed phrase, semitones (inclusive)
MIN_PRIME_NOTES, MIN_REF_NOTES = 8, 4
MIN_BAR_NOTES = 3                # bars with fewer notes get no per-bar scale consistency
SECTIONS = ("unprimed", "primed", "nll", "corpus")


@dataclass(frozen=True)
class Phrase:
    source: str
    start_bar: int
    shift: int
    prime: list          # Note, steps from the phrase's start
    reference: list      # the next bars, steps from the continuation's start


class BenchError(JamError):
    """A bad option or path given to the benchmark."""


def parse_args(argv, sampling) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=default_model_path())
    p.add_argument("--checkpoint", type=Path, help="a .pt for the NLL section (default: MODEL.pt)")
    p.add_argument("--primes", type=Path, default=DEFAULT_PRIMES, help="folder of unseen MIDI files")
    p.add_argument("--n", type=int, default=30, help="renders and primed phrases")
    p.add_argument("--bars", type=int, default=16, help="length of an unprimed render")
    p.add_argument("--prime-bars", type=int, default=4)
    p.add_argument("--continue-bars", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float, default=sampling.temperature)
    p.add_argument("--top-p", type=float, default=sampling.top_p)
    p.add_argument("--top-k", type=int, default=sampling.top_k)
    p.add_argument("--corpus", type=Path, help="reference corpus (default: the checkpoint's, or the "
                   "one the model's metadata names)")
    p.add_argument("--corpus-limit", type=int, default=60, help="reference-corpus songs")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="the sections to run (goals of the others are null)")
    st = p.add_argument_group("steering (perform.steer; the defaults change nothing)")
    st.add_argument("--key-strength", type=float, default=0.0)
    st.add_argument("--key", default="", help='e.g. "D minor" (default: the prime\'s, heard)')
    st.add_argument("--register-follow", type=float, default=0.0)
    st.add_argument("--density", type=float, default=0.0)
    st.add_argument("--pitch-temperature", type=float, default=1.0)
    st.add_argument("--rhythm-temperature", type=float, default=1.0)
    st.add_argument("--key-half-life-beats", type=float, default=8.0)
    st.add_argument("--velocity", default="auto", help='auto, model, player or "fixed N"')
    p.add_argument("--raw-velocities", action="store_true",
                   help="feed the primes' velocities as they are, not as the nearest velocity bin "
                        "the model was trained on (what perform does): to measure what that mapping buys")
    args = p.parse_args(argv)
    args.steer = SteerConfig(args.key_strength, args.key, args.register_follow, args.density,
                             args.pitch_temperature, args.rhythm_temperature, args.key_half_life_beats,
                             args.velocity)
    for name in ("n", "bars", "prime_bars", "continue_bars", "corpus_limit"):
        if getattr(args, name) < 1:
            raise BenchError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not args.model.is_file():
        raise BenchError(f"--model {args.model} not found; pass an .onnx file written by `python -m export`")
    if args.checkpoint is not None and not args.checkpoint.is_file():
        raise BenchError(f"--checkpoint {args.checkpoint} not found; pass a .pt file or leave it out")
    if args.checkpoint is None and args.model.with_suffix(".pt").is_file():
        args.checkpoint = args.model.with_suffix(".pt")
    if not args.primes.is_dir() or not midi_files(args.primes):
        raise BenchError(f"--primes {args.primes} is not a folder of MIDI files; pass one with --primes DIR")
    if args.corpus is not None and not args.corpus.exists():
        raise BenchError(f"--corpus {args.corpus} does not exist; pass a folder of MIDI files, "
                         "or leave it out")
    try:
        Sampler(args.temperature, args.top_k, args.top_p)
    except ValueError as err:
        raise BenchError(f"sampling settings: {err}") from err
    return args


def midi_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# figures -------------------------------------------------------------------------------------------
def r4(x) -> float | None:
    """Rounded for the JSON; NaN (no data) becomes null."""
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def stats(values, *quantiles: int) -> dict:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"median": None, "n": 0}
    out = {"median": r4(np.median(v))}
    out.update({f"p{q}": r4(np.percentile(v, q)) for q in quantiles})
    return {**out, "n": int(v.size)}


def clip(notes, total_steps: int) -> list[Note]:
    """Notes starting inside [0, total_steps), their durations cut at the end (as a file holds them)."""
    return [replace(n, dur_steps=min(n.dur_steps, total_steps - n.start_step)) for n in notes
            if 0 <= n.start_step < total_steps]


def piece_figures(pieces, steps_per_bar: int, steps_per_beat: int, num_bars: int,
                  lengths=None) -> dict:
    """The unprimed figures of pieces (lists of notes) of num_bars bars each (or `lengths` steps)."""
    lengths = lengths or [num_bars * steps_per_bar] * len(pieces)
    per_bar = [A.scale_consistency([n.pitch for n in bar]) for notes in pieces
               for bar in A.bars(notes, steps_per_bar, num_bars) if len(bar) >= MIN_BAR_NOTES]
    runs = [A.longest_identical_onset_run(notes) for notes in pieces]
    return {
        "pieces": len(pieces),
        "scale_consistency": stats([A.scale_consistency([n.pitch for n in p]) for p in pieces], 10),
        "scale_consistency_per_bar": stats(per_bar, 10),
        "pitch_class_entropy_bits": stats([A.pitch_class_entropy([n.pitch for n in p]) for p in pieces]),
        "longest_identical_onset_run": {"max": int(max(runs, default=0)), **stats(runs)},
        "notes_per_beat": stats([A.notes_per_beat(p, steps_per_beat, n) for p, n in zip(pieces, lengths)]),
    }


def in_prime_key(primes, continuations, diatonic: bool = False, keys=None) -> dict:
    """The share of each continuation's notes inside the scale of its prime's estimated key (or of
    `keys`, (tonic, mode, confidence) or None per phrase)."""
    shares = []
    keys = keys or [A.estimate_key(A.pitch_class_histogram(prime, True)) for prime in primes]
    for key, cont in zip(keys, continuations):
        if not cont or key is None or not np.isfinite(key[2]):
            continue
        tonic, mode = key[0], key[1]
        scale = scale_mask(tonic, mode)
        if diatonic and mode == "minor":
            scale[(tonic + 11) % 12] = False
        shares.append(float(np.mean([scale[n.pitch % 12] for n in cont])))
    return {**stats(shares, 10), "mean": r4(np.mean(shares)) if shares else None}


def following(primes, continuations) -> dict:
    """Key following of each prime by the continuation at the same index."""
    corr, agree, gaps = [], [], []
    for prime, cont in zip(primes, continuations):
        hp, hc = A.pitch_class_histogram(prime, True), A.pitch_class_histogram(cont, True)
        corr.append(A.pc_correlation(hp, hc))
        kp, kc = A.estimate_key(hp), A.estimate_key(hc)
        if np.isfinite(kp[2]) and np.isfinite(kc[2]):
            agree.append(kp[:2] == kc[:2])
        gaps.append(abs(A.mean_pitch(prime) - A.mean_pitch(cont)))
    finite = [c for c in corr if np.isfinite(c)]
    sem = np.std(finite, ddof=1) / np.sqrt(len(finite)) if len(finite) > 1 else None
    return {"pc_correlation": {**stats(corr), "mean": r4(np.mean(finite)) if finite else None,
                               "sem": r4(sem)},
            "key_agreement": r4(np.mean(agree)) if agree else None,
            "register_gap": r4(np.nanmean(gaps)) if np.isfinite(gaps).any() else None,
            "velocity_correlation": r4(velocity_correlation(primes, continuations))}


def velocity_correlation(primes, continuations) -> float | None:
    """Pearson correlation, across pairs, of the prime's mean velocity with the continuation's
    (pairs with an empty continuation left out). 0 when the continuations' means are all equal
    (they follow nothing), None when the primes' are (nothing to follow) or under 3 pairs."""
    pairs = [(np.mean([n.velocity for n in p]), np.mean([n.velocity for n in c]))
             for p, c in zip(primes, continuations) if p and c]
    if len(pairs) < 3:
        return None
    x, y = np.array(pairs, dtype=float).T
    if np.ptp(x) == 0:
        return None
    return 0.0 if np.ptp(y) == 0 else float(np.corrcoef(x, y)[0, 1])


# phrases -----------------------------------------------------------------------------------------
def pick_phrases(sources, load, n: int, rng, steps_per_bar: int, prime_bars: int,
                 continue_bars: int, vocab) -> list[Phrase]:
    """`n` phrases: a source drawn at random (`load(source)` gives its notes on the grid), a start bar
    among those with enough notes, a transposition that keeps every pitch in the vocabulary."""
    phrases, tries = [], 0
    prime_steps, cont_steps = prime_bars * steps_per_bar, continue_bars * steps_per_bar
    while len(phrases) < n and tries < 50 * n:
        tries += 1
        source = sources[int(rng.integers(len(sources)))]
        notes = load(source)
        onsets = np.array([m.start_step for m in notes], dtype=np.int64)
        last_bar = int(onsets.max()) // steps_per_bar if onsets.size else -1
        starts = [b for b in range(last_bar + 1)
                  if _count(onsets, b * steps_per_bar, prime_steps) >= MIN_PRIME_NOTES
                  and _count(onsets, b * steps_per_bar + prime_steps, cont_steps) >= MIN_REF_NOTES]
        if not starts:
            continue
        bar = starts[int(rng.integers(len(starts)))]
        first = bar * steps_per_bar
        prime = clip([replace(m, start_step=m.start_step - first) for m in notes], prime_steps)
        ref = clip([replace(m, start_step=m.start_step - first - prime_steps) for m in notes], cont_steps)
        pitches = [m.pitch for m in prime + ref]
        lo = max(SHIFTS[0], vocab.pitch_min - min(pitches))
        hi = min(SHIFTS[1], vocab.pitch_max - max(pitches))
        shift = int(rng.integers(lo, hi + 1)) if lo <= hi else 0
        move = lambda ns: [replace(m, pitch=m.pitch + shift) for m in ns]  # noqa: E731
        phrases.append(Phrase(str(source), bar, shift, move(prime), move(ref)))
    if len(phrases) < n:
        raise BenchError(f"found only {len(phrases)} of {n} phrases with >= {MIN_PRIME_NOTES} notes in "
                         f"{prime_bars} bars and >= {MIN_REF_NOTES} in the next {continue_bars}; "
                         "pass a folder of longer pieces to --primes, or a smaller --n")
    return phrases


def _count(onsets: np.ndarray, first: int, steps: int) -> int:
    return int(((onsets >= first) & (onsets < first + steps)).sum())


def midi_loader(steps_per_beat: int, max_dur_steps: int):
    """load(path) -> notes on the grid at the file's own bar lines (4/4 assumed); [] if unreadable."""
    cache: dict[Path, list[Note]] = {}

    def load(path: Path) -> list[Note]:
        if path not in cache:
            try:
                events = _note_events(mido.MidiFile(str(path), clip=True), steps_per_beat)
                cache[path] = notes_from_events(events, max_dur_steps)
            except Exception as err:  # noqa: BLE001 - mido raises many kinds for a bad file
                say(f"skipping {path.name}: {err or type(err).__name__}")
                cache[path] = []
        return cache[path]
    return load


# sections ----------------------------------------------------------------------------------------
def unprimed(generator, args, steps_per_bar: int) -> dict:
    pieces = []
    for i in range(args.n):
        generator.sampler = Sampler(args.temperature, args.top_k, args.top_p, args.seed + i)
        pieces.append(clip(render(generator, args.bars, steps_per_bar), args.bars * steps_per_bar))
    return piece_figures(pieces, steps_per_bar, generator.vocab.steps_per_beat, args.bars)


def primed(generator, phrases, args, steps_per_bar: int) -> dict:
    cont_steps, spb = args.continue_bars * steps_per_bar, generator.vocab.steps_per_beat
    model, steered = [], []
    for i, ph in enumerate(phrases):
        generator.sampler = Sampler(args.temperature, args.top_k, args.top_p, args.seed + i)
        model.append(clip(render(generator, args.continue_bars, steps_per_bar, prime=ph.prime), cont_steps))
        steered.append(generator.steering.key())
    primes = [ph.prime for ph in phrases]
    figures = piece_figures(model, steps_per_bar, spb, args.continue_bars)
    return {
        "phrases": len(phrases),
        "model": following(primes, model),
        "human": following(primes, [ph.reference for ph in phrases]),
        "shuffled": following(primes, model[1:] + model[:1]),
        "continuation": {k: figures[k] for k in ("scale_consistency", "longest_identical_onset_run",
                                                 "notes_per_beat")},
        "scale_consistency_vs_prime_key": in_prime_key(primes, model),
        "scale_consistency_vs_prime_key_diatonic": in_prime_key(primes, model, diatonic=True),
        "scale_consistency_vs_steered_key": in_prime_key(primes, model, keys=steered),
        "prime_notes_per_beat": stats([A.notes_per_beat(p, spb, args.prime_bars * steps_per_bar)
                                       for p in primes]),
        "sources": [f"{Path(ph.source).name}@bar{ph.start_bar}{ph.shift:+d}" for ph in phrases],
    }


def corpus_section(songs, args, vocab, steps_per_bar: int, name: str) -> dict:
    """The unprimed figures and human key following of the training corpus (decoded token songs)."""
    decoded = [vocab.decode(ids) for ids in songs[:args.corpus_limit]]
    decoded = [d for d in decoded if d]
    total = args.bars * steps_per_bar
    lengths = [min(total, -(-max(n.start_step + n.dur_steps for n in d) // steps_per_bar) * steps_per_bar)
               for d in decoded]                  # a song shorter than --bars: its whole bars
    figures = piece_figures([clip(d, total) for d in decoded], steps_per_bar, vocab.steps_per_beat,
                            args.bars, lengths)
    rng = np.random.default_rng(args.seed)
    phrases = pick_phrases(list(range(len(decoded))), decoded.__getitem__, args.n, rng, steps_per_bar,
                           args.prime_bars, args.continue_bars, vocab)
    human = following([p.prime for p in phrases], [p.reference for p in phrases])
    return {"name": name, **figures, "human": human}


def training_split(checkpoint, vocab):
    """(train songs, val songs, all songs) of the checkpoint's corpus, split as train/fit.py does."""
    from train.corpus import load_corpus
    from train.data import split_by_song
    cfg = checkpoint.get("config") or {}
    corpus = load_corpus((checkpoint.get("corpus") or {}).get("paths"), vocab,
                         cache_dir=cfg.get("paths", {}).get("cache_dir"))
    songs, t = [s.ids for s in corpus.songs], cfg.get("train", {})
    train_idx, val_idx = split_by_song([s.name for s in corpus.songs], t.get("val_fraction", 0.1),
                                       t.get("seed", 0))
    return [songs[i] for i in train_idx], [songs[i] for i in val_idx], songs


def reference_songs(paths, limit: int, vocab, cache_dir=None) -> list[np.ndarray]:
    """The first `limit` songs of a corpus (None: the Bach chorales), reading only their files."""
    from train.corpus import find_files, load_corpus
    files = find_files([str(p) for p in paths] if paths else None)[:limit]
    return [s.ids for s in load_corpus(files, vocab, cache_dir=cache_dir).songs]


def nll_section(checkpoint, train, val, vocab) -> dict:
    import torch
    from train.checkpoint import model_from_checkpoint
    from train.evaluate import TOKEN_TYPES, score_songs
    from train.fit import baselines
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(checkpoint)
    seq_len = int(checkpoint.get("config", {}).get("train", {}).get("seq_len", 256))
    scores = score_songs(model, val, seq_len=seq_len, vocab=vocab)
    base = baselines(train, val, vocab)
    out = {"val_songs": len(val), "tokens": scores["tokens"],
           "model": {k: r4(scores[k]) for k in ["nll"] + [f"nll_{t}" for t in TOKEN_TYPES]},
           "ngram": {"order": base["ngram_order"], "nll": r4(base["ngram_val_nll"]),
                     **{f"nll_{t}": r4(base[f"ngram_val_nll_{t}"]) for t in TOKEN_TYPES}}}
    out["note_nll_below_ngram_pct"] = r4(100 * (1 - scores["nll_note"] / base["ngram_val_nll_note"]))
    return out


def goals(result: dict) -> dict:
    u, p, nll = result.get("unprimed"), result.get("primed"), result.get("nll")
    ok = lambda x, test: x is not None and bool(test(x))  # noqa: E731
    out = dict.fromkeys(("unprimed_scale_consistency_median>=0.90", "per_bar_scale_consistency_median>=0.95",
                         "primed_pc_correlation_median>=0.5_and_shuffled_abs<0.2",
                         "note_nll>=15%_below_ngram", "max_identical_onset_run<=8",
                         "primed_velocity_correlation>=0.8"))
    if u is not None:
        out["unprimed_scale_consistency_median>=0.90"] = ok(u["scale_consistency"]["median"],
                                                            lambda x: x >= 0.90)
        out["per_bar_scale_consistency_median>=0.95"] = ok(u["scale_consistency_per_bar"]["median"],
                                                           lambda x: x >= 0.95)
        out["max_identical_onset_run<=8"] = u["longest_identical_onset_run"]["max"] <= 8
    if p is not None:
        shuffled = p["shuffled"]["pc_correlation"]["median"]
        model = p["model"]["pc_correlation"]["median"]
        out["primed_pc_correlation_median>=0.5_and_shuffled_abs<0.2"] = (
            ok(model, lambda x: x >= 0.5) and ok(shuffled, lambda x: abs(x) < 0.2))
        out["primed_velocity_correlation>=0.8"] = ok(p["model"]["velocity_correlation"],
                                                     lambda x: x >= 0.8)
    if nll is not None and "skipped" not in nll:
        out["note_nll>=15%_below_ngram"] = ok(nll.get("note_nll_below_ngram_pct"), lambda x: x >= 15)
    return out


def run(args) -> dict:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    engine = Engine(args.model, providers=(CPU,))
    vocab, meta = engine.vocab, engine.metadata
    steps_per_bar = load_config().perform.beats_per_bar * vocab.steps_per_beat
    generator = Generator(engine, Sampler(args.temperature, args.top_k, args.top_p, args.seed),
                          steering=Steerer(args.steer, vocab))
    if args.raw_velocities:
        generator._trained_bin = vocab.velocity_bin
    result = {"model": {
        "path": str(args.model), "checkpoint": str(args.checkpoint) if args.checkpoint else None,
        "precision": meta.get("precision", "fp32"), "corpus": (meta.get("corpus") or {}).get("name"),
        "parameters": (meta.get("metrics") or {}).get("parameters"), "model_args": meta["model_args"],
        "sampling": {"temperature": args.temperature, "top_k": args.top_k, "top_p": args.top_p},
        "steering": dataclasses.asdict(args.steer),
        "velocity_bins": list(generator.velocity_bins),      # trained (metadata, or asked of the model)
        "velocity_policy": generator.steering.shaper.resolve(generator.steering.velocity_policy),
        "seed": args.seed, "n": args.n, "bars": args.bars, "prime_bars": args.prime_bars,
        "continue_bars": args.continue_bars, "steps_per_bar": steps_per_bar}}

    def lap(name: str) -> None:
        timings[name] = time.perf_counter() - t0 - sum(timings.values())
    if "unprimed" in args.sections:
        say(f"unprimed: {args.n} renders of {args.bars} bars")
        result["unprimed"] = unprimed(generator, args, steps_per_bar)
        lap("unprimed")
    if "primed" in args.sections:
        say(f"primed: {args.n} phrases from {args.primes}")
        load = midi_loader(vocab.steps_per_beat, vocab.max_dur_steps)
        phrases = pick_phrases(midi_files(args.primes), load, args.n, np.random.default_rng(args.seed),
                               steps_per_bar, args.prime_bars, args.continue_bars, vocab)
        result["primed"] = primed(generator, phrases, args, steps_per_bar)
        lap("primed")
    checkpoint, songs, song_vocab = None, None, vocab
    if "nll" in args.sections:
        checkpoint, songs, song_vocab, result["nll"] = nll_or_skip(args, vocab, meta)
        lap("nll")
    if "corpus" in args.sections:
        result["corpus"] = corpus_or_skip(args, vocab, meta, checkpoint, songs, song_vocab, steps_per_bar)
        lap("corpus")
    result["goals"] = goals(result)
    result["seconds"] = {k: round(v, 2) for k, v in {**timings, "total": time.perf_counter() - t0}.items()}
    return result


def nll_or_skip(args, vocab, meta):
    """(checkpoint, its songs, their vocab, the nll section) with a checkpoint, else a skip note."""
    if not args.checkpoint:
        return None, None, vocab, {"skipped": f"no checkpoint: {args.model.with_suffix('.pt')} does not "
                                              "exist; pass --checkpoint FILE.pt"}
    from train.checkpoint import load_checkpoint
    say(f"nll: {args.checkpoint}")
    checkpoint, songs = load_checkpoint(args.checkpoint), None
    try:
        song_vocab = Vocab.from_dict(checkpoint["vocab"])
        train, val, songs = training_split(checkpoint, song_vocab)
        section = nll_section(checkpoint, train, val, song_vocab)
    except JamError as err:      # e.g. its corpus is not on this machine
        song_vocab, section = vocab, {"skipped": f"{args.checkpoint}: {err}"}
    if checkpoint["model_args"] != meta["model_args"]:
        section["note"] = "the checkpoint's model_args differ from the .onnx model's"
    return checkpoint, songs, song_vocab, section


def corpus_or_skip(args, vocab, meta, checkpoint, songs, song_vocab, steps_per_bar: int) -> dict:
    info = (checkpoint or {}).get("corpus") or meta.get("corpus") or {}
    name = str(args.corpus) if args.corpus else info.get("name", "music21 Bach chorales")
    say(f"corpus: {name}")
    try:
        if args.corpus or songs is None:
            cache_dir = ((checkpoint or {}).get("config") or {}).get("paths", {}).get("cache_dir")
            songs, song_vocab = reference_songs([args.corpus] if args.corpus else info.get("paths"),
                                                args.corpus_limit, vocab, cache_dir), vocab
        return corpus_section(songs, args, song_vocab, steps_per_bar, name)
    except JamError as err:          # e.g. the paths in the model's metadata are not on this machine
        return {"name": name, "skipped": f"{err}; pass --corpus DIR"}


def summary(result: dict) -> str:
    parts = []
    if "unprimed" in result:
        u = result["unprimed"]
        parts.append(f"unprimed scale consistency {u['scale_consistency']['median']} (per bar "
                     f"{u['scale_consistency_per_bar']['median']}), entropy "
                     f"{u['pitch_class_entropy_bits']['median']} bits, notes per beat "
                     f"{u['notes_per_beat']['median']}")
    if "primed" in result:
        p = result["primed"]
        parts.append(f"primed pc correlation model {p['model']['pc_correlation']['median']} human "
                     f"{p['human']['pc_correlation']['median']} shuffled "
                     f"{p['shuffled']['pc_correlation']['median']}, in the prime's key "
                     f"{p['scale_consistency_vs_prime_key']['median']}, register gap "
                     f"{p['model']['register_gap']}, velocity correlation model "
                     f"{p['model']['velocity_correlation']} human {p['human']['velocity_correlation']} "
                     f"shuffled {p['shuffled']['velocity_correlation']}")
    return "; ".join(parts + [f"goals {result['goals']}"])


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv, load_config().sampling)
        result = run(args)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        print(summary(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
