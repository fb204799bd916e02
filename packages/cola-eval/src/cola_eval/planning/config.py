"""PlanningConfig: the PushT planning protocol and the MPC planner's knobs, with named presets."""

from dataclasses import dataclass, fields, replace
from typing import Any

METHODS = ("cem", "mppi")
PLAN_SCORES = ("best_step", "last_step")


@dataclass(frozen=True)
class PlanningConfig:
    """Protocol: ``goal_offset`` steps from start to goal, ``budget`` env steps to reach it.

    Planner: ``method`` CEM or MPPI over ``samples`` real-action sequences of ``horizon`` steps, refined for
    ``iterations`` rounds, of which the first ``execute_steps`` are executed before replanning. A plan is
    worth the cost of its best predicted step (``plan_score="best_step"``) or of its last (``"last_step"``).
    An action is a delta from the agent's position to the env's target, each coordinate bounded by
    ``max_delta`` px (150 and ``"best_step"``: docs/decisions.md). CEM refits to the
    ``elite_fraction`` lowest costs; MPPI weights samples by ``exp(-(cost - min) / (gamma * (max - min)))``, a
    temperature relative to the spread of the sampled costs, so one ``gamma`` suits pixel and pose costs.
    ``init_std`` (in units of ``max_delta``) is the sampling spread after every replan; ``euler_steps`` is the
    world model's number of sampling steps and ``guidance_scale`` its action guidance in planned rollouts
    (None: the world model's own ``config.guidance_scale``, as :func:`cola_wm.sample` and the report's
    rollouts use; 1: none). ``action_repeat`` is how many env steps one planned action lasts:
    its target is held that long, one world-model transition per action. A world model trained at frame skip
    k predicts k env steps a transition, so plan it with ``action_repeat=k`` (the evaluation does, from the
    run's data); ``budget`` and ``goal_offset`` count env steps either way.
    """

    method: str = "cem"
    horizon: int = 8
    samples: int = 128
    iterations: int = 3
    elite_fraction: float = 0.1
    gamma: float = 0.05
    init_std: float = 0.5
    min_std: float = 0.05
    execute_steps: int = 2
    max_delta: float = 150.0
    euler_steps: int = 3
    budget: int = 50
    goal_offset: int = 25
    plan_score: str = "best_step"
    action_repeat: int = 1
    guidance_scale: float | None = 1.0

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"PlanningConfig.method must be one of {METHODS}, got {self.method!r}.")
        if self.plan_score not in PLAN_SCORES:
            raise ValueError(
                f"PlanningConfig.plan_score must be one of {PLAN_SCORES}, got {self.plan_score!r}."
            )
        for name in (
            "horizon",
            "samples",
            "iterations",
            "execute_steps",
            "euler_steps",
            "budget",
            "goal_offset",
            "action_repeat",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PlanningConfig.{name} must be a positive integer, got {value!r}.")
        if self.execute_steps > self.horizon:
            raise ValueError(
                f"PlanningConfig.execute_steps ({self.execute_steps}) cannot exceed horizon ({self.horizon})."
            )
        if not 0.0 < self.elite_fraction <= 1.0:
            raise ValueError(f"PlanningConfig.elite_fraction must be in (0, 1], got {self.elite_fraction}.")
        if self.guidance_scale is not None and not (
            isinstance(self.guidance_scale, int | float) and 0 < self.guidance_scale < float("inf")
        ):
            raise ValueError(
                "PlanningConfig.guidance_scale must be a finite number > 0 (1: no guidance) or None (the "
                f"world model's own), got {self.guidance_scale!r}."
            )
        for name in ("gamma", "init_std", "max_delta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"PlanningConfig.{name} must be > 0, got {getattr(self, name)}.")
        if not 0 <= self.min_std <= self.init_std:
            raise ValueError(f"PlanningConfig.min_std must be in [0, init_std], got {self.min_std}.")

    @property
    def elites(self) -> int:
        return max(1, round(self.elite_fraction * self.samples))

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "PlanningConfig":
        """``full``: the search the issue measured with the simulator (CEM, horizon 8, 128 samples, 3
        iterations, execute 2), also the GPU setting for world models; ``cpu``: a search small enough for the
        tiny world model on 2 CPU cores (horizon 4, 16 samples, 2 iterations, 2 Euler steps: 320 frame
        evaluations of the DiT per MPC step)."""
        presets = {
            "full": cls(),
            "cpu": cls(horizon=4, samples=16, iterations=2, elite_fraction=0.25, euler_steps=2),
        }
        if name not in presets:
            raise ValueError(f"Unknown PlanningConfig preset {name!r}; choose one of {sorted(presets)}.")
        known = {f.name for f in fields(cls)}
        if set(overrides) - known:
            raise ValueError(f"Unknown PlanningConfig fields {sorted(set(overrides) - known)}.")
        return replace(presets[name], **overrides)
