"""Export a training checkpoint to one self-describing single-step .onnx file.

    python -m export runs/latest/best.pt -o models/default.onnx          # fp32
    python -m export runs/latest/best.pt -o model.int8.onnx --int8       # dynamic int8 weights
    python -m export runs/latest/best.pt -o model.fp16.onnx --fp16 --json

The file is checked after writing: torch against onnxruntime over a 500-token stream with the state
carried; the export fails (exit 2, nothing written) when fp32's largest logit difference is above
1e-4, or when a lossy variant's next-token distributions drift (mean KL above 5e-3 nats for int8,
1e-3 for fp16, or the most likely token differing on more than 2% of the steps).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from perform.errors import JamError
from train.checkpoint import load_checkpoint, model_from_checkpoint

from .errors import ExportError
from .onnx_export import convert, export_fp32, write_metadata
from .parity import (KL_TOLERANCE, MIN_ARGMAX_AGREEMENT, TOLERANCE, check_parity,
                     parity_failure)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m export", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a checkpoint written by `python -m train`")
    parser.add_argument("-o", "--out", required=True, help="the .onnx file to write")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--fp16", action="store_true", help="half-precision weights")
    kind.add_argument("--int8", action="store_true", help="dynamic int8 weights (onnxruntime)")
    parser.add_argument("--tokens", type=int, default=500, help="length of the self-check stream")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def export(checkpoint: str | Path, out: str | Path, precision: str = "fp32", tokens: int = 500,
           exporter: str = "legacy") -> dict:
    """Export, self-check, and move the file into place. Returns the report; raises ExportError
    (nothing written) when the check fails."""
    out = Path(out)
    data = load_checkpoint(checkpoint)
    model, vocab = model_from_checkpoint(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".export-") as tmp:
        fp32, final = Path(tmp) / "fp32.onnx", Path(tmp) / "final.onnx"
        export_fp32(model, fp32, exporter)
        convert(fp32, final, precision)
        write_metadata(final, data, vocab, {"precision": precision})
        parity = check_parity(model, final, tokens)
        report = {"checkpoint": str(checkpoint), "out": str(out), "precision": precision,
                  **tolerance_of(precision), **parity.to_dict()}
        failure = parity_failure(precision, parity)
        if failure is not None:
            raise ExportError(f"self-check failed over {tokens} tokens: {failure}; {out} was not "
                              "written. Try --exporter dynamo, or report the torch/onnxruntime versions")
        write_metadata(final, data, vocab, {"precision": precision, "parity": parity.to_dict()})
        os.replace(final, out)
    report["bytes"] = out.stat().st_size
    return report


def tolerance_of(precision: str) -> dict:
    """The self-check's bounds for `precision`, for the report."""
    if precision in TOLERANCE:
        return {"tolerance": TOLERANCE[precision]}
    return {"kl_tolerance": KL_TOLERANCE[precision], "min_argmax_agreement": MIN_ARGMAX_AGREEMENT}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    precision = "fp16" if args.fp16 else "int8" if args.int8 else "fp32"
    try:
        report = export(args.checkpoint, args.out, precision, args.tokens, args.exporter)
    except JamError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        bound = (f"tolerance {report['tolerance']:g}" if "tolerance" in report else
                 f"KL tolerance {report['kl_tolerance']:g}, argmax at least "
                 f"{report['min_argmax_agreement']:.0%}")
        print(f"wrote {report['out']} ({precision}, {report['bytes'] / 1e6:.2f} MB); self-check over "
              f"{report['tokens']} tokens ({bound}): max |logit diff| "
              f"{report['max_abs_logit_diff']:.2e}, argmax agreement "
              f"{report['argmax_agreement']:.1%}, mean KL {report['mean_kl_nats']:.2e} nats, "
              f"step p50 {report['step_ms_p50']:.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
