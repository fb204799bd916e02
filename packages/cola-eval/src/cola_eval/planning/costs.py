"""Planning costs: how far a predicted future ends from the goal. Lower is better; one value per sample.

Every cost scores the last predicted step. ``PixelMSECost`` and ``BlockPoseCost`` read only predicted frames,
so they serve any model; ``StatePoseCost`` reads predicted simulator states and so only serves the oracle, as
the ceiling of what a perfect block-pose readout would give.
"""

from dataclasses import dataclass

import numpy as np
import torch

from cola_eval.planning.models import Prediction
from cola_eval.planning.readout import StateReadout

# Pose cost units: 57 px per radian makes one degree of block angle cost about one pixel of block position.
ANGLE_WEIGHT_PX_PER_RAD = 57.0


@dataclass
class Goal:
    frame: torch.Tensor  # [C, H, W] in [-1, 1]
    state: np.ndarray  # [5] agent x, y, block x, y, angle: the oracle's state cost only


def pose_cost(
    position: torch.Tensor, angle: torch.Tensor, goal_position: torch.Tensor, goal_angle: torch.Tensor
):
    """Block position error (px) + 57 px/rad x wrapped angle error, per sample."""
    angle_error = torch.remainder(angle - goal_angle + torch.pi, 2 * torch.pi) - torch.pi
    return (position - goal_position).norm(dim=-1) + ANGLE_WEIGHT_PX_PER_RAD * angle_error.abs()


def _last_frames(prediction: Prediction, cost: str) -> torch.Tensor:
    if prediction.frames is None:
        raise ValueError(f"the {cost} cost scores predicted frames, but the model predicted none.")
    return prediction.frames[:, -1]


class PixelMSECost:
    """Mean squared pixel error between the last predicted frame and the goal frame."""

    name = "pixel_mse"
    needs_frames = True

    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        last = _last_frames(prediction, self.name)
        return (last - goal.frame.to(last.device)).pow(2).mean(dim=(1, 2, 3))


class BlockPoseCost:
    """The block pose read off the last predicted frame and off the goal frame by a learned readout."""

    name = "block_pose"
    needs_frames = True

    def __init__(self, readout: StateReadout) -> None:
        self.readout = readout.eval()

    @torch.no_grad()
    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        last = _last_frames(prediction, self.name)
        device = next(self.readout.parameters()).device
        poses = self.readout.pose(torch.cat([last.to(device), goal.frame[None].to(device)]))
        predicted, target = poses[:-1], poses[-1]
        return pose_cost(predicted[:, :2], predicted[:, 2], target[:2], target[2])


class StatePoseCost:
    """The pose cost on the simulator's predicted block state: the oracle's ceiling for ``BlockPoseCost``."""

    name = "state_pose"
    needs_frames = False

    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        if prediction.states is None:
            raise ValueError(
                "the state_pose cost needs predicted simulator states: use it with the oracle model."
            )
        last = torch.as_tensor(prediction.states[:, -1], dtype=torch.float64)
        target = torch.as_tensor(goal.state, dtype=torch.float64)
        return pose_cost(last[:, 2:4], last[:, 4], target[2:4], target[4])


Cost = PixelMSECost | BlockPoseCost | StatePoseCost
