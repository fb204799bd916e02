"""Building blocks shared by the DiT and the action-conditioning stack."""

import math

import torch
import torch.nn.functional as F
from torch import nn


def sincos_embedding(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """Fixed sine-cosine embedding ``[len(positions), dim]`` of (possibly fractional) positions."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    angles = positions.double()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).float()


def sincos_embedding_2d(dim: int, side: int) -> torch.Tensor:
    """``[side * side, dim]`` row-major grid embedding: half the channels encode the row, half the column."""
    coords = torch.arange(side)
    rows = sincos_embedding(dim // 2, coords.repeat_interleave(side))
    cols = sincos_embedding(dim // 2, coords.repeat(side))
    return torch.cat([rows, cols], dim=-1)


class TimestepEmbedder(nn.Module):
    """Flow time in [0, 1] -> vector, as DiT: sinusoidal features of 1000 t through a two-layer MLP."""

    def __init__(self, width: int, frequency_dim: int):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = sincos_embedding(self.frequency_dim, 1000.0 * t.flatten()).to(t.device)
        return self.mlp(features.to(self.mlp[0].weight.dtype)).view(*t.shape, -1)


class Attention(nn.Module):
    """Multi-head self-attention over ``[batch, sequence, width]`` through scaled_dot_product_attention."""

    def __init__(self, width: int, heads: int, causal: bool):
        super().__init__()
        self.heads = heads
        self.causal = causal
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = self.qkv(x).view(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], is_causal=self.causal)
        return self.proj(out.transpose(1, 2).reshape(batch, length, width))


class Mlp(nn.Module):
    def __init__(self, width: int, ratio: float):
        super().__init__()
        hidden = int(width * ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
