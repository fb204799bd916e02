"""The ground-truth-action ceiling: the world model conditioned on the dataset's real actions, not the LAM's.

With ``model.actions = "real"`` a run feeds the world model, for each transition of a clip, the real actions
of every environment step the transition spans (``data.frame_skip`` rows of the
``model.real_action_columns``), standardised with statistics of the training clips; the DiT's action
conditioner embeds them as it embeds latent actions. The same engine, data and evaluation then tell the world
model's limits apart from the LAM's.
"""

# No `from __future__ import annotations`: the Hub mixin reads the RealActionConfig annotation at runtime.
from dataclasses import asdict, dataclass, field

import torch
from cola_lam.hub import SubfolderHubMixin
from cola_lam.hub_io import StrictHubMixin
from torch import nn

from cola_train.data.pusht_layout import DELTA_COLUMNS


@dataclass
class RealActionConfig:
    """Which action columns a transition reads and how many environment steps (rows) it spans."""

    columns: list[int] = field(default_factory=lambda: list(DELTA_COLUMNS))
    frame_skip: int = 1

    def __post_init__(self) -> None:
        if not self.columns or len(set(self.columns)) != len(self.columns):
            raise ValueError(
                f"real action columns must be a non-empty list of distinct indices, got {self.columns}"
            )
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in self.columns):
            raise ValueError(f"real action columns must be non-negative integers, got {self.columns}")
        if isinstance(self.frame_skip, bool) or not isinstance(self.frame_skip, int) or self.frame_skip < 1:
            raise ValueError(f"frame_skip must be a positive integer, got {self.frame_skip!r}")

    @property
    def action_dim(self) -> int:
        """Width of one transition's action: every spanned row's columns, side by side."""
        return len(self.columns) * self.frame_skip

    def to_dict(self) -> dict:
        return asdict(self)


class RealActionEncoder(
    nn.Module,
    StrictHubMixin,
    SubfolderHubMixin,
    library_name="cola-train",
    tags=["cola", "arxiv:2510.26433"],
    license="mit",
    paper_url="https://arxiv.org/abs/2510.26433",
):
    """``transition_actions [B, T-1, frame_skip, A]`` -> standardised ``[B, T-1, frame_skip * len(columns)]``.

    The per-column mean and standard deviation are buffers (saved with the weights) that :meth:`fit` sets
    once from training clips; before that the encoder refuses to run, so no run trains on unscaled actions.
    """

    def __init__(self, config: RealActionConfig) -> None:
        super().__init__()
        self.config = config
        width = len(config.columns)
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))
        self.register_buffer("initialized", torch.tensor(False))

    def _select(self, transition_actions: torch.Tensor) -> torch.Tensor:
        config = self.config
        if (
            not isinstance(transition_actions, torch.Tensor)
            or transition_actions.dim() != 4
            or transition_actions.shape[2] != config.frame_skip
        ):
            got = tuple(transition_actions.shape) if isinstance(transition_actions, torch.Tensor) else None
            raise ValueError(
                f"transition actions must be [B, T-1, frame_skip={config.frame_skip}, A], got {got}; the "
                "clips must come from a ClipDataset built with the run's data.frame_skip"
            )
        if max(config.columns) >= transition_actions.shape[-1]:
            raise ValueError(
                f"model.real_action_columns {config.columns} asks for column {max(config.columns)} but the "
                f"data has {transition_actions.shape[-1]} action columns; list columns that exist"
            )
        return transition_actions[..., config.columns].float()

    @torch.no_grad()
    def fit(self, transition_actions: torch.Tensor) -> None:
        """Set the standardisation from training clips' ``[N, T-1, frame_skip, A]`` transition actions."""
        rows = self._select(transition_actions).reshape(-1, len(self.config.columns))
        if not torch.isfinite(rows).all():
            raise ValueError("the training clips' real actions contain NaN or inf; clean the dataset")
        self.mean.copy_(rows.mean(0))
        # A constant column carries no action; a floor keeps it finite instead of dividing by ~0.
        self.std.copy_(rows.std(0, unbiased=False).clamp_min(1e-6))
        self.initialized.fill_(True)

    def forward(self, transition_actions: torch.Tensor) -> torch.Tensor:
        if not bool(self.initialized):
            raise ValueError(
                "RealActionEncoder has no action statistics yet; call fit(training transition actions) first"
            )
        rows = (self._select(transition_actions) - self.mean) / self.std
        return rows.flatten(-2)
