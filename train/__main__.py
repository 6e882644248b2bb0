"""Training entry point.

    python -m train prepare [PATH ...] [--json]          read a corpus into tokens (cached)
    python -m train prepare PATH ... --out-shards DIR    ... into memory-mappable token shards
    python -m train [PATH ...] --out DIR                 train an LSTM (no PATH: Bach chorales)
    torchrun --nproc-per-node N -m train ... --out DIR   the same on N processes (DDP)
    python -m train evaluate CHECKPOINT PATH ... --json  score a checkpoint on unseen music
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "prepare":
        from .prepare import main as prepare_main
        return prepare_main(argv[1:])
    if argv and argv[0] == "evaluate":
        from .evaluate import main as evaluate_main
        return evaluate_main(argv[1:])
    from .fit import main as fit_main
    return fit_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
