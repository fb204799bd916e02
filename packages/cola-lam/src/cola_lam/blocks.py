"""Transformer pieces shared by the IDM and the LAMDecoder (attention, MLP and position codes by the DiT too):
patching, attention, MLP, position codes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

V = TypeVar("V")


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


def sincos_embedding(positions: torch.Tensor, dim: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Fixed sine-cosine code ``[len(positions), dim]`` (float32) of (possibly fractional) ``positions``,
    computed in ``dtype``; an odd ``dim`` ends in a zero. Shared by the IDM and the DiT."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=dtype, device=positions.device) / half)
    angles = positions.to(dtype)[:, None] * freqs[None, :]
    emb = torch.cat([angles.sin(), angles.cos()], dim=-1).float()
    return F.pad(emb, (0, dim - 2 * half))


class Attention(nn.Module):
    """Multi-head self-attention over ``[batch, sequence, width]`` through scaled_dot_product_attention,
    causal or not. Shared by the IDM, the LAMDecoder and the DiT."""

    def __init__(self, width: int, heads: int, causal: bool = False) -> None:
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


class MLP(nn.Module):
    """Two linear layers with a tanh-approximated GELU between them, as in timm and DiT (whose submodule names
    ``fc1`` / ``fc2`` it keeps). Shared by the IDM, the LAMDecoder and the DiT."""

    def __init__(self, width: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(width * mlp_ratio)
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)
        # LAM weights saved before the LAM and the DiT shared this class call these layers fc / proj (files,
        # Hub repos, training checkpoints): load_state_dict renames them.
        self._register_load_state_dict_pre_hook(self._upgrade_legacy_keys)

    def _upgrade_legacy_keys(self, state_dict: dict[str, Any], prefix: str, *_: Any) -> None:
        for old, new in legacy_mlp_renames(self, state_dict, prefix).items():
            state_dict[new] = state_dict.pop(old)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


_LEGACY_MLP_NAMES = {"fc.": "fc1.", "proj.": "fc2."}


def legacy_mlp_renames(module: nn.Module, keys: Iterable[str], prefix: str = "") -> dict[str, str]:
    """Old -> new name of each of ``keys`` (state-dict keys of ``module``, each under ``prefix``) that an
    :class:`MLP` of ``module`` had before the MLPs were shared (``fc.`` -> ``fc1.``, ``proj.`` -> ``fc2.``);
    a key whose new name is among ``keys`` too is left alone."""
    keys = set(keys)
    renames = {}
    for name, child in module.named_modules():
        if isinstance(child, MLP):
            mlp = f"{prefix}{name}." if name else prefix
            for old, new in _LEGACY_MLP_NAMES.items():
                for key in keys:
                    if key.startswith(mlp + old):
                        renamed = mlp + new + key.removeprefix(mlp + old)
                        if renamed not in keys:
                            renames[key] = renamed
    return renames


def upgrade_legacy_mlp_keys(module: nn.Module, state_dict: Mapping[str, V]) -> dict[str, V]:
    """``state_dict`` for ``module`` with its MLP keys renamed as :func:`legacy_mlp_renames` says: for code
    that compares key sets before ``load_state_dict`` (which renames them itself)."""
    renames = legacy_mlp_renames(module, state_dict)
    return {renames.get(key, key): value for key, value in state_dict.items()}


class SpatialBlock(nn.Module):
    """Pre-norm transformer block over the tokens of one frame: ``[B, S, W]``."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_attn = nn.LayerNorm(width)
        self.attn = Attention(width, heads)
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
