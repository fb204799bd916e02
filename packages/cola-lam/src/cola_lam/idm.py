"""InverseDynamicsModel: a spatio-temporal transformer that reads one latent action per frame transition.

Genie-style blocks: attention within a frame (spatial), then along time for each token position with a
causal mask. Each frame carries ``tokens_per_action`` learned action-query tokens next to its patches. The
model sees each transition on its own, as the pair (frame t, frame t+1): the queries of frame t+1 become the
latent action of that transition. A pair carries no clip position (why: docs/decisions.md).
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .blocks import MLP, Attention, init_weights, patchify, sincos_embedding
from .config import LAMConfig


def validate_video(video: torch.Tensor, config: LAMConfig, check_finite: bool = True) -> None:
    """Raise ValueError unless ``video`` is a float clip ``[B, T>=2, C, H, W]`` matching ``config``, and
    (``check_finite``, a device sync) finite."""
    if not isinstance(video, torch.Tensor):
        raise ValueError(f"video must be a torch.Tensor [B, T, C, H, W], got {type(video).__name__}.")
    if video.dim() != 5:
        raise ValueError(
            f"video must have shape [B, T, C, H, W] (rank 5), got shape {tuple(video.shape)}; "
            "add a batch dimension with video.unsqueeze(0) for a single clip."
        )
    if not video.is_floating_point():
        raise ValueError(
            f"video must be a float tensor with values in [-1, 1], got dtype {video.dtype}; "
            "convert uint8 frames with frames.float() / 127.5 - 1."
        )
    t, c, h, w = video.shape[1:]
    if t < 2:
        raise ValueError(f"video needs at least 2 frames (T >= 2) to have a transition, got T={t}.")
    expected = (config.channels, config.frame_size, config.frame_size)
    if (c, h, w) != expected:
        raise ValueError(
            f"video frames must be [C, H, W] = {list(expected)} (LAMConfig channels, frame_size), "
            f"got {[c, h, w]}."
        )
    if check_finite and not torch.isfinite(video).all():
        raise ValueError("video contains NaN or infinite values; clean the input frames.")


class SpatioTemporalBlock(nn.Module):
    """Spatial attention within a frame, causal temporal attention per token position, then an MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_spatial = nn.LayerNorm(width)
        self.spatial_attn = Attention(width, heads)
        self.norm_temporal = nn.LayerNorm(width)
        self.temporal_attn = Attention(width, heads, causal=True)
        self.norm_mlp = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, s, _ = x.shape
        spatial = rearrange(self.norm_spatial(x), "b t s w -> (b t) s w")
        x = x + rearrange(self.spatial_attn(spatial), "(b t) s w -> b t s w", b=b, t=t)
        temporal = rearrange(self.norm_temporal(x), "b t s w -> (b s) t w")
        x = x + rearrange(self.temporal_attn(temporal), "(b s) t w -> b t s w", b=b, s=s)
        return x + self.mlp(self.norm_mlp(x))


class InverseDynamicsModel(nn.Module):
    """``video [B, T, C, H, W]`` -> continuous latent actions ``[B, T-1, tokens_per_action, code_dim]``.

    The input is checked for NaN and inf while ``check_finite`` is True (the default; the check is a device
    sync). A training loop that checks its batches where it loads them turns it off.
    """

    check_finite: bool = True

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.config = config
        patch_dim = config.channels * config.patch_size**2
        self.patch_embed = nn.Linear(patch_dim, config.width)
        self.patch_pos = nn.Parameter(torch.randn(config.num_patches, config.width) * 0.02)
        self.action_queries = nn.Parameter(torch.randn(config.tokens_per_action, config.width) * 0.02)
        self.blocks = nn.ModuleList(
            SpatioTemporalBlock(config.width, config.heads, config.mlp_ratio) for _ in range(config.depth)
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.code_dim)
        self.apply(init_weights)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        validate_video(video, self.config, self.check_finite)
        b, t = video.shape[:2]
        second = video[:, 1:] - video[:, :-1] if self.config.idm_input == "difference" else video[:, 1:]
        pairs = torch.stack([video[:, :-1], second], dim=2)
        pairs = rearrange(pairs, "b n two c h w -> (b n) two c h w")
        patches = self.patch_embed(patchify(pairs, self.config.patch_size)) + self.patch_pos
        queries = self.action_queries.expand(pairs.shape[0], 2, -1, -1).to(patches.dtype)
        x = torch.cat([queries, patches], dim=2)
        # float32, as the IDM was trained: float64 would move the code by an ulp.
        time_code = sincos_embedding(torch.arange(2, device=video.device), self.config.width, torch.float32)
        x = x + time_code[None, :, None, :].to(x.dtype)
        for block in self.blocks:
            x = block(x)
        k = self.config.tokens_per_action
        readout = x[:, 1, :k]
        if self.config.idm_readout == "query_plus_change":
            change = (x[:, 1, k:] - x[:, 0, k:]).mean(dim=1, keepdim=True)
            readout = readout + change
        actions = rearrange(readout, "(b n) k w -> b n k w", b=b, n=t - 1)
        return self.head(self.norm(actions))
