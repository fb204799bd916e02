"""Building blocks shared by the DiT and the action-conditioning stack (attention and the sincos embedding
from cola_lam.blocks, which the IDM uses too)."""

import torch
import torch.nn.functional as F
from cola_lam.blocks import Attention, sincos_embedding
from torch import nn

__all__ = ["Attention", "Mlp", "TimestepEmbedder", "sincos_embedding", "sincos_embedding_2d"]


def sincos_embedding_2d(dim: int, side: int) -> torch.Tensor:
    """``[side * side, dim]`` row-major grid embedding: half the channels encode the row, half the column."""
    coords = torch.arange(side)
    rows = sincos_embedding(coords.repeat_interleave(side), dim // 2)
    cols = sincos_embedding(coords.repeat(side), dim // 2)
    return torch.cat([rows, cols], dim=-1)


class TimestepEmbedder(nn.Module):
    """Flow time in [0, 1] -> vector, as DiT: sinusoidal features of 1000 t through a two-layer MLP."""

    def __init__(self, width: int, frequency_dim: int):
        super().__init__()
        self.frequency_dim = frequency_dim
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        features = sincos_embedding(1000.0 * t.flatten(), self.frequency_dim).to(t.device)
        return self.mlp(features.to(self.mlp[0].weight.dtype)).view(*t.shape, -1)


class Mlp(nn.Module):
    def __init__(self, width: int, ratio: float):
        super().__init__()
        hidden = int(width * ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
