import json
import random

import numpy as np
import pytest

from perform.errors import VocabError
from perform.tokens import BOS, EOS, STEP, Note, TokenReader, Vocab, split_songs

V = Vocab()


def centre(velocity):
    return V.bin_velocity(V.velocity_bin(velocity))


def test_vocab_is_small_and_named():
    assert V.size == 4 + 88 + 32 + 8
    assert V.tokens[V.note_id(60)] == "NOTE_60"
    assert V.tokens[V.dur_id(4)] == "DUR_4"
    assert len(set(V.tokens)) == V.size


def test_a_chord_and_a_rest_read_as_expected():
    notes = [Note(0, 64, 2, centre(80)), Note(0, 48, 4, centre(80)), Note(2, 67, 1, centre(40))]
    names = V.describe(V.encode(notes))
    assert names == ["BOS",
                     "NOTE_48", "DUR_4", f"VEL_{V.velocity_bin(80)}",
                     "NOTE_64", "DUR_2", f"VEL_{V.velocity_bin(80)}", "STEP",
                     "STEP",                                            # a rest
                     "NOTE_67", "DUR_1", f"VEL_{V.velocity_bin(40)}", "STEP", "EOS"]


def test_round_trip_is_exact_on_the_grid_keeping_octaves():
    rng = random.Random(1)
    notes = set()
    for _ in range(400):
        notes.add(Note(rng.randrange(0, 200), rng.randrange(21, 109), rng.randrange(1, 33),
                       centre(rng.randrange(1, 128))))
    # one note per (step, pitch) is the language's rule
    unique = {(n.start_step, n.pitch): n for n in sorted(notes)}
    notes = sorted(unique.values())
    assert V.decode(V.encode(notes)) == notes


def test_caps_and_folding():
    ids = V.encode([Note(0, 10, 100, 127), Note(1, 120, 3, 1)])
    out = V.decode(ids)
    assert out[0].pitch == 22 and out[0].dur_steps == 32           # up an octave; cut to the cap
    assert out[1].pitch == 108                                     # 120 -> 108, down an octave
    assert out[0].velocity == centre(127) and out[1].velocity == centre(1)


def test_velocity_bins_cover_1_to_127_in_order():
    bins = [V.velocity_bin(v) for v in range(1, 128)]
    assert bins[0] == 0 and bins[-1] == V.velocity_bins - 1
    assert bins == sorted(bins)
    for b in range(V.velocity_bins):
        assert V.velocity_bin(V.bin_velocity(b)) == b


def test_transpose_shifts_notes_only_and_refuses_leaving_the_range():
    ids = V.encode([Note(0, 60, 4, 64), Note(1, 100, 2, 64)])
    up = V.transpose(ids, 5)
    assert [n.pitch for n in V.decode(up)] == [65, 105]
    assert (up[ids == STEP] == STEP).all()
    assert V.transpose_range(ids) == (21 - 60, 108 - 100)
    with pytest.raises(ValueError, match="allowed"):
        V.transpose(ids, 9)


def test_vocab_json_round_trip_and_version_guard():
    data = json.loads(V.to_json())
    assert data["format_version"] == 1 and data["tokens"][3] == "STEP"
    assert Vocab.from_json(V.to_json()) == V
    small = Vocab(steps_per_beat=2, pitch_min=36, pitch_max=84, max_dur_steps=16, velocity_bins=4)
    assert Vocab.from_json(small.to_json()) == small
    with pytest.raises(VocabError, match="upgrade"):
        Vocab.from_dict({**data, "format_version": 99})
    with pytest.raises(VocabError, match="corrupt"):
        Vocab.from_dict({**data, "tokens": data["tokens"][:-1]})
    with pytest.raises(VocabError, match="JSON"):
        Vocab.from_json("{nope")


def test_reader_masks_what_makes_no_sense():
    r = TokenReader(V)
    allowed = r.allowed()
    assert allowed[STEP] and allowed[EOS] and allowed[V.note_id(60)]
    assert not allowed[V.dur_id(4)] and not allowed[V.vel_id(64)]
    r.feed(V.note_id(60))
    assert r.allowed().sum() == V.max_dur_steps               # only a duration
    r.feed(V.dur_id(4))
    assert r.allowed().sum() == V.velocity_bins               # only a velocity
    assert r.feed(V.vel_id(100)) == Note(0, 60, 4, centre(100))
    allowed = r.allowed()
    assert not allowed[V.note_id(60)] and not allowed[V.note_id(40)] and allowed[V.note_id(61)]
    r.feed(STEP)
    assert r.step == 1 and r.allowed()[V.note_id(40)]


def test_decode_is_lenient_with_broken_streams():
    ids = [BOS, V.dur_id(3), V.note_id(60), V.vel_id(50), V.note_id(62), V.dur_id(2), V.vel_id(50),
           STEP, V.note_id(64), EOS, V.note_id(65), V.dur_id(1), V.vel_id(9)]
    assert V.decode(ids) == [Note(0, 62, 2, V.velocity_of(V.vel_id(50)))]


def test_split_songs():
    a = V.encode([Note(0, 60, 1, 64)])
    b = V.encode([Note(1, 62, 1, 64)])
    songs = split_songs(np.concatenate([a, b]))
    assert len(songs) == 2 and (songs[1] == b).all()
