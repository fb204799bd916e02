"""Action conditioning: latent actions -> per-frame shift/scale/gate added to every DiT block's AdaLN.

As in CoLA-World: a small stack of self-attention blocks reads the latent-action sequence, then an MLP maps
each position to the modulation of every block. Position i of the sequence conditions frame i: a learned start
token stands at position 0 (frame 0 has no incoming transition), and transition action i sits at position i +
1. The attention is causal, so frame i only sees the actions that lead up to it, like the DiT's temporal
attention.

With ``DiTConfig.action_injection`` "token" or "both", a second zero-initialised head projects each position
to the DiT's width, which the DiT adds to every patch token of that frame at its input (DINO-WM feeds actions
to every patch token).

The MLP's last layer starts at zero: plugging actions into a pretrained video generator leaves its output
unchanged at step 0. ``null_action`` is the learned "no action" that classifier-free guidance trains and
samples with.
"""

import torch
from torch import nn

from cola_wm.config import DiTConfig
from cola_wm.layers import MLP, Attention, sincos_embedding

# shift, scale and gate for each of a DiT block's three sub-layers (spatial attention, temporal attention,
# MLP)
MODULATIONS_PER_BLOCK = 9


class ActionBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention over the action sequence."""

    def __init__(self, width: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads, causal=True)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = MLP(width, mlp_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ActionConditioner(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = config
        width = config.action_width
        self.null_action = nn.Parameter(torch.randn(config.action_dim) * 0.02)
        self.start_token = nn.Parameter(torch.randn(width) * 0.02)
        self.embed = nn.Linear(config.action_dim, width)
        self.blocks = nn.ModuleList(
            ActionBlock(width, config.action_heads, config.mlp_ratio) for _ in range(config.action_depth)
        )
        self.norm = nn.LayerNorm(width)
        self.to_modulation = (
            nn.Sequential(
                nn.Linear(width, width),
                nn.SiLU(),
                nn.Linear(width, config.depth * MODULATIONS_PER_BLOCK * config.width),
            )
            if config.action_injection in ("adaln", "both")
            else None
        )
        self.to_tokens = (
            nn.Linear(width, config.width) if config.action_injection in ("token", "both") else None
        )
        self.register_buffer(
            "positions", sincos_embedding(torch.arange(config.num_frames), width), persistent=False
        )
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for head in (self.to_modulation[-1] if self.to_modulation is not None else None, self.to_tokens):
            if head is not None:
                nn.init.zeros_(head.weight)
                nn.init.zeros_(head.bias)

    def null_actions(self, batch: int, transitions: int) -> torch.Tensor:
        """The learned null action repeated to ``[batch, transitions, action_dim]``."""
        return self.null_action.expand(batch, transitions, -1)

    def forward(self, actions: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``actions [B, T-1, action_dim]`` -> (additive AdaLN modulation ``[B, T, depth, 9 * width]``,
        per-frame token shift ``[B, T, width]``); each is None when ``action_injection`` does not use it."""
        batch, transitions, _ = actions.shape
        tokens = self.embed(actions.to(self.embed.weight.dtype))
        start = self.start_token.to(tokens.dtype).expand(batch, 1, -1)
        x = torch.cat([start, tokens], dim=1) + self.positions[: transitions + 1].to(tokens.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        modulation = (
            None
            if self.to_modulation is None
            else self.to_modulation(x).view(batch, transitions + 1, self.config.depth, -1)
        )
        token_shift = None if self.to_tokens is None else self.to_tokens(x)
        return modulation, token_shift
