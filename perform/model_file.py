"""The .onnx model file: where the default one lives, and what its metadata must say.

`python -m export` writes one file whose ONNX metadata_props carry, as JSON strings, everything the
instrument needs (no torch, no checkpoint):

    lstm_jam_format  the format version (an int, see FORMAT_VERSION)
    vocab            perform.tokens.Vocab.to_dict()
    grid             the grid settings the vocabulary was built from
    model_args       the model's sizes (vocab_size, embed_dim, hidden_size, num_layers, dropout)
    corpus, metrics  what it was trained on and how well it did (informational)
    config           the training run's full config (informational)
    precision        "fp32", "fp16" or "int8"
    parity           {"max_abs_logit_diff": ..., "tokens": ...} from the export's self-check

The graph is one step of the LSTM: inputs `ids` (batch, tokens) int64, `h` and `c`
(layers, batch, hidden) float32; outputs `logits` (batch, tokens, vocab), `h_out`, `c_out`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping

import perform

from .errors import ModelFileError

FORMAT_VERSION = 1
FORMAT_KEY = "lstm_jam_format"
JSON_KEYS = ("vocab", "grid", "model_args", "corpus", "metrics", "config", "parity")
REQUIRED_KEYS = (FORMAT_KEY, "vocab", "model_args")
INPUT_NAMES = ("ids", "h", "c")
OUTPUT_NAMES = ("logits", "h_out", "c_out")


def default_model_path() -> Path:
    """<repo root>/models/default.onnx: the model used when none is named."""
    return Path(perform.__file__).resolve().parents[1] / "models" / "default.onnx"


def encode_metadata(fields: Mapping[str, object]) -> dict[str, str]:
    """Metadata values as ONNX wants them (strings): dicts and lists as JSON, the version as text."""
    out = {FORMAT_KEY: str(FORMAT_VERSION)}
    for key, value in fields.items():
        if key != FORMAT_KEY:
            out[key] = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return out


def read_model_bytes(path: str | Path) -> bytes:
    """The file's bytes. Raises ModelFileError when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        where = path.parent if path.parent.is_dir() else Path.cwd()
        found = sorted(p.name for p in where.glob("*.onnx"))[:10]
        raise ModelFileError(f"model file {path} not found; .onnx files in {where}: {found or 'none'}; "
                             "export one with `python -m export CHECKPOINT -o model.onnx`")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ModelFileError(f"cannot read model file {path}: {err}") from err
    if not data:
        raise ModelFileError(f"model file {path} is empty; re-export it with `python -m export`")
    return data


def parse_metadata(props: Mapping[str, str], path: str | Path) -> dict:
    """Check an lstm-jam model's metadata_props and decode them (JSON values become objects).

    Raises ModelFileError for a foreign ONNX file (no lstm-jam keys), a newer format version, or
    malformed values.
    """
    missing = [k for k in REQUIRED_KEYS if k not in props]
    if missing:
        raise ModelFileError(
            f"{path} is an ONNX file but not an lstm-jam model (its metadata lacks {missing}; it has "
            f"{sorted(props)[:10]}); export a checkpoint with `python -m export CHECKPOINT -o model.onnx`")
    try:
        version = int(props[FORMAT_KEY])
    except ValueError:
        raise ModelFileError(f"{path}: {FORMAT_KEY} is {props[FORMAT_KEY]!r}, not a whole number; "
                             "the file is corrupt: re-export it") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{path} has lstm-jam model format {version}; this lstm-jam "
                             f"{perform.__version__} reads up to {FORMAT_VERSION}: upgrade lstm-jam, or "
                             "re-export the checkpoint with this version's `python -m export`")
    meta: dict = {FORMAT_KEY: version}
    for key, text in props.items():
        if key in JSON_KEYS:
            try:
                meta[key] = json.loads(text)
            except json.JSONDecodeError as err:
                raise ModelFileError(f"{path}: metadata {key!r} is not valid JSON ({err}); "
                                     "the file is corrupt: re-export it") from err
        elif key != FORMAT_KEY:
            meta[key] = text
    _check_model_args(meta["model_args"], path)
    return meta


def _check_model_args(args: object, path: str | Path) -> None:
    names = ("vocab_size", "hidden_size", "num_layers")
    if not isinstance(args, dict) or any(not isinstance(args.get(n), int) for n in names):
        raise ModelFileError(f"{path}: metadata model_args must give whole numbers {list(names)}, "
                             f"got {args!r}; re-export the checkpoint")
