"""What the planner imagines with: the world model driven through the action adapter, or the true simulator.

Both take the current observation and a batch of candidate delta sequences ``[S, H, 2]`` (env pixels) and
return their predicted futures: frames ``[S, H, C, h, w]`` in [-1, 1] and, for the simulator, states ``[S, H,
5]``.
"""

import copy
from dataclasses import dataclass

import numpy as np
import torch
from cola_train.data.pusht_layout import ARENA_PX, DELTA_COLUMNS
from cola_wm import ActionConditionedDiT, sample
from gym_pusht.envs.pusht import PushTEnv

from cola_eval.adapter import ActionAdapter
from cola_eval.planning.readout import frames_to_tensor


@dataclass
class Observation:
    """What the planner sees now: the real env (only the oracle may look inside), its frame, the agent
    position."""

    env: PushTEnv
    frame: torch.Tensor  # [C, H, W] in [-1, 1]
    agent: np.ndarray  # [2] env pixels


@dataclass
class Prediction:
    frames: torch.Tensor | None  # [S, H, C, h, w] in [-1, 1]
    states: np.ndarray | None  # [S, H, 5] agent x, y, block x, y, angle


def env_target(agent: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """The absolute float32 target the env is stepped with for a delta from the agent's position."""
    return np.clip(np.asarray(agent, dtype=np.float64) + delta, 0.0, ARENA_PX).astype(np.float32)


def clone_env(env: PushTEnv) -> PushTEnv:
    """A fresh copy of a PushT env's bodies (pose and velocity) for imagined rollouts.

    A fresh space is built and the fields written, angle before position (not a deep copy of the pymunk
    space: docs/decisions.md). The copy lacks pymunk's cached contact impulses, so a rollout through contact
    can drift from what the real env will do; the planner only predicts with it, execution is always in the
    real env.
    """
    core = env.unwrapped
    twin = copy.copy(core)
    twin._setup()
    twin.block.angle = core.block.angle
    twin.block.position = core.block.position
    twin.block.velocity = core.block.velocity
    twin.block.angular_velocity = core.block.angular_velocity
    twin.agent.position = core.agent.position
    twin.agent.velocity = core.agent.velocity
    return twin


def _no_coverage() -> float:
    return 0.0


class SimulatorModel:
    """The oracle: every candidate is rolled out in a copy of the true simulator, each action's target held
    for ``action_repeat`` env steps (as the planner executes it)."""

    name = "oracle"

    def __init__(self, action_repeat: int = 1) -> None:
        if not isinstance(action_repeat, int) or action_repeat < 1:
            raise ValueError(f"action_repeat must be a positive integer, got {action_repeat!r}.")
        self.action_repeat = action_repeat

    def check_frame_size(self, frame_size: int) -> None:
        """The simulator renders at any size."""

    def predict(self, observation: Observation, deltas: np.ndarray, frames: bool) -> Prediction:
        samples, horizon = deltas.shape[:2]
        states = np.empty((samples, horizon, 5))
        images = []
        for s in range(samples):
            twin = clone_env(observation.env)
            twin.obs_type = "pixels_agent_pos" if frames else "state"
            # The reward's shapely block/goal overlap costs as much as the physics and no cost reads it.
            twin._get_coverage = _no_coverage
            for h in range(horizon):
                target = env_target(np.asarray(twin.agent.position), deltas[s, h])
                for _ in range(self.action_repeat):
                    obs, *_ = twin.step(target)
                states[s, h] = [*twin.agent.position, *twin.block.position, twin.block.angle]
                if frames:
                    images.append(obs["pixels"])
        predicted = frames_to_tensor(np.stack(images)).unflatten(0, (samples, horizon)) if frames else None
        return Prediction(frames=predicted, states=states)


class WorldModel:
    """The learned model: deltas -> the adapter's latent actions -> one batched rollout of the world model.

    The rollout starts from the current frame alone (one context frame) and samples with ``euler_steps`` Euler
    steps and action guidance ``guidance_scale`` (None: the world model's own; 1: none), on the world
    model's device; an adapter trained with frames sees the current frame for every step of the plan.
    """

    name = "world_model"

    def __init__(
        self,
        wm: ActionConditionedDiT,
        adapter: ActionAdapter,
        euler_steps: int = 3,
        seed: int = 0,
        guidance_scale: float | None = 1.0,
    ) -> None:
        if adapter.config.action_columns != DELTA_COLUMNS:
            raise ValueError(
                f"the adapter reads action columns {adapter.config.action_columns}, but the planner "
                "drives it "
                f"with PushT deltas (columns {DELTA_COLUMNS}); train it with action_columns=(2, 3)."
            )
        action_dim = adapter.config.tokens_per_action * adapter.config.code_dim
        if action_dim != wm.config.action_dim:
            raise ValueError(
                f"the adapter emits {action_dim}-wide latent actions but the world model takes "
                f"{wm.config.action_dim}; use the adapter trained on this run's LAM."
            )
        self.wm = wm.eval()
        self.adapter = adapter.eval()
        self.euler_steps = euler_steps
        self.guidance_scale = guidance_scale
        self.device = next(wm.parameters()).device
        self.adapter.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def check_frame_size(self, frame_size: int) -> None:
        if frame_size != self.wm.config.frame_size:
            raise ValueError(
                "the world model was trained on "
                f"{self.wm.config.frame_size}x{self.wm.config.frame_size} frames but "
                f"the planning episodes have {frame_size}x{frame_size}; collect the data at the model's "
                "frame size."
            )

    @torch.no_grad()
    def predict(self, observation: Observation, deltas: np.ndarray, frames: bool) -> Prediction:
        samples, horizon = deltas.shape[:2]
        self.check_frame_size(observation.frame.shape[-1])
        real = torch.as_tensor(deltas, dtype=torch.float32, device=self.device)
        frame = observation.frame.to(self.device)
        context = frame[None, None].expand(samples, 1, *frame.shape)
        adapter_frames = context.expand(samples, horizon, *frame.shape)
        latent = self.adapter.to_latent(real, adapter_frames if self.adapter.config.use_frames else None)
        video = sample(
            self.wm,
            context.contiguous(),
            latent.flatten(-2),
            num_frames=horizon + 1,
            steps=self.euler_steps,
            guidance_scale=self.guidance_scale,
            generator=self.generator,
        )
        # Costs, goals and the readout live on the CPU; only the rollout runs on the model's device.
        return Prediction(frames=video[:, 1:].clamp(-1.0, 1.0).float().cpu(), states=None)
