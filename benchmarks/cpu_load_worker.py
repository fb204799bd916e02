"""One measurement of benchmarks/bench_cpu_load.py, in a fresh process: steps/s of the quickstart's pretrain,
warm-up and joint steps and of one MPC planning step, under the thread settings the parent put in the
environment (OMP_* must be set before torch starts its thread pool).

    python benchmarks/cpu_load_worker.py '{"threads": 1, "interop": null, "bf16": false, ...}'

prints one JSON line: {"pretrain": steps/s, "warmup": ..., "joint": ..., "mpc": ... or null, "threads": ...}.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from typing import Any

import torch

STAGES = ("pretrain", "warmup", "joint")


class SyntheticClips:
    """Clips of the quickstart's shape, values in [-1, 1] (a step's cost does not depend on them)."""

    def __init__(self, count: int, frames: int, size: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.video = torch.rand(count, frames, 3, size, size, generator=generator) * 2 - 1

    def __len__(self) -> int:
        return len(self.video)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"video": self.video[index]}


def measure(setting: dict[str, Any]) -> dict[str, Any]:
    """Steps/s of each stage's training step and of one MPC step under ``setting``."""
    if setting["interop"] is not None:
        # Only possible before any inter-op work, hence first thing.
        torch.set_num_interop_threads(setting["interop"])
    session = _session(setting)
    rates: dict[str, Any] = {}
    for name in STAGES:
        rates[name] = _stage_rate(session, name, setting)
    rates["threads_at_end"] = torch.get_num_threads()
    rates["mpc"] = None if setting["threads"] == 0 else _mpc_rate(session, setting)
    return rates


def _session(setting: dict[str, Any]) -> Any:
    from cola_train import build_models, load_config
    from cola_train.distributed import init_distributed
    from cola_train.session import Session

    config = load_config(
        preset="quickstart",
        overrides=[
            "train.device=cpu",
            "train.progress=false",
            f"train.threads={setting['threads']}",
            f"train.batch_size={setting['batch']}",
            # The dry run only checks that everything runs: 3-frame clips make its steps cheap.
            *(["data.clip_length=3"] if setting["dry"] else []),
        ],
    )
    data = SyntheticClips(64, config.data.clip_length, config.data.frame_size)
    models = build_models(config)
    return Session(config=config, models=models, dataset=data, context=init_distributed("cpu"))


def _stage_rate(session: Any, name: str, setting: dict[str, Any]) -> float:
    """Steps/s of stage ``name``: timed steps over their time after the warm-up steps, the same for a fixed
    count and the tuner (its probes cost steps, and that is part of its figure; a median would leave out
    the slow steps of a fixed count and not the tuner's)."""
    from cola_train.loop import start_stage, train_step

    stage = start_stage(session, name)
    if setting["bf16"]:
        stage.autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    for step in range(setting["warmup_steps"]):
        train_step(stage, step)
    adaptive = setting["threads"] == 0
    steps = setting["adaptive_steps"] if adaptive else setting["steps"]
    session.threads.start()
    times = []
    for step in range(setting["warmup_steps"], setting["warmup_steps"] + steps):
        begin = time.perf_counter()
        train_step(stage, step)
        session.threads.step_done()
        times.append(time.perf_counter() - begin)
    return len(times) / sum(times)


def _mpc_rate(session: Any, setting: dict[str, Any]) -> float:
    """MPC steps/s with the quickstart's world model behind an adapter for its LAM (random weights)."""
    import numpy as np
    from cola_eval.adapter import ActionAdapter, AdapterConfig
    from cola_eval.planning import MPCPlanner, PlanningConfig, WorldModel
    from cola_eval.planning.costs import Goal, PixelMSECost
    from cola_eval.planning.evaluate import make_cost_fn
    from cola_eval.planning.models import Observation
    from cola_eval.planning.readout import frames_to_tensor
    from cola_train.data import make_pusht_env, pusht_state, render_frame

    lam = session.models.lam.config
    config = (
        PlanningConfig(horizon=2, samples=4, iterations=1, execute_steps=1, euler_steps=1)
        if setting["dry"]
        else PlanningConfig.preset("cpu")
    )
    adapter = ActionAdapter(
        AdapterConfig(tokens_per_action=lam.tokens_per_action, num_codes=lam.num_codes, code_dim=lam.code_dim)
    )
    model = WorldModel(session.models.wm, adapter, euler_steps=config.euler_steps)
    env = make_pusht_env()
    env.reset(seed=0)
    frame = frames_to_tensor(render_frame(env))
    goal = Goal(frame.flip(-1), pusht_state(env) + np.float32([0, 0, 30, 0, 0.3]))
    observation = Observation(env, frame, pusht_state(env)[:2])
    planner = MPCPlanner(config, seed=0)
    cost_fn = make_cost_fn(model, PixelMSECost(), observation, goal, config)
    planner.plan(cost_fn)  # warm-up
    times = []
    for _ in range(setting["mpc_steps"]):
        begin = time.perf_counter()
        planner.plan(cost_fn)
        times.append(time.perf_counter() - begin)
    return 1 / statistics.median(times)


if __name__ == "__main__":
    print(json.dumps(measure(json.loads(sys.argv[1]))))
