"""Multi-process training with torch.distributed: set-up from torchrun's environment, and small helpers.

Launch with ``torchrun --nproc_per_node=N -m mnist_diffusion train ...`` (one process per GPU, or per CPU
share with the gloo backend). Every rank holds the whole model and builds the same global batch from the
same seeds; each rank trains on its contiguous 1/N share of it, and DistributedDataParallel averages the
gradients, so N processes take exactly the steps that one process would take with the same global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from mnist_diffusion.errors import UserError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> tuple[DistInfo, torch.device]:
    """Join the process group that torchrun describes (WORLD_SIZE > 1), else run as a single process.

    Returns the rank information and this rank's device (cuda:LOCAL_RANK when training on CUDA).
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), device
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return info, device


def shard_bounds(batch_size: int, info: DistInfo) -> tuple[int, int]:
    """[start, stop) of this rank's contiguous share of a global batch."""
    if batch_size % info.world_size:
        raise UserError(f"train.batch_size={batch_size} must be divisible by the number of processes ({info.world_size})")
    share = batch_size // info.world_size
    return info.rank * share, (info.rank + 1) * share


def mean_across_ranks(value: float, info: DistInfo, device: torch.device) -> float:
    """The mean of a per-rank number over all ranks (the value itself in a single process)."""
    if not info.enabled:
        return value
    tensor = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.item() / info.world_size


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
