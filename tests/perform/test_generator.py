"""The generator: grammatical steps only, the player's notes fed as tokens, replayable snapshots."""
import numpy as np
import pytest

from perform.config import Config
from perform.engine import CPU, Engine
from perform.generator import Generator
from perform.model_file import default_model_path
from perform.sampling import Sampler
from perform.tokens import BOS, EOS, STEP, Note, TokenReader, Vocab

V = Vocab()


class RecordingEngine:
    """Wraps an engine and keeps every token fed, to check the stream the model saw."""

    def __init__(self, engine) -> None:
        self.engine, self.vocab, self.fed = engine, engine.vocab, []

    def initial_state(self):
        return self.engine.initial_state()

    def step(self, token, state):
        self.fed.append(int(token))
        return self.engine.step(token, state)


class NoteHungryEngine:
    """No model: logits that love NOTE tokens and hate STEP, to push the per-step note cap."""

    vocab = V

    def initial_state(self):
        return 0

    def step(self, token, state):
        logits = np.zeros(V.size, np.float32)
        logits[V.note_base:V.dur_base] = 10.0 - 0.01 * np.arange(V.num_pitches)   # low first
        logits[STEP] = logits[EOS] = -10.0
        return logits, state + 1


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from export.__main__ import export
    from train.checkpoint import save_checkpoint
    from train.model import JamLSTM
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(1)
    args = dict(vocab_size=V.size, embed_dim=16, hidden_size=32, num_layers=2, dropout=0.0)
    save_checkpoint(folder / "tiny.pt", {"state_dict": JamLSTM(**args).state_dict(), "model_args": args,
                                         "vocab": V.to_dict(), "config": Config().to_dict(),
                                         "metrics": {}, "corpus": {}})
    export(folder / "tiny.pt", folder / "tiny.onnx")
    return Engine(folder / "tiny.onnx", providers=(CPU,))


def assert_grammatical(fed):
    """Every token after BOS was allowed by the grammar at its point; no EOS."""
    assert fed[0] == BOS and EOS not in fed
    reader = TokenReader(V)
    reader.feed(BOS)
    for i, token in enumerate(fed[1:]):
        assert reader.allowed()[token], f"token {V.tokens[token]} at {i} is out of place"
        reader.feed(token)


def test_generated_steps_are_grammatical_and_numbered(tiny):
    rec = RecordingEngine(tiny)
    gen = Generator(rec, Sampler(temperature=1.5, top_p=1.0, seed=0), max_notes_per_step=12)
    played = []
    for step in range(60):
        notes = gen.next_step()
        assert gen.step_index == step + 1
        assert all(n.start_step == step for n in notes)
        pitches = [n.pitch for n in notes]
        assert pitches == sorted(set(pitches)) and len(notes) <= 12
        assert all(1 <= n.dur_steps <= V.max_dur_steps and V.pitch_min <= n.pitch <= V.pitch_max
                   for n in notes)
        assert all(n.velocity == V.bin_velocity(V.velocity_bin(n.velocity)) for n in notes)
        played += notes
    assert played, "a random model at temperature 1.5 plays something in 60 steps"
    assert_grammatical(rec.fed)
    assert rec.fed.count(STEP) == 60
    assert V.decode(rec.fed) == played                 # the notes returned are the tokens fed


def test_the_per_step_note_cap_forces_step():
    gen = Generator(NoteHungryEngine(), Sampler(temperature=1e-6, seed=0), max_notes_per_step=5)
    for step in range(4):
        notes = gen.next_step()
        assert [(n.start_step, n.pitch) for n in notes] == [(step, p) for p in range(21, 26)]


def test_a_note_hungry_model_still_stops_at_the_top_pitch():
    gen = Generator(NoteHungryEngine(), Sampler(temperature=1e-6, seed=0), max_notes_per_step=200)
    notes = gen.next_step()                 # argmax is always the lowest allowed NOTE: all 88 keys
    assert [n.pitch for n in notes] == list(range(V.pitch_min, V.pitch_max + 1))


def test_feed_step_feeds_the_players_notes_as_tokens(tiny):
    rec = RecordingEngine(tiny)
    gen = Generator(rec, Sampler(seed=0))
    gen.feed_step([Note(99, 64, 2, 80), Note(-5, 48, 4, 100), Note(0, 64, 1, 80)])  # start ignored
    gen.feed_step([])                                                               # a rest
    gen.feed_step([Note(0, 130, 3, 50)])                                            # folded
    expected = V.encode([Note(0, 48, 4, 100), Note(0, 64, 2, 80), Note(2, 106, 3, 50)], eos=False)
    assert rec.fed == list(expected)
    assert gen.step_index == 3
    assert all(n.start_step == 3 for n in gen.next_step())


def test_a_velocity_the_model_never_saw_is_fed_as_the_nearest_trained_bin(tiny):
    rec = RecordingEngine(tiny)
    rec.metadata = {"corpus": {"velocity_bins": [2, 4]}}      # e.g. a corpus at mp and f only
    gen = Generator(rec, Sampler(seed=0))
    gen.feed_step([Note(0, 60, 1, 127), Note(0, 64, 1, 1), Note(0, 67, 1, 60)])
    fed_bins = [t - V.vel_base for t in rec.fed if V.is_vel(t)]
    assert fed_bins == [4, 2, 2]            # bins 7 -> 4, 0 -> 2, 3 -> 2 (a tie: the softer)
    plain = RecordingEngine(tiny)            # a model that does not say: velocities as played
    Generator(plain, Sampler(seed=0)).feed_step([Note(0, 60, 1, 127)])
    assert [t - V.vel_base for t in plain.fed if V.is_vel(t)] == [7]


def test_snapshot_restore_replays_the_same_music(tiny):
    gen = Generator(tiny, Sampler(temperature=1.5, top_p=1.0, seed=5))
    gen.feed_step([Note(0, 60, 4, 90), Note(0, 64, 4, 90)])
    for _ in range(5):
        gen.next_step()
    snap = gen.snapshot()
    gen.sampler = Sampler(temperature=1.5, top_p=1.0, seed=11)
    first = [gen.next_step() for _ in range(20)]
    for _ in range(2):                                   # a snapshot can be restored again
        gen.restore(snap)
        assert gen.step_index == 6
        gen.sampler = Sampler(temperature=1.5, top_p=1.0, seed=11)
        assert [gen.next_step() for _ in range(20)] == first
    assert all(n.start_step == 6 + i for i, notes in enumerate(first) for n in notes)


def test_restore_then_feed_differs_from_generating(tiny):
    """The live loop's use: go back to the last known step and re-feed the player's real notes."""
    gen = Generator(tiny, Sampler(seed=2))
    snap = gen.snapshot()
    generated = gen.next_step()
    after_generating = gen.snapshot().logits
    gen.restore(snap)
    gen.feed_step([Note(0, 72, 8, 100)])
    assert gen.step_index == 1
    after_feed = gen.snapshot().logits
    assert [(n.pitch, n.dur_steps) for n in generated] != [(72, 8)]
    assert not np.allclose(after_feed, after_generating)     # the re-fed step is what it heard
    gen.restore(snap)
    gen.feed_step([Note(0, 72, 8, 100)])
    assert (gen.snapshot().logits == after_feed).all()       # and the same every time


def test_reset_starts_over_like_a_new_generator(tiny):
    gen = Generator(tiny, Sampler(temperature=1.5, top_p=1.0, seed=9))
    first = [gen.next_step() for _ in range(10)]
    gen.reset()
    assert gen.step_index == 0
    gen.sampler = Sampler(temperature=1.5, top_p=1.0, seed=9)
    assert [gen.next_step() for _ in range(10)] == first


def test_the_shipped_default_model_loads_and_plays():
    path = default_model_path()
    if not path.is_file():
        pytest.skip(f"{path} is not there yet: export it with `python -m export CHECKPOINT -o {path}`")
    engine = Engine(path, providers=(CPU,))
    gen = Generator(engine, Sampler(temperature=1.0, seed=0))
    gen.feed_step([Note(0, 60, 4, 90), Note(0, 64, 4, 90), Note(0, 67, 4, 90)])
    for _ in range(3):
        gen.feed_step([])
    notes = [n for _ in range(64) for n in gen.next_step()]
    assert gen.step_index == 68
    assert notes, "the shipped model plays at least one note in 16 beats"
    assert all(4 <= n.start_step < 68 for n in notes)
