"""Transformer pieces shared by the IDM and the LAMDecoder: patching, attention, MLP, position codes."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def patchify(frames: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[..., C, H, W]`` -> ``[..., num_patches, C * patch_size**2]`` in row-major patch order."""
    return rearrange(frames, "... c (h p) (w q) -> ... (h w) (c p q)", p=patch_size, q=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify` for square frames."""
    side = math.isqrt(patches.shape[-2])
    return rearrange(
        patches,
        "... (h w) (c p q) -> ... c (h p) (w q)",
        h=side,
        w=side,
        c=channels,
        p=patch_size,
        q=patch_size,
    )


def sincos_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sinusoidal code ``[len(positions), dim]``; lets the IDM take clips of any length."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return F.pad(emb, (0, dim - 2 * half))


class SelfAttention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, causal: bool = False) -> torch.Tensor:
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))


class MLP(nn.Module):
    def __init__(self, width: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.fc = nn.Linear(width, hidden)
        self.proj = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))


class SpatialBlock(nn.Module):
    """Pre-norm transformer block over the tokens of one frame: ``[B, S, W]``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = SelfAttention(width, heads)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm_attn(x))
        return x + self.mlp(self.norm_mlp(x))


def init_weights(module: nn.Module) -> None:
    """nanoGPT-style init: N(0, 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
