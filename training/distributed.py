"""Training on several processes (torchrun): each rank's share of every batch, the process
group, and the checks that keep the ranks in step."""

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from common.cli import UsageError


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """This epoch's shuffled, full batches (the same every time for the same seed/epoch)."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    return [order[i : i + batch_size].tolist() for i in range(0, n - batch_size + 1, batch_size)]


def rank_batches(
    n: int, batch_size: int, seed: int, epoch: int, rank: int = 0, world: int = 1
) -> list[list[int]]:
    """This rank's disjoint share of every global batch of the epoch (a distributed sampler).

    Every rank draws the same shuffled global batches and keeps its own contiguous slice, so
    the ranks' slices together are exactly the one-process batch: with gradients averaged,
    N processes take the same steps as one, whatever N is (and a resumed run can change N).
    """
    share = batch_size // world
    return [
        batch[rank * share : (rank + 1) * share]
        for batch in epoch_batches(n, batch_size, seed, epoch)
    ]


class Distributed:
    """Rank and world size; under torchrun, the process group too (NCCL on GPUs, else gloo)."""

    def __init__(self, device: str) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            cuda = device.startswith("cuda") and torch.cuda.is_available()
            if cuda and device == "cuda":
                torch.cuda.set_device(self.local_rank)  # NCCL must know each rank's own GPU
            dist.init_process_group("nccl" if cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def wrap(self, module: nn.Module, device: torch.device) -> nn.Module:
        """``module`` under DistributedDataParallel (gradients averaged over ranks) if needed.

        DDP reduces the parameters that need gradients when it is built: build it again
        whenever that set changes (a frozen encoder thawing), or it waits forever for them.
        """
        if self.world == 1:
            return module
        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _tensor(self, values: list[float], dtype: torch.dtype) -> torch.Tensor:
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        return torch.tensor(values, dtype=dtype, device=device)

    def mean(self, values: dict[str, float]) -> dict[str, float]:
        """Average logged numbers over ranks (each saw only its share of the batch)."""
        if self.world == 1 or not values:
            return values
        keys = sorted(values)
        total = self._tensor([values[k] for k in keys], torch.float64)
        dist.all_reduce(total)
        return {k: v / self.world for k, v in zip(keys, total.tolist())}

    def agree(self, values: dict[str, int]) -> None:
        """Stop unless every process sees the same numbers (checkpoint step, photos).

        Each process reads the checkpoint and the photos itself: on several machines, one
        that sees other files would take other steps and leave the rest waiting forever.
        """
        if self.world == 1:
            return
        high = self._tensor(list(values.values()), torch.int64)
        low = -high
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MAX)
        differ = [
            f"{name} ({-lo} to {hi})"
            for name, hi, lo in zip(values, high.tolist(), low.tolist())
            if hi != -lo
        ]
        if differ:
            raise UsageError(
                f"the {self.world} processes see different {', '.join(differ)}: every machine "
                "needs the same --data, and --out on storage they all share"
            )

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
