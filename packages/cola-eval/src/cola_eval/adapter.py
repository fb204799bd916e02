"""ActionAdapter: real robot actions (optionally with the current frame) -> the LAM's discrete latent actions.

The paper's "ground truth -> adapter" experiment: a world model conditioned on latent actions is driven by
real actions through a small classifier trained on a few labelled clips, the labels being the codes the LAM's
IDM assigns to those clips. The adapter predicts one code per action token and looks it up in a copy of the
LAM's codebook, so its output drops into the world model exactly where the IDM's quantized actions go.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from cola_train.data.pusht_layout import DELTA_COLUMNS
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


@dataclass
class AdapterConfig:
    """Sizes of the adapter; ``action_columns`` records which columns of a dataset's actions it reads."""

    action_in: int = 2
    tokens_per_action: int = 2
    num_codes: int = 32
    code_dim: int = 32
    hidden: int = 256
    use_frames: bool = False
    frame_size: int = 64
    channels: int = 3
    frame_features: int = 128
    action_columns: list[int] = field(default_factory=lambda: list(DELTA_COLUMNS))

    def __post_init__(self) -> None:
        for name in (
            "action_in",
            "tokens_per_action",
            "num_codes",
            "code_dim",
            "hidden",
            "frame_size",
            "channels",
            "frame_features",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"AdapterConfig.{name} must be a positive integer, got {value!r}.")
        self.action_columns = [int(c) for c in self.action_columns]
        if len(self.action_columns) != self.action_in:
            raise ValueError(
                f"AdapterConfig.action_columns {self.action_columns} must name "
                f"action_in={self.action_in} columns."
            )
        if self.use_frames and self.frame_size % 8:
            raise ValueError(
                f"AdapterConfig.frame_size must be a multiple of 8 with use_frames, got {self.frame_size}."
            )


class FrameEncoder(nn.Module):
    """Three stride-2 convolutions and a linear map: where the agent and block are matters, so no pooling."""

    def __init__(self, channels: int, frame_size: int, features: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            nn.Conv2d(channels, 16, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(16, 32, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(32, 32, 4, stride=2, padding=1),
            nn.GELU(),
        )
        self.proj = nn.Linear(32 * (frame_size // 8) ** 2, features)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.proj(self.convs(frames).flatten(1))


class ActionAdapter(
    nn.Module, PyTorchModelHubMixin, library_name="cola-eval", tags=["cola", "action-adapter"]
):
    """``real_actions [B, N, A]`` (+ ``frames [B, N, C, H, W]``) -> per-token code logits, latent actions."""

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.action_mlp = nn.Sequential(
            nn.Linear(config.action_in, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU()
        )
        self.frame_encoder = (
            FrameEncoder(config.channels, config.frame_size, config.frame_features)
            if config.use_frames
            else None
        )
        joint = hidden + (config.frame_features if config.use_frames else 0)
        self.head = nn.Sequential(
            nn.Linear(joint, hidden),
            nn.GELU(),
            nn.Linear(hidden, config.tokens_per_action * config.num_codes),
        )
        self.register_buffer("codebook", torch.zeros(config.num_codes, config.code_dim))
        self.register_buffer("action_mean", torch.zeros(config.action_in))
        self.register_buffer("action_std", torch.ones(config.action_in))

    def _check(self, real_actions: torch.Tensor, frames: torch.Tensor | None) -> None:
        config = self.config
        if not isinstance(real_actions, torch.Tensor) or real_actions.dim() != 3:
            raise ValueError(f"real_actions must be a tensor [B, N, A], got {_shape(real_actions)}.")
        if real_actions.shape[-1] != config.action_in:
            raise ValueError(
                f"real_actions have {real_actions.shape[-1]} columns but this adapter reads "
                f"{config.action_in} "
                f"(dataset columns {config.action_columns}); select those columns first."
            )
        if config.use_frames:
            expected = (*real_actions.shape[:2], config.channels, config.frame_size, config.frame_size)
            if frames is None:
                raise ValueError(
                    "this adapter was trained with use_frames=True: pass frames [B, N, C, H, W]."
                )
            if tuple(frames.shape) != expected:
                raise ValueError(
                    f"frames must have shape {expected} to match real_actions, got {_shape(frames)}."
                )
        elif frames is not None:
            raise ValueError("this adapter was trained without frames (use_frames=False): pass frames=None.")

    def logits(self, real_actions: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Code logits ``[B, N, tokens_per_action, num_codes]``."""
        self._check(real_actions, frames)
        batch, steps = real_actions.shape[:2]
        h = self.action_mlp((real_actions.float() - self.action_mean) / self.action_std)
        if self.frame_encoder is not None:
            h = torch.cat(
                [h, self.frame_encoder(frames.flatten(0, 1).float()).view(batch, steps, -1)], dim=-1
            )
        return self.head(h).view(batch, steps, self.config.tokens_per_action, self.config.num_codes)

    def to_latent(self, real_actions: torch.Tensor, frames: torch.Tensor | None = None) -> torch.Tensor:
        """Quantized latent actions ``[B, N, tokens_per_action, code_dim]``: the argmax code of each token."""
        return F.embedding(self.logits(real_actions, frames).argmax(-1), self.codebook)


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


def fit_adapter(
    adapter: ActionAdapter,
    actions: torch.Tensor,
    targets: torch.Tensor,
    frames: torch.Tensor | None = None,
    steps: int = 1000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``adapter`` in place with cross-entropy on transitions: ``actions [M, A]``, ``targets [M,
    tokens]`` (code ids), ``frames [M, C, H, W]`` when it uses frames. Sets the action normalisation from
    ``actions``; returns the loss of every step."""
    if actions.dim() != 2 or actions.shape[0] == 0:
        raise ValueError(
            f"actions must be a non-empty [M, A] tensor of transitions, got {tuple(actions.shape)}."
        )
    config = adapter.config
    if tuple(targets.shape) != (actions.shape[0], config.tokens_per_action):
        raise ValueError(
            f"targets must be code ids [M, tokens_per_action] = "
            f"[{actions.shape[0]}, {config.tokens_per_action}], "
            f"got {tuple(targets.shape)}."
        )
    if targets.min() < 0 or targets.max() >= config.num_codes:
        raise ValueError(f"targets must be code ids in [0, {config.num_codes}).")
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}.")
    actions = actions.float()
    adapter.action_mean.copy_(actions.mean(0))
    adapter.action_std.copy_(actions.std(0, unbiased=False).clamp_min(1e-6))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    adapter.train()
    losses = []
    for _ in range(steps):
        batch = torch.randint(0, actions.shape[0], (min(batch_size, actions.shape[0]),), generator=generator)
        batch_frames = frames[batch][:, None] if frames is not None else None
        logits = adapter.logits(actions[batch][:, None], batch_frames)[:, 0]
        loss = F.cross_entropy(logits.flatten(0, 1), targets[batch].flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    adapter.eval()
    return losses


@torch.no_grad()
def label_clips(
    lam: nn.Module,
    clips: Sequence[dict],
    action_columns: Sequence[int],
    use_frames: bool = False,
    batch_size: int = 16,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The LAM's codes for every transition of ``clips``: (real actions ``[M, A]``, codes ``[M, tokens]``, the
    frame each transition starts from ``[M, C, H, W]`` or None)."""
    if len(clips) == 0:
        raise ValueError("no clips to label: the evaluation set is empty; pass a non-empty ClipDataset.")
    frame_size = lam.config.frame_size
    was_training = lam.training
    lam.eval()
    actions, codes, frames = [], [], []
    for start in range(0, len(clips), batch_size):
        items = [clips[i] for i in range(start, min(start + batch_size, len(clips)))]
        if any("actions" not in item for item in items):
            raise ValueError(
                "clips carry no real actions ('actions' key); the adapter needs a labelled dataset."
            )
        video = torch.stack([item["video"] for item in items])
        if tuple(video.shape[-2:]) != (frame_size, frame_size):
            raise ValueError(
                f"clips have {tuple(video.shape[-2:])} frames but the LAM expects {frame_size}x{frame_size}; "
                "build the ClipDataset with size=lam.config.frame_size."
            )
        real = torch.stack([item["actions"] for item in items])[:, :-1]
        if max(action_columns) >= real.shape[-1] or min(action_columns) < 0:
            raise ValueError(
                f"action_columns {list(action_columns)} out of range for actions with "
                f"{real.shape[-1]} columns."
            )
        actions.append(real[..., list(action_columns)].flatten(0, 1))
        codes.append(lam.encode(video).indices.flatten(0, 1))
        if use_frames:
            frames.append(video[:, :-1].flatten(0, 1))
    lam.train(was_training)
    return torch.cat(actions), torch.cat(codes), torch.cat(frames) if use_frames else None


def train_adapter(
    lam: nn.Module,
    train_clips: Sequence[dict],
    steps: int = 1000,
    use_frames: bool = False,
    labelled_fraction: float = 0.1,
    seed: int = 0,
    action_columns: Sequence[int] = tuple(DELTA_COLUMNS),
    hidden: int = 256,
    batch_size: int = 256,
    lr: float = 1e-3,
) -> ActionAdapter:
    """Fit an adapter on a seeded ``labelled_fraction`` of ``train_clips`` (at least one clip), the targets
    being ``lam.encode(video).indices``. PushT's default columns (2, 3) are the action deltas (target - agent
    position)."""
    if not 0.0 < labelled_fraction <= 1.0:
        raise ValueError(f"labelled_fraction must be in (0, 1], got {labelled_fraction}.")
    if len(train_clips) == 0:
        raise ValueError("train_clips is empty; the adapter needs at least one labelled clip.")
    count = max(1, round(labelled_fraction * len(train_clips)))
    chosen = torch.randperm(len(train_clips), generator=torch.Generator().manual_seed(seed))[:count]
    subset = [train_clips[int(i)] for i in chosen]
    actions, codes, frames = label_clips(lam, subset, action_columns, use_frames)
    lam_config = lam.config
    # The initial weights come from the seed, not from whatever the process drew before: without this, the
    # same run evaluated after different jobs (a reproduction worker, a multi-run report) got another adapter.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        adapter = ActionAdapter(
            AdapterConfig(
                action_in=len(action_columns),
                tokens_per_action=lam_config.tokens_per_action,
                num_codes=lam_config.num_codes,
                code_dim=lam_config.code_dim,
                hidden=hidden,
                use_frames=use_frames,
                frame_size=lam_config.frame_size,
                channels=lam_config.channels,
                action_columns=list(action_columns),
            )
        )
    adapter.codebook.copy_(lam.quantizer.codes().detach())
    fit_adapter(adapter, actions, codes, frames, steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    return adapter


@torch.no_grad()
def adapter_accuracy(adapter: ActionAdapter, lam: nn.Module, clips: Sequence[dict]) -> float:
    """Fraction of action tokens on which the adapter picks the LAM's code (chance is 1 / num_codes)."""
    actions, codes, frames = label_clips(lam, clips, adapter.config.action_columns, adapter.config.use_frames)
    adapter.eval()
    predicted = adapter.logits(actions[:, None], frames[:, None] if frames is not None else None)[
        :, 0
    ].argmax(-1)
    return (predicted == codes).float().mean().item()
