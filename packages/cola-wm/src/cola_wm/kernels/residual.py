"""Gated residual: ``x + gate * y`` in one pass (AdaLN-Zero's gated skip connection).

``gate`` is ``[B, C]`` or per frame ``[B, T, C]`` over frame-major tokens ``x, y [B, N, C]`` (see
``_layout``).
"""

import torch

from cola_wm.kernels._layout import modulation_frames, per_token_view
from cola_wm.kernels._triton import (
    BACKWARD_ITERS,
    HAS_TRITON,
    check_kernel_inputs,
    require_triton,
    tile_shape,
    tl,
    triton,
)


def _check(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> int:
    if y.shape != x.shape:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must have the same shape")
    return modulation_frames(x, gate, "gate")


def gated_residual_reference(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """``x + gate * y`` with ``gate`` broadcast per sample or per frame; computed in float32, returned in
    x.dtype."""
    frames = _check(x, y, gate)
    batch, tokens, channels = x.shape
    shape = (batch, frames, tokens // frames, channels)
    out = x.float().view(shape) + per_token_view(gate, frames).float() * y.float().view(shape)
    return out.view(batch, tokens, channels).to(x.dtype)


if HAS_TRITON:

    @triton.jit
    def _gated_residual_forward_kernel(
        X,
        Y,
        GATE,
        OUT,
        rows_per_group,
        channels,
        BLOCK_M: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        group = tl.program_id(1).to(tl.int64)
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_C)
        col_mask = cols < channels
        mask = (rows < rows_per_group)[:, None] & col_mask[None, :]
        offsets = (group * rows_per_group + rows)[:, None] * channels + cols[None, :]
        x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(Y + offsets, mask=mask, other=0.0).to(tl.float32)
        gate = tl.load(GATE + group * channels + cols, mask=col_mask, other=0.0).to(tl.float32)
        tl.store(OUT + offsets, (x + gate[None, :] * y).to(OUT.dtype.element_ty), mask=mask)

    @triton.jit
    def _gated_residual_backward_kernel(
        Y,
        GATE,
        DOUT,
        DY,
        DGATE_PARTIAL,
        rows_per_group,
        channels,
        BLOCK_M: tl.constexpr,
        BLOCK_C: tl.constexpr,
        ITERS: tl.constexpr,
    ):
        group = tl.program_id(1).to(tl.int64)
        chunk = tl.program_id(0)
        cols = tl.arange(0, BLOCK_C)
        col_mask = cols < channels
        gate = tl.load(GATE + group * channels + cols, mask=col_mask, other=0.0).to(tl.float32)
        dgate = tl.zeros((BLOCK_C,), dtype=tl.float32)
        for step in range(ITERS):
            rows = (chunk * ITERS + step) * BLOCK_M + tl.arange(0, BLOCK_M)
            mask = (rows < rows_per_group)[:, None] & col_mask[None, :]
            offsets = (group * rows_per_group + rows)[:, None] * channels + cols[None, :]
            dout = tl.load(DOUT + offsets, mask=mask, other=0.0).to(tl.float32)
            y = tl.load(Y + offsets, mask=mask, other=0.0).to(tl.float32)
            tl.store(DY + offsets, (dout * gate[None, :]).to(DY.dtype.element_ty), mask=mask)
            dgate += tl.sum(dout * y, axis=0)
        partial = (group * tl.num_programs(0) + chunk) * channels + cols
        tl.store(DGATE_PARTIAL + partial, dgate, mask=col_mask)


class _GatedResidual(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        frames = modulation_frames(x, gate, "gate")
        batch, tokens, channels = x.shape
        rows_per_group = tokens // frames
        x, y, gate_c = x.contiguous(), y.contiguous(), gate.contiguous()
        out = torch.empty_like(x)
        block_m, block_c, num_warps = tile_shape(channels)
        grid = (triton.cdiv(rows_per_group, block_m), batch * frames)
        _gated_residual_forward_kernel[grid](
            x,
            y,
            gate_c,
            out,
            rows_per_group,
            channels,
            BLOCK_M=block_m,
            BLOCK_C=block_c,
            num_warps=num_warps,
        )
        ctx.save_for_backward(y, gate_c)
        ctx.frames = frames
        ctx.x_dtype = x.dtype
        return out

    @staticmethod
    def backward(ctx, dout: torch.Tensor):
        y, gate = ctx.saved_tensors
        frames = ctx.frames
        batch, tokens, channels = y.shape
        rows_per_group = tokens // frames
        dout = dout.contiguous()
        dy = torch.empty_like(y)
        block_m, block_c, num_warps = tile_shape(channels)
        chunks = triton.cdiv(rows_per_group, block_m * BACKWARD_ITERS)
        dgate_partial = torch.empty(batch * frames, chunks, channels, device=y.device, dtype=torch.float32)
        _gated_residual_backward_kernel[(chunks, batch * frames)](
            y,
            gate,
            dout,
            dy,
            dgate_partial,
            rows_per_group,
            channels,
            BLOCK_M=block_m,
            BLOCK_C=block_c,
            ITERS=BACKWARD_ITERS,
            num_warps=num_warps,
        )
        dgate = dgate_partial.sum(1).view(gate.shape).to(gate.dtype)
        return dout.to(ctx.x_dtype), dy, dgate


def gated_residual_triton(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """Fused Triton version of :func:`gated_residual_reference` (same signature, same result),
    differentiable."""
    require_triton()
    _check(x, y, gate)
    check_kernel_inputs(x, y, gate)
    return _GatedResidual.apply(x, y, gate)


def gated_residual(x: torch.Tensor, y: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
    """The fused kernel on CUDA, the PyTorch reference elsewhere."""
    if x.is_cuda and HAS_TRITON:
        return gated_residual_triton(x, y, gate)
    return gated_residual_reference(x, y, gate)
