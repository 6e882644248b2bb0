"""Training on several processes with torch's DistributedDataParallel, as torchrun starts them.

    torchrun --nproc-per-node 2 -m train shards/ --out runs/big          # gloo on the CPU
    torchrun --nproc-per-node 8 -m train shards/ --out runs/big          # NCCL, one GPU per process

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them everything here is a no-op and training
runs as one process. The batch is the same whatever the number of processes: its train.batch_size
streams are dealt to the ranks (rank r takes streams r, r + N, ...), and the loss is normalised by
the whole batch's token count, so N processes take the same optimizer steps as one (up to float
summation order and dropout masks). That is also why `--resume` works with another number of
processes. Rank 0 alone prints and writes checkpoints.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch

from perform.errors import JamError

TIMEOUT = datetime.timedelta(hours=2)     # rank 0 alone fits the baselines and writes checkpoints


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def on(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def rows(self, n_rows: int) -> slice | None:
        """This rank's streams of a batch of `n_rows` (None: all of them)."""
        return slice(self.rank, n_rows, self.world) if self.on else None


def from_env() -> Dist:
    """The process's place in a torchrun job (Dist() when not started by torchrun)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError as err:
        raise JamError(f"WORLD_SIZE, RANK and LOCAL_RANK must be whole numbers ({err}); start "
                       "distributed training with torchrun") from err
    if world < 1 or not 0 <= rank < world:
        raise JamError(f"RANK {rank} does not fit WORLD_SIZE {world}; start with torchrun")
    return Dist(rank, world, local)


def start(dist: Dist, device: torch.device) -> None:
    """Join the process group: NCCL when training on CUDA, gloo on the CPU."""
    if not dist.on:
        return
    import torch.distributed as td
    if not td.is_available():
        raise JamError("this torch was built without torch.distributed; train in one process")
    td.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)


def stop(dist: Dist) -> None:
    if dist.on:
        import torch.distributed as td
        if td.is_initialized():
            td.destroy_process_group()


def barrier(dist: Dist) -> None:
    if dist.on:
        import torch.distributed as td
        td.barrier()


def sum_values(dist: Dist, values: list[float], device: torch.device) -> list[float]:
    """Each value summed over the ranks (the values themselves in one process)."""
    if not dist.on:
        return values
    import torch.distributed as td
    t = torch.tensor(values, dtype=torch.float64, device=device)
    td.all_reduce(t)
    return t.tolist()


def from_main(dist: Dist, obj):
    """Rank 0's `obj`, on every rank."""
    if not dist.on:
        return obj
    import torch.distributed as td
    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The model under DistributedDataParallel (the model itself in one process)."""
    if not dist.on:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
