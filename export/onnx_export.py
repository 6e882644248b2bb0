"""A checkpoint -> one single-step .onnx graph with lstm-jam metadata (fp32, or an fp16/int8 variant).

The graph (names in perform.model_file):
    ids    (batch, tokens) int64          h, c      (layers, batch, hidden) float32
    logits (batch, tokens, vocab) float32 h_out, c_out (layers, batch, hidden) float32
batch and tokens are dynamic; the instrument feeds one token at a time (batch 1, tokens 1).

The TorchScript-based exporter (`dynamo=False`) is used by default: in torch 2.13 both exporters give
the same clean graph (Gather, two ONNX LSTM nodes, MatMul+Add), and the legacy one takes 0.3 s where
the dynamo one takes 7 s and prints pages. `exporter="dynamo"` selects the other.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from perform import model_file
from perform.tokens import Vocab
from train.model import JamLSTM

from .errors import ExportError

PRECISIONS = ("fp32", "fp16", "int8")
OPSET = 17


class StepGraph(nn.Module):
    """JamLSTM with its state as plain inputs and outputs (ONNX has no tuples)."""

    def __init__(self, model: JamLSTM) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
        logits, (h_out, c_out) = self.model(ids, (h, c))  # (B, T, V); (L, B, H) x2
        return logits, h_out, c_out


def export_fp32(model: JamLSTM, path: Path, exporter: str = "legacy") -> None:
    """Write the fp32 single-step graph of `model` (eval mode) to `path`, without metadata."""
    model = model.eval()
    ids = torch.zeros(1, 1, dtype=torch.long)                          # (B, T)
    h = torch.zeros(model.num_layers, 1, model.hidden_size)            # (L, B, H)
    names = dict(input_names=list(model_file.INPUT_NAMES), output_names=list(model_file.OUTPUT_NAMES))
    graph = StepGraph(model).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")   # the legacy exporter's deprecation and batch-size notes
        if exporter == "legacy":
            axes = {"ids": {0: "batch", 1: "tokens"}, "logits": {0: "batch", 1: "tokens"},
                    **{n: {1: "batch"} for n in ("h", "c", "h_out", "c_out")}}
            torch.onnx.export(graph, (ids, h, h.clone()), str(path), dynamo=False,
                              opset_version=OPSET, dynamic_axes=axes, **names)
        elif exporter == "dynamo":
            batch, tokens = torch.export.Dim("batch"), torch.export.Dim("tokens")
            program = torch.onnx.export(graph, (ids, h, h.clone()), dynamo=True, verbose=False,
                                        dynamic_shapes=({0: batch, 1: tokens}, {1: batch}, {1: batch}),
                                        **names)
            program.save(str(path))
        else:
            raise ExportError(f"unknown exporter {exporter!r}; use 'legacy' or 'dynamo'")


def convert(src: Path, dst: Path, precision: str) -> None:
    """Write `src` (fp32) as `precision` to `dst`. Inputs and outputs stay float32 either way."""
    if precision == "fp32":
        onnx.save(onnx.load(str(src)), str(dst))
    elif precision == "fp16":
        from onnxruntime.transformers.float16 import convert_float_to_float16
        half = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        _sort_nodes(half.graph)        # the converter appends its Cast nodes out of order
        onnx.save(half, str(dst))
    elif precision == "int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic
        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)     # its "consider pre-processing" hint is for vision models
        try:
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
    else:
        raise ExportError(f"unknown precision {precision!r}; use one of {list(PRECISIONS)}")
    try:
        onnx.checker.check_model(str(dst))
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the {precision} graph is not valid ONNX: {err}") from err


def _sort_nodes(graph: onnx.GraphProto) -> None:
    """Order nodes so each comes after the nodes that produce its inputs (ONNX requires it)."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        blocked = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                blocked.append(node)
        if len(blocked) == len(pending):
            raise ExportError(f"graph has a cycle or a missing input at {blocked[0].name!r}")
        pending = blocked
    del graph.node[:]
    graph.node.extend(ordered)


def write_metadata(path: Path, checkpoint: dict, vocab: Vocab, extra: dict) -> None:
    """Stamp the lstm-jam metadata (see perform.model_file) into the ONNX file at `path`."""
    proto = onnx.load(str(path))
    config = checkpoint.get("config") or {}
    fields = {"vocab": vocab.to_dict(),
              "grid": config.get("grid") or _grid_of(vocab),
              "model_args": checkpoint["model_args"],
              "corpus": checkpoint.get("corpus") or {},
              "metrics": checkpoint.get("metrics") or {},
              "config": config, **extra}
    del proto.metadata_props[:]
    for key, value in model_file.encode_metadata(fields).items():
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "lstm-jam export"
    onnx.save(proto, str(path))


def _grid_of(vocab: Vocab) -> dict:
    return {"steps_per_beat": vocab.steps_per_beat, "max_dur_steps": vocab.max_dur_steps,
            "velocity_bins": vocab.velocity_bins, "pitch_min": vocab.pitch_min,
            "pitch_max": vocab.pitch_max}
