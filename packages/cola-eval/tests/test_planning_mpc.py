"""CEM and MPPI on known costs, the receding-horizon warm start, and the planning config's checks."""

import pytest
import torch
from cola_eval.planning import MPCPlanner, PlanningConfig, cem, mppi
from cola_eval.planning.costs import score_plans
from hypothesis import given, settings
from hypothesis import strategies as st

TARGET = torch.tensor([[0.5, -0.3], [0.2, 0.8], [-0.6, 0.1], [0.0, -0.9]])


def distance_to_target(candidates: torch.Tensor) -> torch.Tensor:
    return (candidates - TARGET).pow(2).sum(dim=(1, 2))


@pytest.mark.parametrize("optimizer", [cem, mppi])
def test_optimizers_find_the_minimum_of_a_quadratic(optimizer):
    config = PlanningConfig(horizon=4, samples=256, iterations=8, elite_fraction=0.05, init_std=0.6)
    mean = optimizer(distance_to_target, torch.zeros(4, 2), config, torch.Generator().manual_seed(0))
    start_cost = distance_to_target(torch.zeros(1, 4, 2)).item()
    assert distance_to_target(mean[None]).item() < 0.05 * start_cost


def test_cem_improves_with_iterations():
    costs = []
    for iterations in (1, 4):
        config = PlanningConfig(horizon=4, samples=64, iterations=iterations, init_std=0.6)
        mean = cem(distance_to_target, torch.zeros(4, 2), config, torch.Generator().manual_seed(1))
        costs.append(distance_to_target(mean[None]).item())
    assert costs[1] < costs[0]


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**16), method=st.sampled_from(["cem", "mppi"]))
def test_plans_stay_within_the_action_bounds(seed, method):
    config = PlanningConfig(method=method, horizon=3, samples=16, iterations=2, init_std=2.0)
    far_away = torch.full((3, 2), 5.0)
    mean = MPCPlanner(config, seed=seed).plan(lambda c: (c - far_away).pow(2).sum(dim=(1, 2)))
    assert mean.shape == (config.execute_steps, 2)
    assert mean.abs().max() <= 1.0


def test_planner_executes_the_head_and_warm_starts_from_the_tail():
    config = PlanningConfig(horizon=4, samples=256, iterations=6, execute_steps=2, elite_fraction=0.05)
    planner = MPCPlanner(config, seed=0)
    executed = planner.plan(distance_to_target)
    assert (executed - TARGET[:2]).abs().max() < 0.15
    assert (planner.mean[:2] - TARGET[2:]).abs().max() < 0.15
    assert torch.equal(planner.mean[2:], torch.zeros(2, 2))
    planner.reset()
    assert torch.equal(planner.mean, torch.zeros(4, 2))


def test_same_seed_same_plan():
    config = PlanningConfig(horizon=4, samples=32, iterations=2)
    first = MPCPlanner(config, seed=3).plan(distance_to_target)
    second = MPCPlanner(config, seed=3).plan(distance_to_target)
    assert torch.equal(first, second)


def test_nan_costs_are_never_chosen():
    config = PlanningConfig(horizon=4, samples=64, iterations=3, elite_fraction=0.1)

    def cost(candidates):
        values = distance_to_target(candidates)
        return torch.where(candidates[:, 0, 0] > 0.6, torch.nan, values)

    mean = cem(cost, torch.zeros(4, 2), config, torch.Generator().manual_seed(0))
    assert torch.isfinite(mean).all()


def test_cem_breaks_ties_at_random():
    """When every sample costs the same (no candidate touches the block yet), the elite must be a random
    draw, not the first index, which always holds the unperturbed mean."""
    config = PlanningConfig(horizon=2, samples=32, iterations=1, elite_fraction=1 / 32)
    picks = []
    for seed in range(4):
        seen = []

        def flat(candidates: torch.Tensor, seen: list = seen) -> torch.Tensor:
            seen.append(candidates)
            return torch.zeros(len(candidates))

        mean = cem(flat, torch.zeros(2, 2), config, torch.Generator().manual_seed(seed))
        picks.append(next(i for i, c in enumerate(seen[0]) if torch.equal(c, mean)))
    assert any(pick != 0 for pick in picks), picks


def test_a_plan_is_worth_its_best_or_its_last_step():
    step_costs = torch.tensor([[5.0, 1.0, 4.0], [3.0, 3.0, 2.0]])
    assert torch.equal(score_plans(step_costs, "best_step"), torch.tensor([1.0, 2.0]))
    assert torch.equal(score_plans(step_costs, "last_step"), torch.tensor([4.0, 2.0]))
    with pytest.raises(ValueError, match=r"\[S, H\]"):
        score_plans(torch.zeros(3), "best_step")
    with pytest.raises(ValueError, match="plan_score"):
        score_plans(step_costs, "mean")


def test_config_errors_and_presets():
    with pytest.raises(ValueError, match="method"):
        PlanningConfig(method="gradient")
    with pytest.raises(ValueError, match="plan_score"):
        PlanningConfig(plan_score="average")
    with pytest.raises(ValueError, match="execute_steps"):
        PlanningConfig(horizon=2, execute_steps=3)
    with pytest.raises(ValueError, match="samples"):
        PlanningConfig(samples=0)
    with pytest.raises(ValueError, match="elite_fraction"):
        PlanningConfig(elite_fraction=0.0)
    with pytest.raises(ValueError, match="preset"):
        PlanningConfig.preset("huge")
    with pytest.raises(ValueError, match="fields"):
        PlanningConfig.preset("cpu", horizons=3)
    cpu = PlanningConfig.preset("cpu")
    assert cpu.samples == 16 and cpu.euler_steps == 2 and cpu.elites == 4
    assert PlanningConfig.preset("full").elites == 13
    with pytest.raises(ValueError, match="one value per sample"):
        cem(lambda c: torch.zeros(3), torch.zeros(4, 2), PlanningConfig(horizon=4), torch.Generator())
