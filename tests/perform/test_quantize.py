from perform.quantize import notes_from_events, quantize_step
from perform.tokens import Note


def test_onsets_go_to_the_nearest_step_half_rounds_up():
    assert [quantize_step(t) for t in (0.49, 0.5, 1.5, 2.51, 3.2)] == [0, 1, 2, 3, 3]
    notes = notes_from_events([(0.4, 60, 90), (2.2, 60, 0)], max_dur_steps=32)
    assert notes == [Note(0, 60, 2, 90)]


def test_duration_is_at_least_one_step():
    assert notes_from_events([(1.0, 60, 90), (1.1, 60, 0)], 32) == [Note(1, 60, 1, 90)]


def test_velocity_zero_note_on_is_a_note_off():
    notes = notes_from_events([(0, 60, 90), (4, 60, 0), (5, 62, 70), (7, 62, 0)], 32)
    assert notes == [Note(0, 60, 4, 90), Note(5, 62, 2, 70)]


def test_pitch_struck_again_while_sounding_ends_the_first():
    notes = notes_from_events([(0, 60, 90), (3, 60, 100), (8, 60, 0)], 32)
    assert notes == [Note(0, 60, 3, 90), Note(3, 60, 5, 100)]


def test_off_then_on_at_the_same_time_is_a_restrike():
    notes = notes_from_events([(0, 60, 90), (2, 60, 0), (2, 60, 80), (4, 60, 0)], 32)
    assert notes == [Note(0, 60, 2, 90), Note(2, 60, 2, 80)]


def test_notes_longer_than_the_cap_are_cut_to_it():
    assert notes_from_events([(0, 60, 90), (100, 60, 0)], 32) == [Note(0, 60, 32, 90)]


def test_stray_note_off_is_ignored_and_hanging_notes_end_at_the_end():
    notes = notes_from_events([(0, 61, 0), (1, 60, 90), (3, 64, 90), (5, 64, 0)], 32)
    assert notes == [Note(1, 60, 4, 90), Note(3, 64, 2, 90)]
    assert notes_from_events([(1, 60, 90)], 32, end_steps=9) == [Note(1, 60, 8, 90)]


def test_two_onsets_on_one_step_merge_keeping_the_longer():
    notes = notes_from_events([(0.0, 60, 50), (0.3, 60, 0), (0.4, 60, 90), (6, 60, 0)], 32)
    assert notes == [Note(0, 60, 6, 90)]


def test_chords_keep_every_octave():
    events = [(0, p, 80) for p in (36, 48, 60, 64, 67)] + [(4, p, 0) for p in (36, 48, 60, 64, 67)]
    assert [n.pitch for n in notes_from_events(events, 32)] == [36, 48, 60, 64, 67]
