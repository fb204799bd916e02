"""Nearest codebook entry by squared L2 distance: a Triton kernel and its PyTorch reference.

Both compute ``|z|^2 - 2 z.e + |e|^2`` in float32 (inputs may be fp32, bf16 or fp16) and break ties towards
the lowest code index, like ``torch.argmin``. The kernel tiles N x K and keeps a running minimum per row, so
it never holds the N x K distance matrix; the reference materialises it and is the ground truth in tests.
"""

from __future__ import annotations

import torch

from .triton_import import tl, triton

SUPPORTED_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _validate(z: torch.Tensor, codebook: torch.Tensor) -> None:
    if not isinstance(z, torch.Tensor) or not isinstance(codebook, torch.Tensor):
        raise ValueError("nearest_code expects torch tensors z [N, D] and codebook [K, D].")
    if z.dim() != 2:
        raise ValueError(
            f"z must have shape [N, D] (rank 2), got shape {tuple(z.shape)}; flatten leading dims."
        )
    if codebook.dim() != 2:
        raise ValueError(f"codebook must have shape [K, D] (rank 2), got shape {tuple(codebook.shape)}.")
    if z.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"z and codebook must share the code dimension D: z has D={z.shape[1]}, "
            f"codebook has D={codebook.shape[1]}."
        )
    if codebook.shape[0] == 0:
        raise ValueError("codebook must have at least one entry (K >= 1).")
    if z.shape[1] == 0:
        raise ValueError("the code dimension D must be at least 1.")
    for name, tensor in (("z", z), ("codebook", codebook)):
        if tensor.dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"{name} must be float32, bfloat16 or float16, got {tensor.dtype}.")
    if z.device != codebook.device:
        raise ValueError(f"z is on {z.device} but codebook is on {codebook.device}; move both to one device.")


def _squared_norms(x: torch.Tensor) -> torch.Tensor:
    return x.float().pow(2).sum(dim=1)


def nearest_code_reference(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest codebook row for each row of ``z`` and its squared distance (PyTorch)."""
    _validate(z, codebook)
    z32, e32 = z.float(), codebook.float()
    dist = _squared_norms(z32)[:, None] - 2.0 * (z32 @ e32.T) + _squared_norms(e32)[None, :]
    indices = dist.argmin(dim=1)
    return indices, dist.gather(1, indices[:, None]).squeeze(1).clamp_min(0.0)


if triton is not None:

    @triton.jit
    def _nearest_code_kernel(
        z_ptr,
        e_ptr,
        e_sq_ptr,
        out_index_ptr,
        out_dist_ptr,
        N,
        K,
        D,
        stride_zn,
        stride_zd,
        stride_ek,
        stride_ed,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        BLOCK_D: tl.constexpr,
        DOT_IN_FP32: tl.constexpr,
    ):
        rows = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
        row_mask = rows < N
        # int64 offsets: N * D may exceed 2**31 elements.
        z_rows = z_ptr + rows.to(tl.int64)[:, None] * stride_zn
        offs_d = tl.arange(0, BLOCK_D)

        z_sq = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            d = d0 + offs_d
            z = tl.load(
                z_rows + d[None, :] * stride_zd,
                mask=row_mask[:, None] & (d[None, :] < D),
                other=0.0,
            ).to(tl.float32)
            z_sq += tl.sum(z * z, axis=1)

        best_dist = tl.full((BLOCK_N,), float("inf"), dtype=tl.float32)
        best_index = tl.zeros((BLOCK_N,), dtype=tl.int32)
        for k0 in range(0, K, BLOCK_K):
            cols = k0 + tl.arange(0, BLOCK_K)
            col_mask = cols < K
            dots = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
            for d0 in range(0, D, BLOCK_D):
                d = d0 + offs_d
                d_mask = d < D
                z = tl.load(
                    z_rows + d[None, :] * stride_zd,
                    mask=row_mask[:, None] & d_mask[None, :],
                    other=0.0,
                )
                e_t = tl.load(
                    e_ptr + cols[None, :] * stride_ek + d[:, None] * stride_ed,
                    mask=col_mask[None, :] & d_mask[:, None],
                    other=0.0,
                )
                if DOT_IN_FP32:
                    z = z.to(tl.float32)
                    e_t = e_t.to(tl.float32)
                # ieee keeps fp32 inputs exact (no tf32) so the kernel's argmin matches the fp32 reference.
                dots = tl.dot(z, e_t, dots, input_precision="ieee")
            e_sq = tl.load(e_sq_ptr + cols, mask=col_mask, other=float("inf"))
            dist = z_sq[:, None] - 2.0 * dots + e_sq[None, :]
            dist = tl.where(col_mask[None, :], dist, float("inf"))
            tile_dist, tile_index = tl.min(
                dist, axis=1, return_indices=True, return_indices_tie_break_left=True
            )
            # strict < keeps the earlier tile on ties, so the lowest index wins across tiles as well.
            better = tile_dist < best_dist
            best_dist = tl.where(better, tile_dist, best_dist)
            best_index = tl.where(better, tile_index + k0, best_index)

        tl.store(out_index_ptr + rows, best_index.to(tl.int64), mask=row_mask)
        tl.store(out_dist_ptr + rows, tl.maximum(best_dist, 0.0), mask=row_mask)

    # Triton's CPU interpreter computes tl.dot through numpy, which has no bfloat16, so interpreted runs
    # upcast bf16 tiles first. Products of bf16 values are exact in fp32, so this equals a bf16 dot with
    # fp32 accumulation.
    INTERPRETED = not isinstance(_nearest_code_kernel, triton.runtime.JITFunction)
else:
    INTERPRETED = False


def _block(size: int, lo: int, hi: int) -> int:
    return max(lo, min(hi, triton.next_power_of_2(size)))


def nearest_code_triton(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest codebook row for each row of ``z`` and its squared distance (Triton kernel)."""
    _validate(z, codebook)
    if triton is None:
        raise RuntimeError(
            "nearest_code_triton needs Triton, which is not installed; use nearest_code_reference."
        )
    n, d = z.shape
    k = codebook.shape[0]
    common = torch.promote_types(z.dtype, codebook.dtype)
    z, codebook = z.to(common), codebook.to(common)
    indices = torch.empty(n, dtype=torch.int64, device=z.device)
    sq_dist = torch.empty(n, dtype=torch.float32, device=z.device)
    if n == 0:
        return indices, sq_dist
    e_sq = _squared_norms(codebook).contiguous()
    # tl.dot needs every block dim >= 16; masking pads ragged N, K and D.
    block_n = _block(n, 16, 64)
    block_k = _block(k, 16, 64)
    block_d = _block(d, 16, 64)
    grid = (triton.cdiv(n, block_n),)
    _nearest_code_kernel[grid](
        z,
        codebook,
        e_sq,
        indices,
        sq_dist,
        n,
        k,
        d,
        z.stride(0),
        z.stride(1),
        codebook.stride(0),
        codebook.stride(1),
        BLOCK_N=block_n,
        BLOCK_K=block_k,
        BLOCK_D=block_d,
        DOT_IN_FP32=INTERPRETED and common == torch.bfloat16,
    )
    return indices, sq_dist


def nearest_code(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codebook row per row of ``z``: ``(indices int64 [N], sq_dist float32 [N])``.

    Runs the Triton kernel on CUDA tensors and the PyTorch reference elsewhere.
    """
    _validate(z, codebook)
    if z.is_cuda and triton is not None:
        return nearest_code_triton(z, codebook)
    return nearest_code_reference(z, codebook)
