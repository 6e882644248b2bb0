"""Checkpoints: one torch.save'd dict of plain data and tensors, loadable with weights_only=True.

Keys:
    format_version  int
    state_dict      the model's weights
    model_args      keyword arguments of train.model.JamLSTM (the model's shape travels here)
    vocab           perform.tokens.Vocab.to_dict()
    config          perform.config.Config.to_dict() of the run
    metrics         dict: val_nll, ngram_val_nll, ... (numbers)
    corpus          dict: what it was trained on (name, files, tokens)
    resume          optional dict for --resume: optimizer state, epoch, rng states, history

Written atomically: a temporary file in the same folder, flushed and fsynced, then renamed over the
target, so a kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from perform.tokens import Vocab

from perform.errors import JamError

from .errors import CheckpointError
from .model import JamLSTM

CHECKPOINT_FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "state_dict", "model_args", "vocab")


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    """Atomically write `payload` (format_version is added) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": CHECKPOINT_FORMAT_VERSION, **payload}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)                    # mkstemp makes it private; a model is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint. Raises CheckpointError saying what is wrong and what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found; train one with `python -m train --out DIR`")
    _check_container(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # torch's pickle-protocol chatter for foreign files
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many kinds for a torn or foreign file
        raise CheckpointError(f"{path} is not a readable lstm-jam checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200] if str(err) else ''}); "
                              "it may be torn or foreign: use another checkpoint or retrain") from err
    if not isinstance(data, dict) or any(k not in data for k in REQUIRED_KEYS):
        raise CheckpointError(f"{path} is not an lstm-jam checkpoint (needs keys {list(REQUIRED_KEYS)})")
    version = data["format_version"]
    if not isinstance(version, int) or version > CHECKPOINT_FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version!r}; this lstm-jam reads up to "
                              f"{CHECKPOINT_FORMAT_VERSION}: upgrade lstm-jam")
    _check_contents(path, data)
    return data


def _check_contents(path: Path, data: dict[str, Any]) -> None:
    """The vocabulary parses and the weights fit the model they say they are (else CheckpointError
    naming the file): what every user of a checkpoint builds first."""
    try:
        model_from_checkpoint(data)
    except JamError as err:
        raise CheckpointError(f"{path} holds a broken checkpoint: {err}; use another checkpoint "
                              "or retrain") from err


def _check_container(path: Path) -> None:
    """A checkpoint is a torch.save zip file. A bare pickle (or torch's legacy format, a pickle
    too) is refused before torch sees it: we never unpickle, whatever the loader's safeguards."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if head[:1] == b"\x80":
        raise CheckpointError(f"{path} is a Python pickle, not an lstm-jam checkpoint: lstm-jam never "
                              "unpickles (a pickle can run any code); save a checkpoint with "
                              "`python -m train`, or torch.save a plain dict of tensors")
    if head[:4] != b"PK\x03\x04":
        raise CheckpointError(f"{path} is not an lstm-jam checkpoint (a torch.save zip file starts "
                              f"with b'PK\\x03\\x04', this one with {head!r}; it may be torn, empty "
                              "or another kind of file): use another checkpoint or retrain")


def model_from_checkpoint(data: dict[str, Any]) -> tuple[JamLSTM, Vocab]:
    """Rebuild the model (eval mode) and its vocabulary from a loaded checkpoint."""
    vocab = Vocab.from_dict(data["vocab"])
    try:
        model = JamLSTM(**data["model_args"])
        model.load_state_dict(data["state_dict"])
    except (TypeError, ValueError, RuntimeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint weights do not fit its model_args: {err}") from err
    if model.vocab_size != vocab.size:
        raise CheckpointError(f"checkpoint vocab has {vocab.size} tokens but the model {model.vocab_size}")
    return model.eval(), vocab
