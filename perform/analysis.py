"""What a listener hears, in numbers: pitch-class statistics, key, repetition, density (numpy only).

    hist = pitch_class_histogram(notes, weighted=True)      # (12,) durations per pitch class
    tonic, mode, r = estimate_key(hist)                     # (9, "minor", 0.83): A minor
    scale_consistency([n.pitch for n in notes])             # 1.0: every note in one diatonic scale
    longest_identical_onset_run(notes)                      # 8: one chord struck 8 onsets running

Scale consistency and pitch-class entropy follow MusPy's definitions (muspy.metrics). Keys are
estimated the Krumhansl-Schmuckler way: the Krumhansl-Kessler profile, rotated to each of the 24
keys, whose Pearson correlation with the histogram is highest. Small and fast enough to run live.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import numpy as np

from .tokens import Note

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)          # natural minor
# Krumhansl & Kessler (1982) key profiles, index 0 = the tonic.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
MODES = ("major", "minor")
MAX_ENTROPY_BITS = math.log2(12)


def _scale_masks() -> np.ndarray:
    """(24, 12) bool: row mode*12 + tonic marks that key's scale."""
    masks = np.zeros((24, 12), dtype=bool)
    for m, scale in enumerate((MAJOR_SCALE, MINOR_SCALE)):
        for tonic in range(12):
            masks[m * 12 + tonic, [(tonic + d) % 12 for d in scale]] = True
    return masks


_SCALES = _scale_masks()
_PROFILES = np.stack([np.roll(p, t) for p in (MAJOR_PROFILE, MINOR_PROFILE) for t in range(12)])


def pitch_class_histogram(notes: Iterable[Note], weighted: bool = False) -> np.ndarray:
    """(12,) float: how many notes of each pitch class (C = 0), or with `weighted` their total
    duration in steps."""
    hist = np.zeros(12)
    for n in notes:
        hist[n.pitch % 12] += n.dur_steps if weighted else 1
    return hist


def _pc_counts(pitches: Iterable[int]) -> np.ndarray:
    return np.bincount(np.asarray(list(pitches), dtype=np.int64) % 12, minlength=12).astype(float)


def scale_consistency(pitches: Iterable[int]) -> float:
    """The largest fraction of notes inside one of the 24 major / natural-minor scales (MusPy);
    NaN when there are no notes."""
    counts = _pc_counts(pitches)
    total = counts.sum()
    return float((_SCALES @ counts).max() / total) if total else math.nan


def pitch_class_entropy(pitches: Iterable[int]) -> float:
    """Shannon entropy of the pitch-class counts in bits: 0 for one pitch class, log2(12) = 3.585
    for all twelve equally often; NaN when there are no notes."""
    counts = _pc_counts(pitches)
    total = counts.sum()
    if not total:
        return math.nan
    p = counts[counts > 0] / total
    return float(-(p * np.log2(p)).sum()) + 0.0      # + 0.0: -0.0 becomes 0.0


def estimate_key(histogram: Sequence[float]) -> tuple[int, str, float]:
    """(tonic 0..11, "major" | "minor", Pearson correlation) of the key whose Krumhansl-Kessler
    profile fits the 12-bin histogram best; ties go to the lower tonic, major first. A constant
    histogram (no notes, or all twelve equally) has no key: (0, "major", NaN)."""
    h = np.asarray(histogram, dtype=float)
    if h.shape != (12,):
        raise ValueError(f"a pitch-class histogram has 12 bins, got shape {h.shape}")
    hc = h - h.mean()
    norm = np.sqrt((hc * hc).sum())
    if norm == 0:
        return 0, "major", math.nan
    pc = _PROFILES - _PROFILES.mean(axis=1, keepdims=True)
    r = (pc @ hc) / (np.sqrt((pc * pc).sum(axis=1)) * norm)
    best = int(np.argmax(r))
    return best % 12, MODES[best // 12], float(r[best])


def pc_correlation(hist_a: Sequence[float], hist_b: Sequence[float]) -> float:
    """Pearson correlation of two 12-bin pitch-class histograms; NaN when either is constant."""
    a = np.asarray(hist_a, dtype=float) - np.mean(hist_a)
    b = np.asarray(hist_b, dtype=float) - np.mean(hist_b)
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom else math.nan


def onset_sets(notes: Iterable[Note]) -> list[frozenset[int]]:
    """The pitch sets of the steps that start notes, in time order."""
    by_step: dict[int, set[int]] = {}
    for n in notes:
        by_step.setdefault(n.start_step, set()).add(n.pitch)
    return [frozenset(by_step[s]) for s in sorted(by_step)]


def longest_identical_onset_run(notes: Iterable[Note]) -> int:
    """The longest run of consecutive onsets with the same pitch set (one note or chord looped);
    0 for no notes. Onsets {60}, {60}, {62}, {60} give 2."""
    best = run = 0
    previous = None
    for pitches in onset_sets(notes):
        run = run + 1 if pitches == previous else 1
        best, previous = max(best, run), pitches
    return best


def notes_per_beat(notes: Sequence[Note], steps_per_beat: int, total_steps: int) -> float:
    """Notes started per beat over `total_steps` steps (NaN for a length of zero)."""
    return len(notes) * steps_per_beat / total_steps if total_steps > 0 else math.nan


def mean_pitch(notes: Iterable[Note]) -> float:
    """The mean MIDI pitch of the notes (NaN for none). The register gap of two passages is
    abs(mean_pitch(a) - mean_pitch(b))."""
    pitches = [n.pitch for n in notes]
    return float(np.mean(pitches)) if pitches else math.nan


def bars(notes: Iterable[Note], steps_per_bar: int, num_bars: int | None = None) -> list[list[Note]]:
    """The notes split by the bar they start in (bar k: steps k*steps_per_bar onwards), empty bars
    included; `num_bars` bars (notes beyond are left out), else up to the last note's bar."""
    notes = sorted(notes)
    if num_bars is None:
        num_bars = notes[-1].start_step // steps_per_bar + 1 if notes else 0
    out: list[list[Note]] = [[] for _ in range(num_bars)]
    for n in notes:
        k = n.start_step // steps_per_bar
        if 0 <= k < num_bars:
            out[k].append(n)
    return out
