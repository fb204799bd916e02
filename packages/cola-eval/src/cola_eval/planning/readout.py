"""StateReadout: a small CNN that reads the PushT block pose (x, y, angle) off a frame.

Planning with pixel MSE scores a predicted frame by every pixel alike; a readout trained on the dataset's
labelled frames turns a predicted frame into the quantity the task is judged on, so the planner's cost and the
success rule speak the same units. It is applied to frames the world model predicts, never to the simulator.
The angle is regressed as (cos, sin) so that it has no wrap-around discontinuity.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from cola_train.data import Episode
from cola_train.data.pusht_layout import ARENA_PX
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


@dataclass
class ReadoutConfig:
    frame_size: int = 64
    channels: int = 3
    width: int = 32
    keypoints: int = 16

    def __post_init__(self) -> None:
        for name in ("frame_size", "channels", "width", "keypoints"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ReadoutConfig.{name} must be a positive integer, got {value!r}.")
        if self.frame_size % 2 or self.width % 2:
            raise ValueError(
                f"ReadoutConfig.frame_size and width must be even, got {self.frame_size}, {self.width}."
            )


class StateReadout(nn.Module, PyTorchModelHubMixin, library_name="cola-eval", tags=["cola", "pusht-readout"]):
    """``frames [N, C, H, W]`` in [-1, 1] -> block pose ``[N, 3]`` (x px, y px, angle rad).

    Convolutions end in ``keypoints`` feature maps, each turned by a spatial softmax into the expected (x, y)
    of what it responds to (deep spatial autoencoders, Finn et al. 2016); a small MLP maps the keypoints to
    the pose. Reading positions through keypoints, rather than a dense layer over the whole map, generalises
    from a few hundred episodes instead of memorising them.
    """

    def __init__(self, config: ReadoutConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.convs = nn.Sequential(
            nn.Conv2d(config.channels, w // 2, 3, stride=2, padding=1),
            nn.GELU(),
            nn.Conv2d(w // 2, w, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(w, config.keypoints, 3, padding=1),
        )
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.head = nn.Sequential(
            nn.Linear(2 * config.keypoints, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, 4)
        )
        axis = torch.linspace(-1.0, 1.0, config.frame_size // 2)
        grid_y, grid_x = torch.meshgrid(axis, axis, indexing="ij")
        self.register_buffer(
            "grid", torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1), persistent=False
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """Raw outputs ``[N, 4]``: (x, y) scaled to [-1, 1] over the 512 px arena, (cos, sin) of the angle."""
        size = self.config.frame_size
        expected = (self.config.channels, size, size)
        if frames.dim() != 4 or tuple(frames.shape[1:]) != expected:
            raise ValueError(
                f"readout frames must be [N, {expected[0]}, {size}, {size}], got {tuple(frames.shape)}; the "
                "readout was trained on frames of another size."
            )
        maps = self.convs(frames).flatten(2) * self.log_temperature.exp()
        keypoints = torch.softmax(maps, dim=-1) @ self.grid
        return self.head(keypoints.flatten(1))

    def pose(self, frames: torch.Tensor) -> torch.Tensor:
        """Block pose ``[N, 3]``: x, y in env pixels, angle in radians in (-pi, pi]."""
        out = self(frames)
        position = (out[:, :2] + 1.0) * (ARENA_PX / 2)
        return torch.cat([position, torch.atan2(out[:, 3], out[:, 2])[:, None]], dim=1)


def pose_targets(block_poses: torch.Tensor) -> torch.Tensor:
    """Block poses ``[N, 3]`` (px, px, rad) -> the readout's raw target space ``[N, 4]``."""
    position = block_poses[:, :2] / (ARENA_PX / 2) - 1.0
    return torch.cat([position, block_poses[:, 2:3].cos(), block_poses[:, 2:3].sin()], dim=1)


def frames_to_tensor(frames: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., H, W, 3]`` -> float ``[..., 3, H, W]`` in [-1, 1]."""
    frames = torch.as_tensor(frames)
    return frames.movedim(-1, -3).float() / 127.5 - 1.0


@dataclass
class ReadoutErrors:
    """Mean errors on frames the readout was not trained on."""

    position_px: float
    angle_rad: float
    frames: int


@torch.no_grad()
def readout_errors(readout: StateReadout, frames: np.ndarray, block_poses: np.ndarray) -> ReadoutErrors:
    """Mean block position error (px) and wrapped angle error (rad) over uint8 ``frames [N, H, W, 3]``."""
    readout.eval()
    predicted = torch.cat(
        [readout.pose(frames_to_tensor(frames[i : i + 512])) for i in range(0, len(frames), 512)]
    ).double()
    truth = torch.as_tensor(block_poses, dtype=torch.float64)
    position = (predicted[:, :2] - truth[:, :2]).norm(dim=1).mean().item()
    angle = ((predicted[:, 2] - truth[:, 2] + math.pi) % (2 * math.pi) - math.pi).abs().mean().item()
    return ReadoutErrors(position, angle, len(frames))


def labelled_frames(episodes: Sequence[Episode]) -> tuple[np.ndarray, np.ndarray]:
    """All frames of ``episodes`` with their block poses (state columns 2:5)."""
    usable = [episode for episode in episodes if episode.states.shape[1] >= 5]
    if not usable:
        raise ValueError(
            "no labelled frames: the readout needs episodes whose states hold the block pose (PushT states "
            "agent x, y, block x, y, angle)."
        )
    return (
        np.concatenate([episode.frames for episode in usable]),
        np.concatenate([episode.states[:, 2:5] for episode in usable]),
    )


def train_readout(
    frames: np.ndarray,
    block_poses: np.ndarray,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 1e-3,
    width: int = 32,
    seed: int = 0,
) -> StateReadout:
    """Fit a readout on uint8 ``frames [N, H, W, 3]`` labelled with ``block_poses [N, 3]`` (px, px, rad)."""
    if len(frames) == 0 or len(frames) != len(block_poses):
        raise ValueError(
            f"need a non-empty set of frames with one block pose each, got {len(frames)} frames and "
            f"{len(block_poses)} poses."
        )
    if frames.ndim != 4 or frames.shape[1] != frames.shape[2] or frames.shape[-1] != 3:
        raise ValueError(f"frames must be square uint8 [N, H, W, 3], got {tuple(frames.shape)}.")
    torch.manual_seed(seed)
    readout = StateReadout(ReadoutConfig(frame_size=int(frames.shape[1]), width=width))
    images = torch.from_numpy(np.ascontiguousarray(frames))
    targets = pose_targets(torch.tensor(np.asarray(block_poses), dtype=torch.float32))
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(readout.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    readout.train()
    for _ in range(steps):
        batch = torch.randint(0, len(images), (min(batch_size, len(images)),), generator=generator)
        loss = F.smooth_l1_loss(readout(frames_to_tensor(images[batch])), targets[batch], beta=0.05)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    readout.eval()
    return readout
