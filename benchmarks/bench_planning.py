"""Seconds per MPC step (all samples, all CEM iterations) for visual planning on PushT.

World model: the `tiny` ActionConditionedDiT driven through an ActionAdapter sized for the `tiny` LAM; every
candidate of a CEM iteration is rolled out in one batch, with random weights (a step's cost does not depend on
them). Oracle: the same MPC step with the true simulator as the model (pose cost on simulator states).

COLA_BENCH_PLANNING picks the size: `smoke` (the CPU default, seconds, for CI), `cpu` (the `cpu` planning
preset: horizon 4, 16 samples, 2 iterations, 2 Euler steps; target <= 2 s per step; oracle with 32 samples)
or `full` (the CUDA default: the `full` preset, horizon 8, 128 samples, 3 iterations, 3 Euler steps; target
<= 100 ms per step on an H100).

    COLA_BENCH_PLANNING=cpu uv run pytest benchmarks/bench_planning.py -s --benchmark-disable
"""

import os
import time

import numpy as np
import torch
from cola_eval.adapter import ActionAdapter, AdapterConfig
from cola_eval.planning import MPCPlanner, PlanningConfig, SimulatorModel, WorldModel
from cola_eval.planning.costs import Goal, PixelMSECost, StatePoseCost
from cola_eval.planning.evaluate import make_cost_fn
from cola_eval.planning.models import Observation
from cola_eval.planning.readout import frames_to_tensor
from cola_lam import LAMConfig
from cola_train.data import make_pusht_env, pusht_state, render_frame
from cola_wm import ActionConditionedDiT, DiTConfig

CUDA = torch.cuda.is_available()
SIZE = os.environ.get("COLA_BENCH_PLANNING", "full" if CUDA else "smoke")
SMOKE = PlanningConfig(horizon=2, samples=4, iterations=1, execute_steps=1, euler_steps=1)
WORLD_MODEL_CONFIGS = {
    "smoke": SMOKE,
    "cpu": PlanningConfig.preset("cpu"),
    "full": PlanningConfig.preset("full"),
}
ORACLE_CONFIGS = {
    "smoke": PlanningConfig(horizon=4, samples=8, iterations=1),
    "cpu": PlanningConfig.preset("full", samples=32),
    "full": PlanningConfig.preset("full"),
}
if SIZE not in WORLD_MODEL_CONFIGS:
    raise ValueError(f"COLA_BENCH_PLANNING must be one of {sorted(WORLD_MODEL_CONFIGS)}, got {SIZE!r}")
REPEATS = 1 if SIZE == "smoke" else 3


def _observation_and_goal() -> tuple[Observation, Goal]:
    env = make_pusht_env()
    env.reset(seed=0)
    goal = Goal(
        frames_to_tensor(render_frame(env)).flip(-1), pusht_state(env) + np.float32([0, 0, 30, 0, 0.3])
    )
    return Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2]), goal


def _seconds_per_step(config: PlanningConfig, model, cost, repeats: int = REPEATS) -> float:
    observation, goal = _observation_and_goal()
    planner = MPCPlanner(config, seed=0)
    cost_fn = make_cost_fn(model, cost, observation, goal, config)

    planner.plan(cost_fn)  # warm-up
    times = []
    for _ in range(repeats):
        if CUDA:
            torch.cuda.synchronize()
        started = time.perf_counter()
        planner.plan(cost_fn)
        if CUDA:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def _world_model(config: PlanningConfig, device: str) -> WorldModel:
    """The `tiny` DiT behind an ActionAdapter sized for the `tiny` LAM, random weights."""
    lam = LAMConfig.preset("tiny")
    wm = ActionConditionedDiT(DiTConfig.preset("tiny", action_dim=lam.action_dim)).to(device)
    adapter = ActionAdapter(
        AdapterConfig(tokens_per_action=lam.tokens_per_action, num_codes=lam.num_codes, code_dim=lam.code_dim)
    )
    return WorldModel(wm, adapter, euler_steps=config.euler_steps)


def test_world_model_mpc_step(benchmark):
    torch.set_num_threads(min(torch.get_num_threads(), os.cpu_count() or 1))
    config = WORLD_MODEL_CONFIGS[SIZE]
    device = "cuda" if CUDA else "cpu"
    model = _world_model(config, device)
    seconds = benchmark.pedantic(
        _seconds_per_step, args=(config, model, PixelMSECost()), rounds=1, iterations=1
    )
    print(
        f"\nworld model MPC step ({SIZE}, {device}, tiny DiT, horizon {config.horizon}, "
        f"{config.samples} samples, "
        f"{config.iterations} CEM iterations, {config.euler_steps} Euler steps): {seconds:.3f} s per step"
    )
    assert seconds > 0


def test_oracle_mpc_step(benchmark):
    config = ORACLE_CONFIGS[SIZE]
    seconds = benchmark.pedantic(
        _seconds_per_step, args=(config, SimulatorModel(), StatePoseCost()), rounds=1, iterations=1
    )
    print(
        f"\noracle MPC step ({SIZE}, simulator, horizon {config.horizon}, {config.samples} samples, "
        f"{config.iterations} CEM iterations): {seconds:.3f} s per step"
    )
    assert seconds > 0
