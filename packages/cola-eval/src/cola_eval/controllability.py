"""Controllability metrics that can see a small moving agent: moving-pixel PSNR and the agent's position.

Full-frame PSNR barely sees actions on PushT: the agent is a ~4 px disc in a 64x64 frame and the pixels that
change between frames are under 1% of it. Two metrics look where actions act:

    moving-pixel PSNR   PSNR over the pixels where the true future frame differs from the last context frame
    agent position      the agent read off every frame by its colour (PushT draws it RoyalBlue, the only blue
                        object), compared with the true position

Frames are float tensors ``[..., 3, H, W]`` in [-1, 1]; positions are ``(x, y)`` in frame pixels, measured
from the frame's top-left corner (the centre of pixel (i, j) is at (j + 0.5, i + 0.5)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from cola_train.data.pusht_layout import AGENT_STATE_NAMES as PUSHT_AGENT_STATE_NAMES
from cola_train.data.pusht_layout import ARENA_PX as PUSHT_ARENA

# How far a channel must move (on the [-1, 1] scale, 2 = full range) for a pixel to count as moving:
# about 6/255, above the quantisation and resize noise of rendered frames.
MOVING_THRESHOLD = 0.05
# "Blueness" b - (r + g) / 2 on the [0, 255] scale: the agent (RoyalBlue 65, 105, 225) scores 140, the block
# (LightSlateGray) 26, the goal (LightGreen) -94 and the white floor 0. Pixels above this are the agent.
AGENT_BLUENESS = 60.0


def _check_frames(video: torch.Tensor, name: str) -> None:
    if not isinstance(video, torch.Tensor) or video.dim() < 3 or video.shape[-3] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"{name} must be RGB frames [..., 3, H, W] in [-1, 1], got {got}")
    if not video.is_floating_point():
        raise ValueError(f"{name} must be a float tensor in [-1, 1], got {video.dtype}")


def moving_mask(
    reference: torch.Tensor, target: torch.Tensor, threshold: float = MOVING_THRESHOLD
) -> torch.Tensor:
    """Bool ``[..., H, W]``: pixels where ``target [..., 3, H, W]`` differs from ``reference`` (broadcast,
    e.g. the last context frame ``[B, 1, 3, H, W]`` against the true futures ``[B, T, 3, H, W]``) in any
    channel by more than ``threshold``."""
    _check_frames(reference, "reference")
    _check_frames(target, "target")
    return ((target.float() - reference.float()).abs() > threshold).any(dim=-3)


def masked_psnr(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, data_range: float = 2.0
) -> torch.Tensor:
    """PSNR in dB over the pixels of ``mask [..., H, W]`` of each frame ``[..., 3, H, W]``: shape
    ``pred.shape[:-3]``. A frame without masked pixels gives NaN (nothing moved there: leave it out of means
    with ``nanmean``); identical masked pixels give +inf."""
    if pred.shape != target.shape or tuple(mask.shape) != tuple(pred.shape[:-3]) + tuple(pred.shape[-2:]):
        raise ValueError(
            f"masked_psnr: pred {tuple(pred.shape)} and target {tuple(target.shape)} must match, and mask "
            f"{tuple(mask.shape)} must be their shape without the channel dimension"
        )
    if mask.dtype != torch.bool:
        raise ValueError(f"masked_psnr: mask must be a bool tensor, got {mask.dtype}")
    weight = mask.unsqueeze(-3).double()
    error = (pred.double() - target.double()).pow(2) * weight
    count = weight.flatten(-3).sum(-1) * pred.shape[-3]
    mse = error.flatten(-3).sum(-1) / count  # NaN where count is 0
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def moving_pixel_psnr(
    pred: torch.Tensor, target: torch.Tensor, reference: torch.Tensor, threshold: float = MOVING_THRESHOLD
) -> torch.Tensor:
    """PSNR of ``pred`` against ``target`` over the pixels where ``target`` differs from ``reference`` (the
    last context frame, broadcast against it): per frame, NaN where nothing moved."""
    return masked_psnr(pred, target, moving_mask(reference, target, threshold))


def agent_positions(video: torch.Tensor, blueness: float = AGENT_BLUENESS) -> torch.Tensor:
    """The PushT agent's ``(x, y)`` in frame pixels in every frame of ``video [..., 3, H, W]``: shape
    ``[..., 2]``.

    The centroid of the agent-coloured pixels, each weighted by how blue it is; a frame with no such pixel
    (a model that dissolved the agent) gives its single bluest pixel, so every frame has a position.
    """
    _check_frames(video, "video")
    pixels = (video.float().clamp(-1, 1) + 1) * 127.5
    score = pixels[..., 2, :, :] - (pixels[..., 0, :, :] + pixels[..., 1, :, :]) / 2
    height, width = score.shape[-2:]
    flat = score.flatten(-2)
    weight = (flat - blueness).clamp_min(0)
    fallback = torch.nn.functional.one_hot(flat.argmax(-1), height * width).to(weight.dtype)
    found = weight.sum(-1, keepdim=True) > 0
    weight = torch.where(found, weight, fallback)
    weight = weight / weight.sum(-1, keepdim=True)
    rows = torch.arange(height, dtype=weight.dtype, device=weight.device).repeat_interleave(width) + 0.5
    cols = torch.arange(width, dtype=weight.dtype, device=weight.device).repeat(height) + 0.5
    return torch.stack([(weight * cols).sum(-1), (weight * rows).sum(-1)], dim=-1)


def agent_mask(frames: torch.Tensor) -> torch.Tensor:
    """Bool [..., H, W]: agent-coloured pixels of frames [..., 3, H, W] and their 8 neighbours (the agent's
    antialiased rim)."""
    pixels = (frames.float().clamp(-1, 1) + 1) * 127.5
    blue = pixels[..., 2, :, :] - (pixels[..., 0, :, :] + pixels[..., 1, :, :]) / 2 > AGENT_BLUENESS
    flat = blue.flatten(0, -3)[:, None].float()
    return torch.nn.functional.max_pool2d(flat, 3, stride=1, padding=1)[:, 0].bool().view(blue.shape)


def pusht_agent_positions(states: torch.Tensor, frame_size: int | Sequence[int]) -> torch.Tensor:
    """The agent's true ``(x, y)`` in frame pixels from PushT states ``[..., >=2]`` (agent x, y in arena px)
    for frames of ``frame_size`` px on a side, or ``(height, width)``."""
    if not isinstance(states, torch.Tensor) or states.dim() < 1 or states.shape[-1] < 2:
        raise ValueError("states must be a tensor [..., S] whose first two columns are the agent's x and y")
    size = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(int(s) for s in frame_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"frame_size must be a positive int or (height, width), got {frame_size!r}")
    height, width = size
    scale = torch.tensor([width / PUSHT_ARENA, height / PUSHT_ARENA])
    return states[..., :2].float() * scale.to(states.device)


def has_pusht_agent_states(dataset: Any) -> bool:
    """Whether the clips of ``dataset`` (a ClipDataset) carry PushT agent positions in their first two state
    columns: its episodes name those columns ``agent_x, agent_y``, as cola-train's PushT collection does.
    Other data (no names, or other names) gives False: pass ``agent_states=True`` to evaluate_rollouts to
    insist."""
    episodes = getattr(dataset, "episodes", None)
    if not episodes:
        return False
    return tuple(getattr(episodes[0], "state_names", ())[:2]) == PUSHT_AGENT_STATE_NAMES


def agent_position_error(video: torch.Tensor, true_positions: torch.Tensor) -> torch.Tensor:
    """Euclidean distance in frame pixels between the agent read off each frame of ``video [..., 3, H, W]``
    and ``true_positions [..., 2]``: shape ``video.shape[:-3]``."""
    found = agent_positions(video)
    if found.shape != true_positions.shape:
        raise ValueError(
            f"true_positions must be {tuple(found.shape)} (one (x, y) per frame), got "
            f"{tuple(true_positions.shape)}"
        )
    return (found - true_positions.to(found)).norm(dim=-1)
