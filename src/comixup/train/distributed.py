"""Data-parallel training helpers (``torchrun --nproc_per_node N -m comixup train ...``).

:func:`setup` reads the variables that ``torchrun`` sets (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and initializes the default process group:
NCCL when training on CUDA, Gloo on the CPU. Without those variables it returns a single-process
:class:`DistInfo` and initializes nothing.

Conventions of :mod:`comixup.train` under DDP: every rank draws its own shard of the training
set (``DistributedSampler``), mixes its own local batch, and gradients are averaged by
DistributedDataParallel; metrics are reduced across ranks; only rank 0 writes files and shows
progress bars.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .._errors import InputError

__all__ = [
    "DistInfo",
    "ShardSampler",
    "all_gather_objects",
    "all_reduce_sum",
    "barrier",
    "broadcast_buffers",
    "cleanup",
    "local_rank",
    "setup",
]


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job.

    Attributes:
        rank: global rank (0 for a single process).
        world_size: number of processes.
        local_rank: rank on this machine (selects the CUDA device).
        enabled: whether a process group is in use (``world_size > 1``).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that writes files and shows progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"environment variable {name} must be an integer, got {raw!r}") from None


def local_rank() -> int | None:
    """This process's ``LOCAL_RANK`` when it is one of several ranks started by ``torchrun``
    (``WORLD_SIZE > 1``), else None; read before :func:`setup` initializes anything."""
    return _env_int("LOCAL_RANK", 0) if _env_int("WORLD_SIZE", 1) > 1 else None


def setup(device_type: str) -> DistInfo:
    """Initialize the default process group when launched by ``torchrun`` with several ranks.

    Args:
        device_type: ``"cuda"`` (NCCL backend; the local rank selects the GPU) or ``"cpu"``
            (Gloo backend).

    Returns:
        The :class:`DistInfo` of this process.
    """
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return DistInfo()
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available in this build")
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        kwargs = {}
        if backend == "nccl":
            kwargs["device_id"] = torch.device("cuda", local_rank)
        dist.init_process_group(backend=backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(minutes=30), **kwargs)
    return DistInfo(rank=rank, world_size=world, local_rank=local_rank, enabled=True)


def cleanup(info: DistInfo) -> None:
    """Destroy the process group created by :func:`setup` (no-op for a single process)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: list, info: DistInfo, device) -> list[float]:
    """Sum a list of numbers over all ranks (float64); returns them as floats, unchanged for one
    process.

    A value may be a number or a 0-dim tensor (e.g. a loss summed on the GPU): the tensors join
    the reduction where they are, without a read each, and the sums are read back once.
    """
    if not info.enabled:
        return [float(v) for v in values]
    t = torch.stack([torch.as_tensor(v, dtype=torch.float64, device=device).reshape(())
                     for v in values])
    dist.all_reduce(t)
    return t.tolist()


def all_gather_objects(obj, info: DistInfo) -> list:
    """Gather one picklable object per rank (in rank order); ``[obj]`` for one process."""
    if not info.enabled:
        return [obj]
    out = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Copy rank 0's buffers (e.g. BatchNorm running statistics) to every rank.

    DistributedDataParallel broadcasts buffers at the start of each forward, so after the last
    training forward every rank holds statistics updated by its own batch; calling this before
    evaluating and checkpointing makes the ranks' models identical again.
    """
    if not info.enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op for one process)."""
    if info.enabled:
        dist.barrier()


class ShardSampler(torch.utils.data.Sampler):
    """Evaluation sampler: rank ``r`` of ``w`` gets indices ``r, r + w, r + 2w, ...``.

    Unlike ``DistributedSampler`` it neither pads nor repeats samples, so metrics reduced over
    the ranks count every test sample exactly once.
    """

    def __init__(self, n: int, info: DistInfo):
        self.n = int(n)
        self.rank = info.rank
        self.world_size = info.world_size

    def set_epoch(self, epoch: int) -> None:
        """Accepted for interface compatibility; the order never changes."""

    def __iter__(self):
        return iter(range(self.rank, self.n, self.world_size))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.world_size))
