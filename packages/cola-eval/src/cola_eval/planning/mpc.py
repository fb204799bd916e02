"""Sampling-based model-predictive control: CEM and MPPI over bounded real-action sequences.

Both optimise a mean sequence ``[horizon, action_dim]`` in normalised units (each coordinate in [-1, 1])
against any cost function that scores a batch of sequences at once, so a world model rolls every sample out in
one batch. The first sample of every round is the current mean itself, so a good plan carried over from the
last replan is always scored.
"""

from collections.abc import Callable

import torch

from cola_eval.planning.config import PlanningConfig

CostFn = Callable[[torch.Tensor], torch.Tensor]


def _sample(mean: torch.Tensor, std: torch.Tensor, samples: int, generator: torch.Generator) -> torch.Tensor:
    noise = torch.randn((samples, *mean.shape), generator=generator)
    noise[0] = 0.0
    return (mean + std * noise).clamp(-1.0, 1.0)


def _cheapest(costs: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """Indices of the ``count`` lowest costs, ties broken at random. When all samples cost the same (no
    candidate touches the block yet), a plain argsort would always keep the first indices, among them the
    unperturbed mean: a bias towards the current plan that nothing in the costs asked for."""
    order = torch.randperm(len(costs), generator=generator)
    return order[costs[order].argsort(stable=True)[:count]]


def _score(cost_fn: CostFn, candidates: torch.Tensor) -> torch.Tensor:
    costs = cost_fn(candidates)
    if costs.shape != candidates.shape[:1]:
        raise ValueError(
            f"the cost must give one value per sample {tuple(candidates.shape[:1])}, got {tuple(costs.shape)}"
        )
    return torch.nan_to_num(costs.detach().cpu().double(), nan=float("inf"))


def cem(
    cost_fn: CostFn,
    mean: torch.Tensor,
    config: PlanningConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy method: sample, keep the ``config.elites`` cheapest, refit a diagonal Gaussian, repeat.
    Returns the final elite mean."""
    std = torch.full_like(mean, config.init_std)
    for _ in range(config.iterations):
        candidates = _sample(mean, std, config.samples, generator)
        elites = candidates[_cheapest(_score(cost_fn, candidates), config.elites, generator)]
        mean = elites.mean(0)
        std = elites.std(0, unbiased=False).clamp_min(config.min_std) if len(elites) > 1 else std
    return mean


def mppi(
    cost_fn: CostFn,
    mean: torch.Tensor,
    config: PlanningConfig,
    generator: torch.Generator,
) -> torch.Tensor:
    """Model-predictive path integral: the mean moves to the exponentially cost-weighted average of the
    samples; the sampling spread stays at ``config.init_std``."""
    std = torch.full_like(mean, config.init_std)
    for _ in range(config.iterations):
        candidates = _sample(mean, std, config.samples, generator)
        costs = _score(cost_fn, candidates)
        finite = costs.isfinite()
        if not finite.any():
            raise ValueError(
                "every sampled action sequence got a NaN or infinite cost; check the cost and model."
            )
        costs = torch.where(finite, costs, costs[finite].max())
        spread = (costs.max() - costs.min()).clamp_min(1e-12)
        weights = torch.softmax(-(costs - costs.min()) / (config.gamma * spread), dim=0).to(candidates.dtype)
        mean = (weights[:, None, None] * candidates).sum(0)
    return mean


OPTIMIZERS = {"cem": cem, "mppi": mppi}


class MPCPlanner:
    """Receding-horizon planning: optimise a sequence, hand back its first ``execute_steps`` actions, and
    start the next optimisation from the rest of it shifted forward (warm start)."""

    def __init__(self, config: PlanningConfig, action_dim: int = 2, seed: int = 0) -> None:
        self.config = config
        self.action_dim = action_dim
        self.generator = torch.Generator().manual_seed(seed)
        self.mean = torch.zeros(config.horizon, action_dim)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.generator.manual_seed(seed)
        self.mean = torch.zeros(self.config.horizon, self.action_dim)

    def plan(self, cost_fn: CostFn) -> torch.Tensor:
        """The next ``execute_steps`` normalised actions ``[execute_steps, action_dim]``."""
        mean = OPTIMIZERS[self.config.method](cost_fn, self.mean, self.config, self.generator)
        executed = self.config.execute_steps
        self.mean = torch.cat([mean[executed:], torch.zeros(executed, self.action_dim)])
        return mean[:executed]
