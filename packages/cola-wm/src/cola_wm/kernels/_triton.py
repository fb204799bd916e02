"""Triton availability and the tile shapes the fused kernels share."""

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # triton ships for Linux only; elsewhere the PyTorch references run
    triton = None
    tl = None

HAS_TRITON = triton is not None

# Row blocks a backward program walks through before writing its partial modulation gradient: fewer partial
# rows to reduce afterwards, at the price of fewer programs.
BACKWARD_ITERS = 8


def require_triton() -> None:
    if not HAS_TRITON:
        raise RuntimeError(
            "triton is not installed; use the *_reference functions or the dispatchers instead"
        )


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
