"""The engine: one lstm-jam .onnx file, stepped one token at a time with explicit LSTM state.

    engine = Engine("models/default.onnx")           # CUDA when it works, else the CPU
    state = engine.initial_state()                   # zeros; BOS is not fed
    logits, state = engine.step(BOS, state)          # logits: float32 (vocab,)

`step` never changes the state it is given, so a snapshot is just a kept reference. On the CPU the
state is a pair of read-only numpy arrays; on CUDA a pair of OrtValues that stay on the device
between steps (IO binding), so only the token goes up and only the logits come back.

Loading raises ModelFileError for a missing, corrupt, foreign or newer-format file, and ConfigError
for a provider list naming nothing this onnxruntime has.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import onnxruntime as ort

from . import model_file
from .errors import ConfigError, ModelFileError, VocabError
from .tokens import BOS, STEP, Vocab

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DEFAULT_PROVIDERS = (CUDA, CPU)
WARMUP_STEPS = 8
_DEVICE_OF = {CUDA: "cuda"}  # providers whose state is kept on their device with IO binding


class Engine:
    """A loaded model. Attributes: vocab, metadata (decoded metadata_props), provider (in use),
    fallback (one line: why a preferred provider was not used, or None), path."""

    def __init__(self, path: str | Path, providers: Sequence[str] = DEFAULT_PROVIDERS,
                 warmup: bool = True, *, threads: int = 1) -> None:
        self.path = Path(path)
        data = model_file.read_model_bytes(self.path)
        wanted = choose_providers(providers, ort.get_available_providers())
        self._session, self.fallback = _create_session(data, wanted, self.path, threads)
        self.provider: str = self._session.get_providers()[0]
        props = self._session.get_modelmeta().custom_metadata_map
        self.metadata: dict = model_file.parse_metadata(props, self.path)
        self.vocab: Vocab = _vocab_of(self.metadata, self.path)
        self.num_layers, self.hidden_size = _check_graph(self._session, self.metadata, self.path)
        device = _DEVICE_OF.get(self.provider)
        shape = (self.num_layers, 1, self.hidden_size)
        self._stepper = _BoundStepper(self._session, shape, device) if device else _CpuStepper(
            self._session, shape)
        if warmup:
            self.warm_up()

    def initial_state(self) -> object:
        """Zero state (no token fed yet, not even BOS). Opaque; pass it to `step`."""
        return self._stepper.initial_state()

    def step(self, token: int, state: object) -> tuple[np.ndarray, object]:
        """Feed one token id. Returns the next token's logits (float32, shape (vocab,)) and the new
        state; `state` itself is left as it was."""
        return self._stepper.step(token, state)

    def warm_up(self, steps: int = WARMUP_STEPS) -> None:
        """Run a few steps so the first real one is not the slow one (allocations, kernel choice)."""
        state = self.initial_state()
        for i in range(steps):
            _, state = self.step(BOS if i == 0 else STEP, state)

    def describe(self) -> str:
        """One line for the status display: which model, how big, on which provider."""
        args = self.metadata["model_args"]
        precision = self.metadata.get("precision", "fp32")
        text = (f"{self.path.name}: {args['num_layers']}x{args['hidden_size']} LSTM, "
                f"{self.vocab.size} tokens, {precision}, on {self.provider}")
        return text + (f"; {self.fallback}" if self.fallback else "")


def choose_providers(requested: Sequence[str], available: Sequence[str]) -> list[str]:
    """The requested providers this onnxruntime has, in the requested order, with the CPU provider
    added last as the fallback. Raises ConfigError for unknown names or when none is available."""
    if isinstance(requested, str):
        requested = [requested]
    known = ort.get_all_providers()
    unknown = [p for p in requested if p not in known]
    if unknown:
        raise ConfigError(f"unknown onnxruntime provider(s) {unknown} in perform.providers; this "
                          f"onnxruntime has {list(available)}, e.g. providers = [\"{CUDA}\", \"{CPU}\"]")
    chosen = [p for p in dict.fromkeys(requested) if p in available]
    if CPU in available and CPU not in chosen:
        chosen.append(CPU)
    if not chosen:
        raise ConfigError(f"none of the providers {list(requested)} is available; this onnxruntime "
                          f"has {list(available)}: set perform.providers to some of those")
    return chosen


def _session_options(threads: int) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads      # one thread: least latency for one small step
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # EXTENDED, not ALL: ALL is no faster for this graph (measured 0.58 vs 0.63 ms a step, within
    # noise) and onnxruntime 1.31 segfaults while optimizing an fp16 LSTM graph at ALL.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.log_severity_level = 3
    return options


def _create_session(data: bytes, providers: list[str], path: Path,
                    threads: int) -> tuple[ort.InferenceSession, str | None]:
    """An InferenceSession on the first provider that starts. Returns it and a fallback note."""
    gpu = any(p != CPU for p in providers)
    if gpu:
        # A failed CUDA start makes onnxruntime's default logger print a coloured ERROR and WARNING
        # (severity 3 and 2) to stderr; 4 (FATAL) keeps them back, and we say why in one line.
        ort.set_default_logger_severity(4)
    try:
        session = ort.InferenceSession(data, _session_options(threads), providers=providers)
        error = None
    except Exception as err:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        session, error = None, err
    finally:
        if gpu:
            ort.set_default_logger_severity(2)
    if session is None and gpu and CPU in providers:
        try:
            session = ort.InferenceSession(data, _session_options(threads), providers=[CPU])
        except Exception:  # noqa: BLE001 - the first error says more
            session = None
    if session is None:
        raise ModelFileError(f"{path} is not a readable ONNX model ({_first_line(error)}); it may be "
                             "truncated or not an .onnx file: re-export it with `python -m export`, "
                             "or name another model") from error
    in_use = session.get_providers()[0]
    fallback = None
    if in_use != providers[0]:
        fallback = (f"{providers[0]} unavailable ({why_provider_failed(providers[0])}); using {in_use}. "
                    'See README "Using a GPU".')
    return session, fallback


def why_provider_failed(provider: str) -> str:
    """A short reason why onnxruntime could not start `provider`, found again by loading its shared
    library ourselves (onnxruntime only logs the reason): the loader's message naming the first
    missing library, e.g. 'libcudnn.so.9: cannot open shared object file', when there is one."""
    if provider != CUDA:
        return "onnxruntime could not start it"
    libraries = sorted((Path(ort.__file__).parent / "capi").glob("*onnxruntime_providers_cuda.*"))
    if not libraries:
        return "this onnxruntime has no CUDA provider library; install onnxruntime-gpu"
    error = _load_error(str(libraries[0]))
    if error is None and sys.platform.startswith("linux"):
        driver = _load_error("libcuda.so.1")
        error = driver and f"no NVIDIA driver: {driver}"
    return error or "its libraries load, but no usable GPU was found (does nvidia-smi list one?)"


def _load_error(library: str) -> str | None:
    """What the dynamic loader says when `library` will not load, in one line, or None."""
    try:
        ctypes.CDLL(library)
    except OSError as err:
        text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return text.removesuffix(": No such file or directory")[:200]
    return None


def _first_line(err: BaseException | None) -> str:
    text = str(err).strip().splitlines()[0] if err is not None and str(err).strip() else ""
    return f"{type(err).__name__}: {text[:200]}"


def _vocab_of(metadata: dict, path: Path) -> Vocab:
    try:
        vocab = Vocab.from_dict(metadata["vocab"])
    except VocabError as err:
        raise ModelFileError(f"{path}: {err}") from err
    if vocab.size != metadata["model_args"]["vocab_size"]:
        raise ModelFileError(f"{path}: its vocabulary has {vocab.size} tokens but the model "
                             f"{metadata['model_args']['vocab_size']}; the file is corrupt: re-export it")
    return vocab


def _check_graph(session: ort.InferenceSession, metadata: dict, path: Path) -> tuple[int, int]:
    """The graph must be the single-step LSTM the metadata describes. Returns (layers, hidden)."""
    inputs = tuple(i.name for i in session.get_inputs())
    outputs = tuple(o.name for o in session.get_outputs())
    if inputs != model_file.INPUT_NAMES or outputs != model_file.OUTPUT_NAMES:
        raise ModelFileError(f"{path}: graph inputs {inputs} / outputs {outputs} are not lstm-jam's "
                             f"{model_file.INPUT_NAMES} / {model_file.OUTPUT_NAMES}; re-export it")
    args = metadata["model_args"]
    want = {"h": [args["num_layers"], None, args["hidden_size"]],
            "logits": [None, None, args["vocab_size"]]}
    shapes = {n.name: n.shape for n in (*session.get_inputs(), *session.get_outputs())}
    for name, dims in want.items():
        got = shapes[name]
        if len(got) != 3 or any(w is not None and g != w for g, w in zip(got, dims)):
            raise ModelFileError(f"{path}: graph {name!r} has shape {got} but its metadata says "
                                 f"{dims} (None: any); the file is corrupt: re-export it")
    return args["num_layers"], args["hidden_size"]


class _CpuStepper:
    """State as read-only numpy arrays: the session returns fresh arrays every run."""

    def __init__(self, session: ort.InferenceSession, shape: tuple[int, int, int]) -> None:
        self._session = session
        self._shape = shape
        self._ids = np.zeros((1, 1), dtype=np.int64)
        self._outputs = list(model_file.OUTPUT_NAMES)

    def initial_state(self) -> tuple[np.ndarray, np.ndarray]:
        return _frozen(np.zeros(self._shape, np.float32)), _frozen(np.zeros(self._shape, np.float32))

    def step(self, token: int, state: tuple[np.ndarray, np.ndarray]):
        self._ids[0, 0] = token
        h, c = state
        logits, h_out, c_out = self._session.run(self._outputs, {"ids": self._ids, "h": h, "c": c})
        return logits[0, -1], (_frozen(h_out), _frozen(c_out))


class _BoundStepper:
    """State as OrtValues on `device` ("cuda", or "cpu" in tests), bound with IO binding: each step
    binds the old state as input and lets onnxruntime allocate the new one, so nothing is mutated
    and the state never leaves the device."""

    def __init__(self, session: ort.InferenceSession, shape: tuple[int, int, int], device: str) -> None:
        self._session = session
        self._shape = shape
        self._device = device
        self._ids = np.zeros((1, 1), dtype=np.int64)

    def initial_state(self) -> tuple[ort.OrtValue, ort.OrtValue]:
        zeros = np.zeros(self._shape, np.float32)
        return (ort.OrtValue.ortvalue_from_numpy(zeros, self._device, 0),
                ort.OrtValue.ortvalue_from_numpy(zeros.copy(), self._device, 0))

    def step(self, token: int, state: tuple[ort.OrtValue, ort.OrtValue]):
        self._ids[0, 0] = token
        binding = self._session.io_binding()
        binding.bind_cpu_input("ids", self._ids)
        binding.bind_ortvalue_input("h", state[0])
        binding.bind_ortvalue_input("c", state[1])
        binding.bind_output("logits", "cpu")
        binding.bind_output("h_out", self._device)
        binding.bind_output("c_out", self._device)
        self._session.run_with_iobinding(binding)
        logits, h_out, c_out = binding.get_outputs()
        return logits.numpy()[0, -1], (h_out, c_out)


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
