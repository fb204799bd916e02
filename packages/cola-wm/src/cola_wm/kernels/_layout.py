"""Token layout shared by the fused kernels.

Activations are ``x [B, N, C]`` with frame-major tokens: for a video of T frames of L patches each, N = T * L
and token ``n`` belongs to frame ``n // L``. A modulation tensor is either per sample, ``[B, C]`` (broadcast
over all N tokens), or per frame, ``[B, T, C]`` (row ``t`` broadcast over the L tokens of frame ``t``). Either
way the kernels see ``G = B * T`` groups of ``L`` contiguous rows that share one modulation row. Their launch
grid is (row blocks, groups): row blocks go on axis 0, which has no 65535 limit, so long per-sample runs fit.
"""

import torch


def modulation_frames(x: torch.Tensor, modulation: torch.Tensor, name: str) -> int:
    """Check ``modulation`` against ``x`` and return T, the number of frames it modulates (1 when per
    sample)."""
    if x.dim() != 3:
        raise ValueError(f"x must be [B, N, C] (frame-major tokens), got shape {tuple(x.shape)}")
    batch, tokens, channels = x.shape
    if modulation.dim() == 2:
        frames = 1
    elif modulation.dim() == 3:
        frames = modulation.shape[1]
    else:
        raise ValueError(f"{name} must be [B, C] or [B, T, C], got shape {tuple(modulation.shape)}")
    if modulation.shape[0] != batch or modulation.shape[-1] != channels:
        raise ValueError(
            f"{name} has shape {tuple(modulation.shape)} but x is {tuple(x.shape)}: "
            f"expected [{batch}, {channels}] or [{batch}, T, {channels}]"
        )
    if frames == 0 or tokens % frames:
        raise ValueError(
            f"{name} modulates {frames} frames but x has {tokens} tokens, "
            "not a whole number of tokens per frame"
        )
    return frames


def per_token_view(modulation: torch.Tensor, frames: int) -> torch.Tensor:
    """``[B, C]`` or ``[B, T, C]`` -> ``[B, T, 1, C]``, ready to broadcast over ``x.view(B, T, L, C)``."""
    return modulation.reshape(modulation.shape[0], frames, 1, modulation.shape[-1])
