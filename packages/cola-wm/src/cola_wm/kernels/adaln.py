"""AdaLN modulation: ``LayerNorm(x) * (1 + scale) + shift`` (no affine), one pass over x.

``adaln_modulate_triton`` fuses the normalisation and the modulation in one read and one write of x (forward)
and one read of x and dy (backward, which also reduces the shift/scale gradients over each frame's tokens).
``adaln_modulate_reference`` is the same computation in plain PyTorch. See ``_layout`` for the token layout.
"""

import torch
import torch.nn.functional as F

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


def adaln_modulate_reference(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """LayerNorm over the last dim of ``x [B, N, C]`` (no affine), then ``* (1 + scale) + shift``.

    ``shift``/``scale`` are ``[B, C]`` or per frame ``[B, T, C]`` (frame-major tokens, N = T * L). Computed in
    float32, returned in ``x.dtype``.
    """
    frames = modulation_frames(x, shift, "shift")
    if modulation_frames(x, scale, "scale") != frames:
        raise ValueError(
            f"shift {tuple(shift.shape)} and scale {tuple(scale.shape)} must have the same shape"
        )
    batch, tokens, channels = x.shape
    normed = F.layer_norm(x.float(), (channels,), eps=eps).view(batch, frames, tokens // frames, channels)
    out = normed * (1 + per_token_view(scale, frames).float()) + per_token_view(shift, frames).float()
    return out.view(batch, tokens, channels).to(x.dtype)


if HAS_TRITON:

    @triton.jit
    def _adaln_forward_kernel(
        X,
        SHIFT,
        SCALE,
        Y,
        MEAN,
        RSTD,
        rows_per_group,
        channels,
        eps,
        BLOCK_M: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        group = tl.program_id(1).to(tl.int64)
        rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_C)
        row_mask = rows < rows_per_group
        col_mask = cols < channels
        mask = row_mask[:, None] & col_mask[None, :]
        global_rows = group * rows_per_group + rows
        offsets = global_rows[:, None] * channels + cols[None, :]

        x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=1) / channels
        centered = tl.where(mask, x - mean[:, None], 0.0)
        rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=1) / channels + eps)
        shift = tl.load(SHIFT + group * channels + cols, mask=col_mask, other=0.0).to(tl.float32)
        scale = tl.load(SCALE + group * channels + cols, mask=col_mask, other=0.0).to(tl.float32)
        y = centered * rstd[:, None] * (1.0 + scale[None, :]) + shift[None, :]
        tl.store(Y + offsets, y.to(Y.dtype.element_ty), mask=mask)
        tl.store(MEAN + global_rows, mean, mask=row_mask)
        tl.store(RSTD + global_rows, rstd, mask=row_mask)

    @triton.jit
    def _adaln_backward_kernel(
        X,
        SCALE,
        DY,
        MEAN,
        RSTD,
        DX,
        DSHIFT_PARTIAL,
        DSCALE_PARTIAL,
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
        scale = tl.load(SCALE + group * channels + cols, mask=col_mask, other=0.0).to(tl.float32)
        dshift = tl.zeros((BLOCK_C,), dtype=tl.float32)
        dscale = tl.zeros((BLOCK_C,), dtype=tl.float32)
        for step in range(ITERS):
            rows = (chunk * ITERS + step) * BLOCK_M + tl.arange(0, BLOCK_M)
            row_mask = rows < rows_per_group
            mask = row_mask[:, None] & col_mask[None, :]
            global_rows = group * rows_per_group + rows
            offsets = global_rows[:, None] * channels + cols[None, :]
            x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
            dy = tl.load(DY + offsets, mask=mask, other=0.0).to(tl.float32)
            mean = tl.load(MEAN + global_rows, mask=row_mask, other=0.0)
            rstd = tl.load(RSTD + global_rows, mask=row_mask, other=0.0)
            x_hat = tl.where(mask, (x - mean[:, None]) * rstd[:, None], 0.0)
            dx_hat = dy * (1.0 + scale[None, :])
            mean_dx_hat = tl.sum(dx_hat, axis=1) / channels
            mean_dx_hat_x_hat = tl.sum(dx_hat * x_hat, axis=1) / channels
            dx = (dx_hat - mean_dx_hat[:, None] - x_hat * mean_dx_hat_x_hat[:, None]) * rstd[:, None]
            tl.store(DX + offsets, dx.to(DX.dtype.element_ty), mask=mask)
            dshift += tl.sum(dy, axis=0)
            dscale += tl.sum(dy * x_hat, axis=0)
        partial = (group * tl.num_programs(0) + chunk) * channels + cols
        tl.store(DSHIFT_PARTIAL + partial, dshift, mask=col_mask)
        tl.store(DSCALE_PARTIAL + partial, dscale, mask=col_mask)


class _AdaLNModulate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float) -> torch.Tensor:
        frames = modulation_frames(x, shift, "shift")
        batch, tokens, channels = x.shape
        rows_per_group = tokens // frames
        x = x.contiguous()
        shift_c, scale_c = shift.contiguous(), scale.contiguous()
        y = torch.empty_like(x)
        mean = torch.empty(batch * tokens, device=x.device, dtype=torch.float32)
        rstd = torch.empty_like(mean)
        block_m, block_c, num_warps = tile_shape(channels)
        grid = (triton.cdiv(rows_per_group, block_m), batch * frames)
        _adaln_forward_kernel[grid](
            x,
            shift_c,
            scale_c,
            y,
            mean,
            rstd,
            rows_per_group,
            channels,
            eps,
            BLOCK_M=block_m,
            BLOCK_C=block_c,
            num_warps=num_warps,
        )
        ctx.save_for_backward(x, scale_c, mean, rstd)
        ctx.frames = frames
        ctx.shift_meta = (shift.shape, shift.dtype)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, scale, mean, rstd = ctx.saved_tensors
        frames = ctx.frames
        batch, tokens, channels = x.shape
        rows_per_group = tokens // frames
        dy = dy.contiguous()
        dx = torch.empty_like(x)
        block_m, block_c, num_warps = tile_shape(channels)
        chunks = triton.cdiv(rows_per_group, block_m * BACKWARD_ITERS)
        groups = batch * frames
        dshift_partial = torch.empty(groups, chunks, channels, device=x.device, dtype=torch.float32)
        dscale_partial = torch.empty_like(dshift_partial)
        _adaln_backward_kernel[(chunks, groups)](
            x,
            scale,
            dy,
            mean,
            rstd,
            dx,
            dshift_partial,
            dscale_partial,
            rows_per_group,
            channels,
            BLOCK_M=block_m,
            BLOCK_C=block_c,
            ITERS=BACKWARD_ITERS,
            num_warps=num_warps,
        )
        shift_shape, shift_dtype = ctx.shift_meta
        dshift = dshift_partial.sum(1).view(shift_shape).to(shift_dtype)
        dscale = dscale_partial.sum(1).view(scale.shape).to(scale.dtype)
        return dx, dshift, dscale, None


def adaln_modulate_triton(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Fused Triton version of :func:`adaln_modulate_reference` (same signature, same result),
    differentiable."""
    require_triton()
    frames = modulation_frames(x, shift, "shift")
    if modulation_frames(x, scale, "scale") != frames:
        raise ValueError(
            f"shift {tuple(shift.shape)} and scale {tuple(scale.shape)} must have the same shape"
        )
    check_kernel_inputs(x, shift, scale)
    return _AdaLNModulate.apply(x, shift, scale, eps)


def adaln_modulate(
    x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """The fused kernel on CUDA, the PyTorch reference elsewhere."""
    if x.is_cuda and HAS_TRITON:
        return adaln_modulate_triton(x, shift, scale, eps)
    return adaln_modulate_reference(x, shift, scale, eps)
