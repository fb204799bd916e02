"""LAMDecoder: the two-stage baseline's forward model: next frame from this frame and a latent action."""

# No `from __future__ import annotations`: the Hub mixin reads the LAMConfig annotation at runtime
# to rebuild the dataclass from config.json.
import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SpatialBlock, init_weights, patchify, unpatchify
from .config import LAMConfig
from .hub import SubfolderHubMixin
from .hub_io import StrictHubMixin


class LAMDecoder(
    nn.Module,
    StrictHubMixin,
    SubfolderHubMixin,
    library_name="cola-lam",
    tags=["cola", "latent-action-model", "arxiv:2510.26433"],
    license="mit",
    paper_url="https://arxiv.org/abs/2510.26433",
):
    """A spatial transformer over the patches of frame t plus the action's tokens; it predicts the change to
    frame t+1 per patch (the output head starts at zero, so an untrained decoder copies frame t)."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.config = config
        patch_dim = config.channels * config.patch_size**2
        self.patch_embed = nn.Linear(patch_dim, config.width)
        self.patch_pos = nn.Parameter(torch.randn(config.num_patches, config.width) * 0.02)
        self.action_embed = nn.Linear(config.code_dim, config.width)
        self.action_pos = nn.Parameter(torch.randn(config.tokens_per_action, config.width) * 0.02)
        self.blocks = nn.ModuleList(
            SpatialBlock(config.width, config.heads, config.mlp_ratio) for _ in range(config.decoder_depth)
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(config.width, patch_dim)
        self.apply(init_weights)
        nn.init.zeros_(self.head.weight)

    def forward(self, frame: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        frame_shape = (cfg.channels, cfg.frame_size, cfg.frame_size)
        if frame.dim() != 4 or tuple(frame.shape[1:]) != frame_shape:
            raise ValueError(
                f"frame must have shape [B, {', '.join(map(str, frame_shape))}], got {tuple(frame.shape)}."
            )
        if not frame.is_floating_point():
            raise ValueError(f"frame must be a float tensor in [-1, 1], got dtype {frame.dtype}.")
        action_shape = (frame.shape[0], cfg.tokens_per_action, cfg.code_dim)
        if tuple(action.shape) != action_shape:
            raise ValueError(
                f"action must have shape [B, tokens_per_action, code_dim] = {list(action_shape)}, "
                f"got {tuple(action.shape)}."
            )
        patches = self.patch_embed(patchify(frame, cfg.patch_size)) + self.patch_pos
        action_tokens = self.action_embed(action) + self.action_pos
        x = torch.cat([action_tokens.to(patches.dtype), patches], dim=1)
        for block in self.blocks:
            x = block(x)
        delta = self.head(self.norm(x[:, cfg.tokens_per_action :]))
        return frame + unpatchify(delta, cfg.patch_size, cfg.channels).to(frame.dtype)


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error between predicted and true next frames (same shape)."""
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}."
        )
    return F.mse_loss(pred.float(), target.float())
