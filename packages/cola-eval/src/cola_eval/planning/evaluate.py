"""evaluate_planning: run one planner (world model, oracle simulator or random policy) over fixed start/goal
pairs.

For each pair the real env is rebuilt at the start by replay; every MPC step rolls all candidate sequences out
in the model, scores them against the goal frame, executes ``execute_steps`` actions in the real env and
replans, for at most ``budget`` env steps. Success is checked after every executed step from the simulator's
state. An episode runs until the strict rule holds or the budget is spent, so both columns come from the same
runs.
"""

import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from cola_train.data import Episode, pusht_state, render_frame
from tqdm import tqdm

from cola_eval.planning.config import PlanningConfig
from cola_eval.planning.costs import BlockPoseCost, Cost, Goal, PixelMSECost, StatePoseCost, score_plans
from cola_eval.planning.models import Observation, SimulatorModel, WorldModel, env_target
from cola_eval.planning.mpc import MPCPlanner
from cola_eval.planning.protocol import (
    PlanningPair,
    block_errors,
    goal_of,
    is_strict_success,
    is_success,
    make_pairs,
    restore_exactly,
)
from cola_eval.planning.readout import StateReadout, frames_to_tensor

COSTS = ("pixel_mse", "block_pose", "state_pose")


def resolve_cost(cost: str | Cost, readout: StateReadout | None) -> Cost:
    if not isinstance(cost, str):
        return cost
    if cost == "pixel_mse":
        return PixelMSECost()
    if cost == "state_pose":
        return StatePoseCost()
    if cost == "block_pose":
        if readout is None:
            raise ValueError(
                "the block_pose cost needs a trained StateReadout: pass readout=train_readout(...)."
            )
        return BlockPoseCost(readout)
    raise ValueError(f"unknown cost {cost!r}; choose one of {COSTS} or pass a cost object.")


def resolve_model(
    model: str | WorldModel | SimulatorModel, action_repeat: int = 1
) -> WorldModel | SimulatorModel | None:
    """None stands for the random policy; "oracle" holds each action for ``action_repeat`` env steps."""
    if isinstance(model, SimulatorModel) and model.action_repeat != action_repeat:
        raise ValueError(
            f"the SimulatorModel holds each action for {model.action_repeat} env steps but the planner "
            f"executes it for {action_repeat} (PlanningConfig.action_repeat); build it with "
            f"SimulatorModel(action_repeat={action_repeat})."
        )
    if isinstance(model, WorldModel | SimulatorModel):
        return model
    if model == "oracle":
        return SimulatorModel(action_repeat)
    if model == "random":
        return None
    raise ValueError(f"unknown model {model!r}; pass 'oracle', 'random' or a WorldModel(wm, adapter).")


def make_cost_fn(
    model: WorldModel | SimulatorModel,
    cost: Cost,
    observation: Observation,
    goal: Goal,
    config: PlanningConfig,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The planner's objective at ``observation``: normalised candidates ``[S, H, 2]`` -> a cost per plan."""

    def cost_fn(candidates: torch.Tensor) -> torch.Tensor:
        deltas = candidates.numpy() * config.max_delta
        step_costs = cost(model.predict(observation, deltas, cost.needs_frames), goal)
        return score_plans(step_costs, config.plan_score)

    return cost_fn


PairJob = tuple[PlanningPair, int]
PlanContext = tuple[Sequence[Episode], Any, Any, PlanningConfig]
# What a forked planning process plans with: set before the fork, so the episodes are not pickled.
_forked_context: PlanContext | None = None


def _plan_pair(job: PairJob, context: PlanContext) -> tuple[dict, list[float]]:
    episodes, model, cost, config = context
    pair, pair_seed = job
    step_seconds: list[float] = []
    record = run_pair(episodes[pair.episode], pair, model, cost, config, pair_seed, step_seconds)
    return record, step_seconds


def _plan_pair_in_fork(job: PairJob) -> tuple[dict, list[float]]:
    assert _forked_context is not None
    return _plan_pair(job, _forked_context)


def _one_torch_thread() -> None:
    torch.set_num_threads(1)


def _plan_pairs_in_processes(
    jobs: list[PairJob], context: PlanContext, workers: int, bar: tqdm
) -> list[tuple[dict, list[float]]]:
    global _forked_context
    if "fork" not in multiprocessing.get_all_start_methods():
        raise ValueError(
            "planning pairs in parallel needs fork processes, which this platform lacks: workers=1"
        )
    _forked_context = context
    try:
        with multiprocessing.get_context("fork").Pool(workers, initializer=_one_torch_thread) as pool:
            outcomes = []
            for outcome in pool.imap(_plan_pair_in_fork, jobs):
                outcomes.append(outcome)
                bar.update()
    finally:
        _forked_context = None
    return outcomes


def run_pair(
    episode: Episode,
    pair: PlanningPair,
    model: WorldModel | SimulatorModel | None,
    cost: Cost | None,
    config: PlanningConfig,
    seed: int,
    step_seconds: list[float],
) -> dict:
    """Plan from one start towards one goal; returns the pair's outcome. Each planned action's target is
    held for ``config.action_repeat`` env steps; success is checked after every env step. MPC step timings
    go to ``step_seconds``."""
    goal_frame, goal_state = goal_of(episode, pair)
    env = restore_exactly(episode, pair.start)
    goal = Goal(frame=frames_to_tensor(goal_frame), state=goal_state)
    planner = MPCPlanner(config, seed=seed)
    random_policy = np.random.default_rng(seed)
    steps, success_at, strict_at = 0, None, None
    while steps < config.budget and strict_at is None:
        if model is None:
            actions = random_policy.uniform(-1.0, 1.0, size=(1, 2))
        else:
            observation = Observation(env, frames_to_tensor(render_frame(env)), pusht_state(env)[:2])
            cost_fn = make_cost_fn(model, cost, observation, goal, config)
            started = time.perf_counter()
            actions = planner.plan(cost_fn).numpy()
            step_seconds.append(time.perf_counter() - started)
        for action in actions:
            target = env_target(env.unwrapped.agent.position, action * config.max_delta)
            for _ in range(config.action_repeat):
                if steps == config.budget or strict_at is not None:
                    break
                env.step(target)
                steps += 1
                state = pusht_state(env)
                if success_at is None and is_success(state, goal_state):
                    success_at = steps
                if is_strict_success(state, goal_state):
                    strict_at = steps
    block, angle, agent = block_errors(pusht_state(env), goal_state)
    return {
        "episode": episode.index,
        "start": pair.start,
        "goal": pair.goal,
        "success": success_at is not None,
        "success_strict": strict_at is not None,
        "steps_to_success": success_at,
        "final_block_error_px": block,
        "final_angle_error_rad": angle,
        "final_agent_error_px": agent,
    }


def evaluate_planning(
    episodes: Sequence[Episode],
    model: str | WorldModel | SimulatorModel = "oracle",
    cost: str | Cost = "block_pose",
    readout: StateReadout | None = None,
    config: PlanningConfig | None = None,
    num_pairs: int = 30,
    seed: int = 0,
    pairs: Sequence[PlanningPair] | None = None,
    progress: bool = False,
    workers: int = 1,
) -> dict:
    """Success rates of one planner over a fixed, seeded set of start/goal pairs from held-out ``episodes``.

    ``model``: ``WorldModel(wm, adapter, euler_steps)``, ``"oracle"`` (the true simulator) or ``"random"`` (a
    uniformly random policy; the cost is then unused). ``cost``: ``"block_pose"`` (needs ``readout``),
    ``"pixel_mse"``, ``"state_pose"`` (oracle only) or a cost object. ``pairs`` defaults to
    ``make_pairs(episodes, num_pairs, config.goal_offset, seed)``, so runs with the same episodes, count and
    seed share their pairs. Returns ``success`` and ``success_strict`` rates, ``num_pairs``,
    ``seconds_per_mpc_step`` (None for the random policy), mean final errors and one record per pair.

    ``workers`` > 1 plans that many pairs at once in forked processes of one torch thread each, for the
    oracle and the random policy (their rollouts are the simulator's, on the CPU); each pair has its own
    seed, so the records are those of one process. A world model plans its pairs one after the other on its
    own device.
    """
    config = config or PlanningConfig()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    if len(episodes) == 0:
        raise ValueError(
            "the planning evaluation set is empty: pass held-out PushT episodes (load_episodes(...))."
        )
    planner_model = resolve_model(model, config.action_repeat)
    planner_cost = resolve_cost(cost, readout) if planner_model is not None else None
    if isinstance(planner_cost, StatePoseCost) and not isinstance(planner_model, SimulatorModel):
        raise ValueError("the state_pose cost reads simulator states, which only the oracle predicts.")
    pairs = list(pairs) if pairs is not None else make_pairs(episodes, num_pairs, config.goal_offset, seed)
    if not pairs:
        raise ValueError("no start/goal pairs to evaluate.")
    frame_size = int(episodes[pairs[0].episode].frames.shape[1])
    if planner_model is not None:
        planner_model.check_frame_size(frame_size)
    if isinstance(planner_cost, BlockPoseCost) and planner_cost.readout.config.frame_size != frame_size:
        raise ValueError(
            f"the readout was trained on {planner_cost.readout.config.frame_size}px frames but the "
            "episodes have "
            f"{frame_size}px frames; train it on this dataset."
        )
    if workers > 1 and isinstance(planner_model, WorldModel):
        raise ValueError(
            "workers > 1 plans pairs in parallel CPU processes, for the oracle and the random policy only; "
            "a world model plans on its own device: use workers=1"
        )
    jobs = [(pair, seed * 100_003 + i) for i, pair in enumerate(pairs)]
    context = (episodes, planner_model, planner_cost, config)
    bar = tqdm(total=len(jobs), desc="planning", disable=not progress)
    with bar:
        if workers == 1 or len(jobs) == 1:
            outcomes = []
            for job in jobs:
                outcomes.append(_plan_pair(job, context))
                bar.update()
        else:
            outcomes = _plan_pairs_in_processes(jobs, context, min(workers, len(jobs)), bar)
    records = [record for record, _ in outcomes]
    step_seconds = [seconds for _, steps in outcomes for seconds in steps]
    reached = [r["steps_to_success"] for r in records if r["steps_to_success"] is not None]
    return {
        "model": "random" if planner_model is None else planner_model.name,
        "cost": None if planner_cost is None else planner_cost.name,
        "method": "random" if planner_model is None else config.method,
        "success": float(np.mean([r["success"] for r in records])),
        "success_strict": float(np.mean([r["success_strict"] for r in records])),
        "num_pairs": len(records),
        "seconds_per_mpc_step": float(np.mean(step_seconds)) if step_seconds else None,
        "mpc_steps": len(step_seconds),
        "mean_steps_to_success": float(np.mean(reached)) if reached else None,
        "mean_final_block_error_px": float(np.mean([r["final_block_error_px"] for r in records])),
        "mean_final_angle_error_rad": float(np.mean([r["final_angle_error_rad"] for r in records])),
        "config": asdict(config),
        "pairs": records,
    }
