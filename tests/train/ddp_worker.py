"""One rank of a torchrun training in the distributed tests: trains as `python -m train ARGS` does,
then saves this rank's weights to OUT/rank<RANK>.pt (rank 0's checkpoints are written as usual).

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/train/ddp_worker.py ARGS
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402

from train.fit import _parser, fit_model  # noqa: E402

if __name__ == "__main__":
    args = _parser().parse_args(sys.argv[1:])
    metrics, model = fit_model(args)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, Path(args.out) / f"rank{os.environ.get('RANK', '0')}.pt")
