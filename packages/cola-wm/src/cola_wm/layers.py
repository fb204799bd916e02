"""Building blocks shared by the DiT and the action-conditioning stack (attention, the MLP and the sincos
embedding from cola_lam.blocks, which the IDM uses too)."""

import torch
from cola_lam.blocks import MLP, Attention, sincos_embedding
from torch import nn

__all__ = ["MLP", "Attention", "TimestepEmbedder", "sincos_embedding", "sincos_embedding_2d"]


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
