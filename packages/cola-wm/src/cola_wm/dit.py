"""ActionConditionedDiT: a video flow-matching transformer whose AdaLN modulation can take latent actions.

Frames are cut into patches; tokens are kept frame-major, ``[B, T * L, width]`` (token n is patch n % L of
frame n // L). Each block is AdaLN-Zero (facebookresearch/DiT) around three sub-layers: spatial attention
among the L patches of a frame, causal temporal attention among the T frames at one patch position, and an
MLP. The modulation is per frame: context frames are clean and get flow time 0, the frames being generated get
the sampled t. Latent actions, when given, add their own per-frame shift/scale/gate (``cola_wm.actions``) to
every block's modulation.
"""

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from cola_lam.hub import SubfolderHubMixin
from cola_lam.hub_io import StrictHubMixin
from einops import rearrange
from safetensors.torch import load_file
from torch import nn

from cola_wm.actions import MODULATIONS_PER_BLOCK, ActionConditioner
from cola_wm.config import DiTConfig
from cola_wm.kernels import adaln_modulate, gated_residual
from cola_wm.layers import MLP, Attention, TimestepEmbedder, sincos_embedding, sincos_embedding_2d

ACTION_PREFIX = "action_conditioner."


def frame_times(t: torch.Tensor, frames: int, num_context: int) -> torch.Tensor:
    """Each frame's flow time ``[B, frames]``: ``t [B]`` for the frames being generated, 0 for the first
    ``num_context`` (clean context)."""
    times = t[:, None].expand(t.shape[0], frames).clone()
    times[:, :num_context] = 0.0
    return times


class DiTBlock(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.eps = config.norm_eps
        self.spatial_attn = Attention(config.width, config.heads, causal=False)
        self.temporal_attn = Attention(config.width, config.heads, causal=True)
        self.mlp = MLP(config.width, config.mlp_ratio)
        self.modulation = nn.Sequential(
            nn.SiLU(), nn.Linear(config.width, MODULATIONS_PER_BLOCK * config.width)
        )

    def forward(self, x: torch.Tensor, modulation: torch.Tensor, frames: int) -> torch.Tensor:
        """``x [B, T*L, C]``, ``modulation [B, T, 9C]`` (time, plus actions when given)."""
        batch, tokens, width = x.shape
        patches = tokens // frames
        (shift_s, scale_s, gate_s, shift_t, scale_t, gate_t, shift_m, scale_m, gate_m) = modulation.chunk(
            MODULATIONS_PER_BLOCK, dim=-1
        )
        h = adaln_modulate(x, shift_s, scale_s, self.eps)
        h = self.spatial_attn(h.view(batch * frames, patches, width)).view(batch, tokens, width)
        x = gated_residual(x, h, gate_s)

        h = adaln_modulate(x, shift_t, scale_t, self.eps)
        h = rearrange(h, "b (t l) c -> (b l) t c", t=frames)
        h = rearrange(self.temporal_attn(h), "(b l) t c -> b (t l) c", b=batch)
        x = gated_residual(x, h, gate_t)

        h = self.mlp(adaln_modulate(x, shift_m, scale_m, self.eps))
        return gated_residual(x, h, gate_m)


class FinalLayer(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.eps = config.norm_eps
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(config.width, 2 * config.width))
        self.linear = nn.Linear(config.width, config.patch_dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(cond).chunk(2, dim=-1)
        return self.linear(adaln_modulate(x, shift, scale, self.eps))


class ActionConditionedDiT(
    nn.Module,
    StrictHubMixin,
    SubfolderHubMixin,
    library_name="cola-wm",
    tags=["cola", "world-model", "video-generation", "arxiv:2510.26433"],
    license="mit",
    paper_url="https://arxiv.org/abs/2510.26433",
):
    """Video DiT trained with rectified flow; optionally conditioned on latent actions.

    ``model(x [B,T,C,H,W], t [B], actions=None | [B, T-1, action_dim], num_context=k)`` returns what its last
    layer predicts for every frame (``DiTConfig.prediction``: by default the change from the last context
    frame), in the dtype it computes in; the first k frames are clean context (flow time 0).
    :func:`cola_wm.predict_velocity` turns the prediction into the velocity ``eps - x0`` the sampler and the
    loss use.

    Inputs are checked for NaN and inf while ``check_finite`` is True (the default; each check is a device
    sync). A training loop that checks its batches where it loads them turns it off.
    """

    check_finite: bool = True

    def __init__(self, config: DiTConfig):
        super().__init__()
        if not isinstance(config, DiTConfig):
            raise ValueError(f"ActionConditionedDiT needs a DiTConfig, got {type(config).__name__}")
        self.config = config
        self.patch_embed = nn.Linear(config.patch_dim, config.width)
        self.time_embed = TimestepEmbedder(config.width, config.time_embed_dim)
        self.blocks = nn.ModuleList(DiTBlock(config) for _ in range(config.depth))
        self.final_layer = FinalLayer(config)
        self.action_conditioner = ActionConditioner(config)
        self.register_buffer(
            "spatial_pos", sincos_embedding_2d(config.width, config.patches_per_side), persistent=False
        )
        self.register_buffer(
            "temporal_pos", sincos_embedding(torch.arange(config.num_frames), config.width), persistent=False
        )
        self._init_backbone()

    def _init_backbone(self) -> None:
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear) and not name.startswith(ACTION_PREFIX.rstrip(".")):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for layer in (self.time_embed.mlp[0], self.time_embed.mlp[2]):
            nn.init.normal_(layer.weight, std=0.02)
        # AdaLN-Zero: every block starts as the identity and the output as zero
        for block in self.blocks:
            nn.init.zeros_(block.modulation[-1].weight)
            nn.init.zeros_(block.modulation[-1].bias)
        for layer in (self.final_layer.modulation[-1], self.final_layer.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def action_parameters(self) -> Iterator[nn.Parameter]:
        """The action-conditioning parameters: action blocks, their modulation MLP, the null action."""
        return self.action_conditioner.parameters()

    def backbone_parameters(self) -> Iterator[nn.Parameter]:
        """Everything else: the video generator."""
        return (p for name, p in self.named_parameters() if not name.startswith(ACTION_PREFIX))

    def null_actions(self, batch: int, transitions: int) -> torch.Tensor:
        """The learned null action (classifier-free guidance) as ``[batch, transitions, action_dim]``."""
        return self.action_conditioner.null_actions(batch, transitions)

    def backbone_state_dict(self) -> dict[str, torch.Tensor]:
        """The action-free checkpoint: the video generator's weights only."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(ACTION_PREFIX)}

    def load_backbone(self, source: str | Path | Mapping[str, torch.Tensor]) -> list[str]:
        """Load an action-free checkpoint (a state dict, a .safetensors file or a save_pretrained folder).

        Action-conditioning weights in ``source`` are ignored, so the action blocks stay as they are (fresh
        after construction). Returns the names of the action parameters left untouched.
        """
        if isinstance(source, (str, Path)):
            path = Path(source)
            if path.is_dir():
                path = path / "model.safetensors"
            if not path.is_file():
                raise ValueError(
                    f"no checkpoint at {path}: pass a .safetensors file or a save_pretrained folder"
                )
            source = load_file(str(path))
        own = self.backbone_state_dict()
        state = {k: v for k, v in source.items() if not k.startswith(ACTION_PREFIX)}
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            raise ValueError(
                f"checkpoint does not match this DiTConfig's backbone: missing {missing[:5]}, unexpected "
                f"{unexpected[:5]}; build the model with the config the checkpoint was trained with"
            )
        wrong = [
            f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
            for k, v in own.items()
            if state[k].shape != v.shape
        ]
        if wrong:
            raise ValueError(f"checkpoint shapes do not match this DiTConfig: {wrong[:5]}")
        result = self.load_state_dict(state, strict=False)
        return sorted(result.missing_keys)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        actions: torch.Tensor | None = None,
        num_context: int = 0,
    ) -> torch.Tensor:
        batch, frames = self._check_inputs(x, t, actions, num_context)
        config = self.config
        tokens = rearrange(
            x, "b t c (h p) (w q) -> b (t h w) (p q c)", p=config.patch_size, q=config.patch_size
        ).to(self.patch_embed.weight.dtype)
        tokens = self.patch_embed(tokens)
        positions = self.spatial_pos[None, :, :] + self.temporal_pos[:frames, None, :]
        tokens = tokens + positions.reshape(1, -1, config.width).to(tokens.dtype)

        cond = self.time_embed(frame_times(t, frames, num_context))
        time_modulation = [block.modulation(cond) for block in self.blocks]
        if actions is not None:
            action_modulation, token_shift = self.action_conditioner(actions)
            if action_modulation is not None:
                action_modulation = action_modulation.to(cond.dtype)
                time_modulation = [m + action_modulation[:, :, i] for i, m in enumerate(time_modulation)]
            if token_shift is not None:
                patches = config.tokens_per_frame
                shift = token_shift.to(tokens.dtype)[:, :, None, :].expand(-1, -1, patches, -1)
                tokens = tokens + shift.reshape(batch, frames * patches, config.width)

        for block, modulation in zip(self.blocks, time_modulation, strict=True):
            tokens = block(tokens, modulation, frames)
        out = self.final_layer(tokens, cond)
        side = config.patches_per_side
        return rearrange(
            out,
            "b (t h w) (p q c) -> b t c (h p) (w q)",
            t=frames,
            h=side,
            w=side,
            p=config.patch_size,
            q=config.patch_size,
        )

    def _check_inputs(
        self, x: torch.Tensor, t: torch.Tensor, actions: torch.Tensor | None, num_context: int
    ) -> tuple[int, int]:
        config = self.config
        expected = (config.channels, config.frame_size, config.frame_size)
        if not isinstance(x, torch.Tensor) or x.dim() != 5 or tuple(x.shape[2:]) != expected:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"x must be [B, T, {', '.join(map(str, expected))}] for this DiTConfig, got {got}"
            )
        batch, frames = x.shape[:2]
        if not 1 <= frames <= config.num_frames:
            raise ValueError(
                f"x has {frames} frames; one forward takes 1..{config.num_frames} (config.num_frames). "
                "Use cola_wm.sample for longer rollouts"
            )
        if not x.is_floating_point():
            raise ValueError(f"x must be a float tensor in [-1, 1], got {x.dtype}")
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != (batch,):
            raise ValueError(f"t must be a tensor of shape [{batch}] (one flow time per sample)")
        if isinstance(num_context, bool) or not isinstance(num_context, int) or not 0 <= num_context < frames:
            raise ValueError(
                f"num_context must be an int in [0, {frames}) for {frames} frames, got {num_context!r}"
            )
        if self.check_finite and (not torch.isfinite(x).all() or not torch.isfinite(t).all()):
            raise ValueError("x and t must be finite (found NaN or inf)")
        if actions is not None:
            want = (batch, frames - 1, config.action_dim)
            if not isinstance(actions, torch.Tensor) or tuple(actions.shape) != want:
                got = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
                raise ValueError(
                    f"actions must be [B, T-1, action_dim] = {list(want)} (one per transition), got {got}"
                )
            if self.check_finite and not torch.isfinite(actions).all():
                raise ValueError("actions must be finite (found NaN or inf)")
        return batch, frames
