"""KeypointIDM: an inverse dynamics model that reads a transition off where things are in its two frames.

A small convolutional network, shared by every frame, turns each frame into ``keypoints`` feature maps; a
spatial softmax (Levine et al. 2016; robomimic's visuomotor policies) turns each map into the expected
``(x, y)`` of what it responds to. A transition's latent action is an MLP of the keypoints of frame t and
their displacement to frame t+1 (or of the displacement alone: ``LAMConfig.keypoint_features``), so what
moved, and by how much, is one subtraction away from the input instead of something attention has to
discover. Why it exists beside the transformer IDM: docs/decisions.md.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from .blocks import init_weights
from .config import LAMConfig
from .idm import validate_video


def spatial_softmax(maps: torch.Tensor) -> torch.Tensor:
    """``maps [N, K, H, W]`` -> ``[N, K, 2]``: the softmax-weighted mean ``(x, y)`` of each map over its
    pixel centres, in [-1, 1] (x left to right, y top to bottom)."""
    height, width = maps.shape[-2:]
    weights = maps.flatten(2).float().softmax(dim=-1)
    ys = (torch.arange(height, device=maps.device, dtype=torch.float32) + 0.5) / height * 2 - 1
    xs = (torch.arange(width, device=maps.device, dtype=torch.float32) + 0.5) / width * 2 - 1
    x = (weights * xs.repeat(height)).sum(-1)
    y = (weights * ys.repeat_interleave(width)).sum(-1)
    return torch.stack([x, y], dim=-1).to(maps.dtype)


class KeypointIDM(nn.Module):
    """``video [B, T, C, H, W]`` -> continuous latent actions ``[B, T-1, tokens_per_action, code_dim]``.

    The same input checks as :class:`InverseDynamicsModel` (``check_finite`` turns off the NaN/inf sync).
    """

    check_finite: bool = True

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.keypoint_channels
        self.encoder = nn.Sequential(
            nn.Conv2d(config.channels, channels, kernel_size=5, stride=2, padding=2),
            nn.GELU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1),
            nn.GELU(),
            nn.Conv2d(channels, config.keypoints, kernel_size=3, padding=1),
        )
        # A raw map's softmax can spread over most of the frame, so its keypoint hardly moves when the agent
        # does; standardising makes the sharpness the gain's alone (docs/decisions.md).
        self.standardize = config.keypoint_softmax == "standardized"
        if self.standardize:
            self.log_gain = nn.Parameter(torch.zeros(config.keypoints))
        self.displacement_only = config.keypoint_features == "displacement"
        per_keypoint = 2 if self.displacement_only else 4
        self.mlp = nn.Sequential(
            nn.Linear(per_keypoint * config.keypoints, config.width),
            nn.GELU(),
            nn.Linear(config.width, config.width),
            nn.GELU(),
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, config.tokens_per_action * config.code_dim)
        self.apply(init_weights)

    def keypoints(self, video: torch.Tensor) -> torch.Tensor:
        """``video [B, T, C, H, W]`` -> every frame's keypoints ``[B, T, keypoints, 2]``."""
        b, t = video.shape[:2]
        maps = self.encoder(video.flatten(0, 1))
        if self.standardize:
            flat = maps.flatten(2).float()
            flat = (flat - flat.mean(-1, keepdim=True)) / (flat.std(-1, keepdim=True) + 1e-5)
            maps = (flat * self.log_gain.exp()[:, None]).view(maps.shape).to(maps.dtype)
        points = spatial_softmax(maps)
        return points.view(b, t, *points.shape[1:])

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        validate_video(video, self.config, self.check_finite)
        points = self.keypoints(video)
        first, second = points[:, :-1], points[:, 1:]
        moved = second - first
        features = (moved if self.displacement_only else torch.cat([first, moved], dim=-1)).flatten(-2)
        actions = self.head(self.norm(self.mlp(features)))
        return rearrange(actions, "b n (k d) -> b n k d", k=self.config.tokens_per_action)
