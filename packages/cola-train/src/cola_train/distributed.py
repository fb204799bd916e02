"""Process-group plumbing for ``torchrun``: rank and device from the environment, DDP or FSDP wrapping,
reductions.

``torchrun --nproc-per-node N`` sets RANK, WORLD_SIZE and LOCAL_RANK; without them the run is one process. The
backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device is {name!r} but CUDA is not available; use 'cpu' or 'auto'")
    return device


def init_distributed(device_name: str = "auto") -> DistContext:
    """Join the process group torchrun described in the environment (no-op for a single process)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def wrap_model(module: nn.Module, context: DistContext, strategy: str) -> nn.Module:
    """DistributedDataParallel (or FSDP2 ``fully_shard``) around ``module`` when several processes run."""
    if not context.distributed:
        return module
    if strategy == "fsdp":
        from torch.distributed.fsdp import FSDPModule, fully_shard

        if isinstance(module, FSDPModule):
            return module  # sharded by an earlier stage; fully_shard works in place
        # One FSDP unit for the whole module: parameters, gradients and optimizer state are sharded between
        # steps, and gathered for the whole forward and backward. Finer units would break the models, which
        # use submodules and parameters outside those submodules' forward (the DiT calls each block's
        # modulation before the block, flow matching reads the null action from outside the DiT's forward).
        return fully_shard(module)
    device_ids = [context.device.index] if context.device.type == "cuda" else None
    # Some parameters (the null action, unused code paths of a stage) get no gradient in some steps.
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)


def all_reduce_mean(value: torch.Tensor, context: DistContext) -> torch.Tensor:
    if not context.distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / context.world_size


def all_gather_cat(value: torch.Tensor, context: DistContext) -> torch.Tensor:
    """Concatenate equal-shaped tensors from every rank along dim 0 (rank order)."""
    if not context.distributed:
        return value
    parts = [torch.empty_like(value) for _ in range(context.world_size)]
    dist.all_gather(parts, value.contiguous())
    return torch.cat(parts)


def broadcast_module_state(module: nn.Module, context: DistContext) -> None:
    """Copy rank 0's parameters and buffers of ``module`` to every rank, in place."""
    if not context.distributed:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=0)


def barrier(context: DistContext) -> None:
    if context.distributed:
        dist.barrier()


def shutdown(context: DistContext) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def full_tensor(value: torch.Tensor) -> torch.Tensor:
    """The whole tensor behind an FSDP shard (collective: every rank calls it); plain tensors unchanged."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def full_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    """``module.state_dict()`` with FSDP shards gathered (every rank must call it)."""
    return {key: full_tensor(value) for key, value in module.state_dict().items()}
