"""Triton (imported once, by cola_lam.kernels.triton_import) and the tile shapes the fused kernels share."""

import torch
from cola_lam.kernels.triton_import import HAS_TRITON, require_triton, tl, triton

__all__ = [
    "BACKWARD_ITERS",
    "HAS_TRITON",
    "check_kernel_inputs",
    "require_triton",
    "tile_shape",
    "tl",
    "triton",
]

# Row blocks a backward program walks through before writing its partial modulation gradient: fewer partial
# rows to reduce afterwards, at the price of fewer programs.
BACKWARD_ITERS = 8


def tile_shape(channels: int) -> tuple[int, int, int]:
    """(BLOCK_M rows, BLOCK_C columns, num_warps) for a row of ``channels``: a tile of about 4K elements."""
    block_c = triton.next_power_of_2(channels)
    block_m = max(1, min(32, 4096 // block_c))
    num_warps = 4 if block_c <= 1024 else 8
    return block_m, block_c, num_warps


def check_kernel_inputs(*tensors: torch.Tensor) -> None:
    device = tensors[0].device
    for tensor in tensors:
        if tensor.device != device:
            raise ValueError(f"all kernel inputs must be on one device, got {tensor.device} and {device}")
        if not tensor.is_floating_point():
            raise ValueError(f"kernel inputs must be floating point, got {tensor.dtype}")
