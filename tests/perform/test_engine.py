"""The engine on a tiny exported model: stepping, state, providers, and every bad file it may meet."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from perform import model_file
from perform.config import Config
from perform.engine import CPU, CUDA, Engine, _BoundStepper, choose_providers
from perform.errors import ConfigError, ModelFileError
from perform.tokens import BOS, STEP, Vocab

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random JamLSTM checkpoint exported to .onnx (fp32, self-checked)."""
    from export.__main__ import export
    from train.checkpoint import save_checkpoint
    from train.model import JamLSTM
    folder = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    vocab = Vocab.from_grid(Config().grid)
    args = dict(vocab_size=vocab.size, embed_dim=16, hidden_size=32, num_layers=2, dropout=0.0)
    save_checkpoint(folder / "tiny.pt", {"state_dict": JamLSTM(**args).state_dict(), "model_args": args,
                                         "vocab": vocab.to_dict(), "config": Config().to_dict(),
                                         "metrics": {"val_nll": 4.2}, "corpus": {"name": "random"}})
    export(folder / "tiny.pt", folder / "tiny.onnx")
    return folder / "tiny.onnx"


def stream(engine, tokens, state=None):
    state = engine.initial_state() if state is None else state
    out = []
    for t in tokens:
        logits, state = engine.step(t, state)
        out.append(logits)
    return np.array(out), state


def test_loads_with_its_vocabulary_and_metadata(tiny):
    engine = Engine(tiny, providers=(CPU,))
    assert engine.provider == CPU and engine.fallback is None
    assert engine.vocab == Vocab()
    assert engine.metadata["lstm_jam_format"] == model_file.FORMAT_VERSION
    assert engine.metadata["model_args"]["hidden_size"] == 32
    assert engine.metadata["metrics"] == {"val_nll": 4.2}
    assert engine.metadata["corpus"] == {"name": "random"}
    assert engine.metadata["grid"]["steps_per_beat"] == 4
    assert engine.metadata["precision"] == "fp32"
    assert engine.metadata["parity"]["max_abs_logit_diff"] <= 1e-4
    assert "2x32 LSTM" in engine.describe() and CPU in engine.describe()


def test_step_gives_float32_logits_over_the_vocabulary(tiny):
    engine = Engine(tiny, providers=(CPU,))
    logits, state = engine.step(BOS, engine.initial_state())
    assert logits.shape == (engine.vocab.size,) and logits.dtype == np.float32
    assert np.isfinite(logits).all()
    again, _ = engine.step(STEP, state)
    assert not np.allclose(logits, again)          # the state carries: a new token, new logits


def test_step_never_mutates_the_state_it_is_given(tiny):
    engine = Engine(tiny, providers=(CPU,))
    _, snap = stream(engine, [BOS, 10, 100, 130, STEP])
    kept = [np.array(a, copy=True) for a in snap]
    first, _ = stream(engine, [20, 105, 128, STEP], snap)
    assert all((np.asarray(a) == b).all() for a, b in zip(snap, kept))
    second, _ = stream(engine, [20, 105, 128, STEP], snap)   # replay from the kept reference
    assert (first == second).all()
    with pytest.raises(ValueError):
        snap[0][0, 0, 0] = 1.0                       # read-only: a caller cannot spoil a snapshot


def test_io_binding_path_matches_the_plain_path(tiny):
    """The CUDA path (state as OrtValues, IO binding) run on the CPU device."""
    engine = Engine(tiny, providers=(CPU,))
    tokens = [BOS] + list(np.random.default_rng(1).integers(0, engine.vocab.size, 60))
    plain, _ = stream(engine, tokens)
    engine._stepper = _BoundStepper(engine._session, (2, 1, 32), "cpu")
    bound, snap = stream(engine, tokens)
    assert np.abs(bound - plain).max() < 1e-6
    a, _ = stream(engine, [5, 50, 125], snap)
    b, _ = stream(engine, [5, 50, 125], snap)
    assert (a == b).all()


def test_missing_file_names_what_is_there_and_how_to_make_one(tmp_path):
    (tmp_path / "other.onnx").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"not found.*other\.onnx.*python -m export"):
        Engine(tmp_path / "nope.onnx")


@pytest.mark.parametrize("kind", ["random", "truncated", "empty"])
def test_corrupt_files_are_a_clear_error(tiny, tmp_path, kind):
    data = tiny.read_bytes()
    bad = {"random": np.random.default_rng(0).bytes(5000), "truncated": data[: len(data) // 3],
           "empty": b""}[kind]
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(bad)
    with pytest.raises(ModelFileError, match=r"(not a readable ONNX model|empty).*re-export"):
        Engine(path, providers=(CPU,))


def test_a_foreign_onnx_file_is_refused(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "foreign", [x], [y])
    path = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8),
              str(path))
    with pytest.raises(ModelFileError, match="not an lstm-jam model"):
        Engine(path, providers=(CPU,))


def test_a_newer_format_version_says_upgrade(tiny, tmp_path):
    proto = onnx.load(str(tiny))
    for prop in proto.metadata_props:
        if prop.key == model_file.FORMAT_KEY:
            prop.value = str(model_file.FORMAT_VERSION + 1)
    path = tmp_path / "future.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelFileError, match=r"format 2.*upgrade lstm-jam"):
        Engine(path, providers=(CPU,))


def test_metadata_that_lies_about_the_vocabulary_is_refused(tiny, tmp_path):
    proto = onnx.load(str(tiny))
    for prop in proto.metadata_props:
        if prop.key == "vocab":
            prop.value = Vocab(max_dur_steps=16).to_json()
    path = tmp_path / "lying.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelFileError, match="vocabulary has 116 tokens but the model 132"):
        Engine(path, providers=(CPU,))


def test_providers_keep_the_available_in_order_with_cpu_last():
    assert choose_providers([CUDA, CPU], [CPU]) == [CPU]
    assert choose_providers([CUDA], [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers([CPU, CUDA], [CUDA, CPU]) == [CPU, CUDA]
    with pytest.raises(ConfigError, match=r"unknown onnxruntime provider.*'CUDAProvider'"):
        choose_providers(["CUDAProvider"], [CPU])
    with pytest.raises(ConfigError, match="none of the providers"):
        choose_providers([CUDA], ["TensorrtExecutionProvider"])


def test_cuda_first_reports_what_it_got(tiny):
    """Here CUDA is listed by onnxruntime-gpu but cannot start without a GPU: the engine falls back
    to the CPU and says so. On a GPU machine it runs on CUDA with no fallback note."""
    engine = Engine(tiny)
    assert engine.provider in (CUDA, CPU)
    if engine.provider == CPU:
        assert CUDA in engine.fallback and "using CPUExecutionProvider" in engine.fallback
    else:
        assert engine.fallback is None
    logits, _ = engine.step(BOS, engine.initial_state())
    assert logits.shape == (engine.vocab.size,)


def test_default_model_path_is_models_default_onnx_in_the_repo():
    path = model_file.default_model_path()
    assert path.parts[-2:] == ("models", "default.onnx")
    assert (path.parents[1] / "perform" / "engine.py").is_file()


def test_metadata_that_lies_about_the_model_size_is_refused(tiny, tmp_path):
    proto = onnx.load(str(tiny))
    for prop in proto.metadata_props:
        if prop.key == "model_args":
            prop.value = prop.value.replace('"hidden_size": 32', '"hidden_size": 64')
    path = tmp_path / "lying.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(ModelFileError, match=r"graph 'h' has shape \[2, 'batch', 32\].*re-export"):
        Engine(path, providers=(CPU,))
