"""The listener's measures, pinned on hand-made music with known answers."""

import math

import numpy as np
import pytest

from perform.analysis import (bars, estimate_key, longest_identical_onset_run, mean_pitch,
                              notes_per_beat, pc_correlation, pitch_class_entropy,
                              pitch_class_histogram, scale_consistency)
from perform.tokens import Note

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]
CHROMATIC = list(range(60, 72))
# "Twinkle twinkle" in C: a melody that leans on the tonic and dominant.
TWINKLE = [60, 60, 67, 67, 69, 69, 67, 65, 65, 64, 64, 62, 62, 60]


def melody(pitches, dur_steps=2):
    return [Note(i * dur_steps, p, dur_steps, 80) for i, p in enumerate(pitches)]


def chords(*pitch_sets, dur_steps=4):
    return [Note(i * dur_steps, p, dur_steps, 80) for i, ps in enumerate(pitch_sets) for p in ps]


def test_histogram_counts_pitch_classes_across_octaves_or_weighs_by_duration():
    notes = [Note(0, 60, 1, 80), Note(1, 72, 3, 80), Note(2, 61, 2, 80)]
    assert pitch_class_histogram(notes).tolist() == [2, 1] + [0] * 10
    assert pitch_class_histogram(notes, weighted=True).tolist() == [4, 2] + [0] * 10


def test_scale_consistency_is_one_in_a_scale_and_seven_twelfths_for_the_chromatic_run():
    assert scale_consistency(C_MAJOR) == 1.0
    assert scale_consistency([p + 6 for p in C_MAJOR]) == 1.0        # F# major: any tonic counts
    assert scale_consistency(CHROMATIC) == pytest.approx(7 / 12)
    assert scale_consistency([60, 61]) == 1.0                        # C# major holds both (B# = C)
    assert scale_consistency([60, 62, 64, 66, 68, 70]) == pytest.approx(4 / 6)   # whole-tone: at most 4 of 6
    assert math.isnan(scale_consistency([]))


def test_scale_consistency_uses_the_harmonic_minor_nowhere():
    # A harmonic minor (G#) is not one of MusPy's scales: 7 of 8 notes fit A natural minor at most.
    assert scale_consistency([57, 59, 60, 62, 64, 65, 68, 69]) == pytest.approx(7 / 8)


def test_entropy_is_zero_for_one_pitch_class_and_log2_12_for_the_chromatic_run():
    assert pitch_class_entropy([60, 60, 72, 48]) == 0.0
    assert pitch_class_entropy(CHROMATIC) == pytest.approx(math.log2(12))
    assert pitch_class_entropy([60, 62]) == pytest.approx(1.0)
    assert pitch_class_entropy([60, 60, 60, 62]) == pytest.approx(0.8112781)   # counts, not distinct
    assert math.isnan(pitch_class_entropy([]))


def test_estimate_key_finds_c_major_from_its_chords():
    notes = chords((60, 64, 67), (65, 69, 72), (67, 71, 74), (60, 64, 67), (60, 64, 67))
    tonic, mode, r = estimate_key(pitch_class_histogram(notes))
    assert (tonic, mode) == (0, "major") and r > 0.7


def test_estimate_key_finds_a_minor_not_its_relative_major():
    notes = chords((57, 60, 64), (62, 65, 69), (64, 68, 71), (57, 60, 64), (57, 60, 64), (57, 64))
    tonic, mode, r = estimate_key(pitch_class_histogram(notes))
    assert (tonic, mode) == (9, "minor") and r > 0.7


def test_estimate_key_follows_a_transposition():
    hist = pitch_class_histogram(melody(TWINKLE))
    assert estimate_key(hist)[:2] == (0, "major")
    assert estimate_key(np.roll(hist, 7))[:2] == (7, "major")       # G major
    assert estimate_key(pitch_class_histogram(melody([p + 3 for p in TWINKLE])))[:2] == (3, "major")


def test_estimate_key_of_no_notes_is_undefined():
    tonic, mode, r = estimate_key(np.zeros(12))
    assert (tonic, mode) == (0, "major") and math.isnan(r)
    with pytest.raises(ValueError, match="12 bins"):
        estimate_key(np.ones(11))


def test_pc_correlation_is_one_with_itself_and_low_a_tritone_away():
    hist = pitch_class_histogram(melody(TWINKLE))
    assert pc_correlation(hist, hist) == pytest.approx(1.0)
    assert pc_correlation(hist, 3 * hist + 1) == pytest.approx(1.0)      # scale-free
    tritone = pitch_class_histogram(melody([p + 6 for p in TWINKLE]))
    assert pc_correlation(hist, tritone) < -0.2
    octave = pitch_class_histogram(melody([p + 12 for p in TWINKLE]))
    assert pc_correlation(hist, octave) == pytest.approx(1.0)
    assert pc_correlation(hist, -hist) == pytest.approx(-1.0)


def test_pc_correlation_is_undefined_for_a_constant_histogram():
    hist = pitch_class_histogram(melody(TWINKLE))
    assert math.isnan(pc_correlation(hist, np.zeros(12)))
    assert math.isnan(pc_correlation(np.ones(12), hist))


def test_longest_identical_onset_run_counts_consecutive_onsets_with_one_pitch_set():
    assert longest_identical_onset_run(melody([60, 60, 62, 60])) == 2
    assert longest_identical_onset_run(melody([60, 62, 64])) == 1
    assert longest_identical_onset_run(melody([62] + [60] * 9 + [62])) == 9
    assert longest_identical_onset_run([]) == 0
    # Chords: the same set of pitches, however spread in time; a changed voice breaks the run.
    looped = chords((60, 64, 67), (60, 64, 67), (60, 64, 67), (60, 64), (60, 64, 67))
    assert longest_identical_onset_run(looped) == 3
    # Rests between onsets do not break a run; onsets, not steps, are counted.
    spaced = [Note(0, 60, 1, 80), Note(5, 60, 1, 80), Note(20, 60, 1, 80), Note(21, 61, 1, 80)]
    assert longest_identical_onset_run(spaced) == 3


def test_notes_per_beat_counts_notes_over_the_whole_length():
    notes = chords((60, 64, 67), (62,))                   # 4 notes
    assert notes_per_beat(notes, steps_per_beat=4, total_steps=32) == 0.5   # 8 beats
    assert notes_per_beat([], steps_per_beat=4, total_steps=16) == 0.0
    assert math.isnan(notes_per_beat(notes, 4, 0))


def test_mean_pitch_and_register_gap():
    assert mean_pitch(melody([60, 64, 68])) == 64.0
    assert abs(mean_pitch(melody([48, 50])) - mean_pitch(melody([72]))) == 23.0
    assert math.isnan(mean_pitch([]))


def test_bars_splits_by_onset_keeping_empty_bars():
    notes = [Note(0, 60, 20, 80), Note(15, 62, 1, 80), Note(33, 64, 1, 80)]
    split = bars(notes, steps_per_bar=16)
    assert [[n.pitch for n in bar] for bar in split] == [[60, 62], [], [64]]
    assert [len(bar) for bar in bars(notes, 16, num_bars=4)] == [2, 0, 1, 0]
    assert [len(bar) for bar in bars(notes, 16, num_bars=1)] == [2]
    assert bars([], 16) == []
