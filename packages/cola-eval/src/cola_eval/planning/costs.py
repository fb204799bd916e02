"""Planning costs: how far each predicted step is from the goal. Lower is better.

A cost gives one value per sample and predicted step ``[S, H]``; ``score_plans`` turns those into one value
per plan. ``PixelMSECost`` and ``BlockPoseCost`` read only predicted frames, so they serve any model;
``StatePoseCost`` reads predicted simulator states and so only serves the oracle, as the ceiling of what a
perfect block-pose readout would give.
"""

from dataclasses import dataclass

import numpy as np
import torch

from cola_eval.planning.config import PLAN_SCORES
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
    """Block position error (px) + 57 px/rad x wrapped angle error, elementwise over leading dimensions."""
    angle_error = torch.remainder(angle - goal_angle + torch.pi, 2 * torch.pi) - torch.pi
    return (position - goal_position).norm(dim=-1) + ANGLE_WEIGHT_PX_PER_RAD * angle_error.abs()


def score_plans(step_costs: torch.Tensor, plan_score: str) -> torch.Tensor:
    """Per-step costs ``[S, H]`` -> one cost per plan ``[S]``: its best step (``"best_step"``) or its last.

    Success is checked after every executed step, so a plan that passes through the goal is as good as one
    that ends there. Scored on its last step only, a plan that reaches the goal early and keeps pushing looks
    bad (measured: docs/decisions.md)."""
    if step_costs.ndim != 2:
        raise ValueError(
            f"a planning cost must give one value per sample and predicted step [S, H], got shape "
            f"{tuple(step_costs.shape)}."
        )
    if plan_score == "best_step":
        return step_costs.min(dim=1).values
    if plan_score == "last_step":
        return step_costs[:, -1]
    raise ValueError(f"unknown plan_score {plan_score!r}; choose one of {PLAN_SCORES}.")


def _frames(prediction: Prediction, cost: str) -> torch.Tensor:
    if prediction.frames is None:
        raise ValueError(f"the {cost} cost scores predicted frames, but the model predicted none.")
    return prediction.frames


class PixelMSECost:
    """Mean squared pixel error between each predicted frame and the goal frame."""

    name = "pixel_mse"
    needs_frames = True

    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        frames = _frames(prediction, self.name)
        return (frames - goal.frame.to(frames.device)).pow(2).mean(dim=(2, 3, 4))


class BlockPoseCost:
    """The block pose read off each predicted frame and off the goal frame by a learned readout."""

    name = "block_pose"
    needs_frames = True

    def __init__(self, readout: StateReadout) -> None:
        self.readout = readout.eval()

    @torch.no_grad()
    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        frames = _frames(prediction, self.name)
        device = next(self.readout.parameters()).device
        poses = self.readout.pose(torch.cat([frames.flatten(0, 1).to(device), goal.frame[None].to(device)]))
        predicted, target = poses[:-1].unflatten(0, frames.shape[:2]), poses[-1]
        return pose_cost(predicted[..., :2], predicted[..., 2], target[:2], target[2])


class StatePoseCost:
    """The pose cost on the simulator's predicted block states: the oracle's ceiling for ``BlockPoseCost``."""

    name = "state_pose"
    needs_frames = False

    def __call__(self, prediction: Prediction, goal: Goal) -> torch.Tensor:
        if prediction.states is None:
            raise ValueError(
                "the state_pose cost needs predicted simulator states: use it with the oracle model."
            )
        states = torch.as_tensor(prediction.states, dtype=torch.float64)
        target = torch.as_tensor(goal.state, dtype=torch.float64)
        return pose_cost(states[..., 2:4], states[..., 4], target[2:4], target[4])


Cost = PixelMSECost | BlockPoseCost | StatePoseCost
