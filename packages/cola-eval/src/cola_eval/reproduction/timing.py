"""The wall-time estimate printed at the start: per-step timings measured here, now, times the work left.

Each stage kind trains a few steps on fresh models and the real clips; sampling, planning, the readout and the
adapter are timed the same way. The work left counts only units without their marker, and runs that stopped
mid-way from their last checkpoint.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from cola_train.data.pusht_layout import DELTA_COLUMNS

TIMED_STEPS = 3
STAGES = ("pretrain", "lam_recon", "wm_finetune", "warmup", "joint")


def stage_seconds_per_step(driver: Any, stage: str, seed: int) -> float:
    """Mean seconds per training step of ``stage`` (after one untimed step), from the engine's own log."""
    from cola_train import build_models, run_stages

    from cola_eval.reproduction.plan import Branch, run_config

    branch = Branch("timing", (stage,), {stage: TIMED_STEPS + 1}, None, "timing")
    config = run_config(driver.experiment, branch, seed, driver.data_path)
    values = config.to_dict()
    values["train"].update(log_every=1, progress=False)
    config = type(config).from_dict(values)
    models = build_models(config, with_decoder=stage == "lam_recon")
    with tempfile.TemporaryDirectory() as folder:
        run_stages(config, models, driver.train_data(config), [stage], run_dir=Path(folder))
        records = [json.loads(line) for line in (Path(folder) / "metrics.jsonl").read_text().splitlines()]
    rates = [r["steps_per_s"] for r in records if r["step"] >= 1]
    return sum(1.0 / rate for rate in rates) / len(rates)


def _timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def evaluation_timings(driver: Any) -> dict[str, float]:
    """Seconds per unit of each evaluation part, measured with fresh (untrained) models of the run's size."""
    from cola_train import build_models
    from cola_train.data import ClipDataset, render_frame, restore_state
    from cola_wm import sample

    from cola_eval.adapter import ActionAdapter, AdapterConfig, fit_adapter
    from cola_eval.planning import SimulatorModel, WorldModel, train_readout
    from cola_eval.planning.models import Observation
    from cola_eval.planning.readout import frames_to_tensor
    from cola_eval.reproduction.plan import Branch, run_config

    experiment = driver.experiment
    settings, planning = experiment.eval, experiment.planning_config()
    config = run_config(
        experiment, Branch("timing", ("joint",), {"joint": 1}, None, "timing"), 0, driver.data_path
    )
    models = build_models(config, with_decoder=False)
    lam, wm = models.lam.eval(), models.wm.eval()
    episodes = driver.episodes()
    frames = settings.frames or config.data.clip_length
    clips = ClipDataset(episodes[:2], frames, size=config.data.frame_size)
    batch = settings.batch_size
    video = torch.stack([clips[i % len(clips)]["video"] for i in range(batch)])
    timings: dict[str, float] = {}
    with torch.no_grad():
        lam.encode(video)
        timings["encode_per_clip"] = _timed(lambda: lam.encode(video)) / batch
        device_wm, device_video = wm.to(driver.device), video.to(driver.device)
        actions = torch.zeros(batch, frames - 1, wm.config.action_dim, device=driver.device)
        sample(device_wm, device_video[:, :1], actions, num_frames=frames, steps=1)
        steps = 2
        seconds = _timed(
            lambda: sample(device_wm, device_video[:, :1], actions, num_frames=frames, steps=steps)
        )
        timings["sample_per_clip_step"] = seconds / (batch * steps)
        wm.cpu()
    adapter = ActionAdapter(
        AdapterConfig(
            action_in=2,
            tokens_per_action=lam.config.tokens_per_action,
            num_codes=lam.config.num_codes,
            code_dim=lam.config.code_dim,
            frame_size=lam.config.frame_size,
            action_columns=list(DELTA_COLUMNS),
        )
    )
    fake_actions = torch.randn(512, 2)
    fake_codes = torch.randint(0, lam.config.num_codes, (512, lam.config.tokens_per_action))
    # The first fit pays torch's one-time optimizer setup (~8 s here, 100x a step): time a second one.
    fit_adapter(adapter, fake_actions, fake_codes, None, steps=1)
    timings["adapter_step"] = (
        _timed(lambda: fit_adapter(adapter, fake_actions, fake_codes, None, steps=10)) / 10
    )
    frames_np = episodes[0].frames[:64]
    poses = episodes[0].states[:64, 2:5]
    timings["readout_step"] = _timed(lambda: train_readout(frames_np, poses, steps=3)) / 3
    if experiment.planning_runs != "none":
        samples, horizon = planning.samples, planning.horizon
        env = restore_state(episodes[0], 0)
        observation = Observation(env, frames_to_tensor(render_frame(env)), env.unwrapped.agent.position)
        deltas = torch.zeros(samples, horizon, 2).numpy()
        model = WorldModel(wm.to(driver.device), adapter.to(driver.device), euler_steps=planning.euler_steps)
        timings["wm_predict"] = _timed(lambda: model.predict(observation, deltas, True))
        timings["oracle_predict"] = _timed(lambda: SimulatorModel().predict(observation, deltas, False))
    return timings


def _checkpoint_step(run_dir: Path) -> int:
    from cola_train.checkpoint import latest_checkpoint

    latest = latest_checkpoint(run_dir / "checkpoints")
    return int(latest.stem.split("-")[1]) if latest else 0


def run_steps_left(driver: Any, seed: int, branch: Any) -> dict[str, int]:
    """Steps of each stage ``branch`` of ``seed`` still has to train (none once it is done); the adaptive
    joint run is counted as if its warm-up ran to the cap."""
    run_dir = driver.run_dir(seed, branch.name)
    if driver.done(run_dir):
        return {}
    # a branch starts from its parent's weights with its own step count at 0 (cola-train's init_from)
    done = _checkpoint_step(run_dir)
    left = {}
    for stage in branch.stages:
        if (branch.name != "pretrain" and stage == "pretrain") or (
            branch.name == "cola-adaptive" and stage == "warmup"
        ):
            continue  # trained by the parent run
        skip = min(done, branch.steps[stage])
        done -= skip
        left[stage] = branch.steps[stage] - skip
    return left


def estimate_remaining(
    driver: Any, say: Callable[[str], None], measured: dict[str, Any] | None = None, workers: int = 1
) -> dict[str, Any]:
    """Estimate and print the wall time of everything not yet done on ``workers`` workers; returns the
    figures.

    The timings are measured now, unless ``measured`` (an earlier call's figures on this device and thread
    count) is given. Each job's seconds come from them; the wall time is the schedule of those jobs on the
    workers (:func:`cola_eval.reproduction.jobs.makespan`), timed as if each worker had the machine to itself.
    """
    from cola_eval.reproduction.jobs import Job, makespan
    from cola_eval.reproduction.plan import adaptive_joint_branch, branches

    experiment = driver.experiment
    settings, planning = experiment.eval, experiment.planning_config()
    cap = round(experiment.adaptive_max_fraction * experiment.budget)
    runs = {b.name: b for b in [*branches(experiment), adaptive_joint_branch(experiment, cap)]}
    steps_left = {
        (seed, name): run_steps_left(driver, seed, branch)
        for seed in experiment.seeds
        for name, branch in runs.items()
    }
    left: dict[str, int] = {}
    for steps in steps_left.values():
        for stage, count in steps.items():
            left[stage] = left.get(stage, 0) + count
    seed = experiment.seeds[0]
    if measured is None:
        say("measuring per-step timings for the estimate (a few steps of each stage kind)")
        per_step = {stage: stage_seconds_per_step(driver, stage, seed) for stage in STAGES}
        evaluation = evaluation_timings(driver)
        measured_at = time.strftime("%Y-%m-%d %H:%M:%S")
    else:
        per_step, evaluation = measured["per_step_seconds"], measured["evaluation_timings"]
        measured_at = measured["measured_at"]
        say(f"per-step timings measured {measured_at} (delete estimate.json to measure again)")
        if driver.planning_runs() and "wm_predict" not in evaluation:
            say("measuring the planning timings (the earlier calls did not plan)")
            evaluation = evaluation_timings(driver)
    per_step = {stage: seconds for stage, seconds in per_step.items() if left.get(stage, 0) > 0}
    training = sum(left[stage] * per_step[stage] for stage in per_step)

    clips = settings.max_clips
    guidance = 2 if settings.guidance_scale != 1.0 else 1
    rollout = 3 * clips * settings.sampling_steps * guidance * evaluation["sample_per_clip_step"]
    labelled = settings.adapter_fraction * _train_clip_count(driver)
    encode = (4 * clips + labelled) * evaluation["encode_per_clip"]
    adapter = settings.adapter_steps * evaluation["adapter_step"]
    per_run = rollout + encode + adapter
    pairs = settings.planning_pairs
    # Each planned action lasts one transition: frame_skip env steps of the budget.
    repeat = int(experiment.run.get("data", {}).get("frame_skip", 1))
    mpc_steps = pairs * math.ceil(planning.budget / (planning.execute_steps * repeat))
    iterations = planning.iterations
    plan_run = adapter + mpc_steps * iterations * evaluation.get("wm_predict", 0.0)
    reference = 0.0
    if "wm_predict" in evaluation:
        # The reference plans as many pairs at once as the job has torch threads (SharedEvaluation); this
        # process runs at a worker's thread count.
        processes = max(1, min(pairs, torch.get_num_threads()))
        reference = mpc_steps * iterations * evaluation["oracle_predict"] * repeat / processes
        if not (driver.out / "shared" / "readout" / "model.safetensors").exists():
            reference += settings.readout_steps * evaluation["readout_step"]

    jobs = driver.jobs()
    seconds: dict[str, float] = {}
    for job in jobs:
        if driver.job_done(job):
            continue
        if job.kind == "train":
            steps = steps_left[(job.seed, job.run)]
            seconds[job.name] = sum(count * per_step.get(stage, 0.0) for stage, count in steps.items())
        elif job.kind == "evaluate":
            seconds[job.name] = per_run
        elif job.kind == "plan":
            seconds[job.name] = plan_run
        else:
            seconds[job.name] = reference
    runs_left = sum(job.kind == "evaluate" and job.name in seconds for job in jobs)
    planned_left = sum(job.kind == "plan" and job.name in seconds for job in jobs)
    reference_left = reference if Job("shared").name in seconds else 0.0
    evaluation_total = runs_left * per_run + planned_left * plan_run + reference_left
    total = makespan(jobs, seconds, workers)
    say(
        "measured: "
        + ", ".join(f"{stage} {seconds:.3f} s/step" for stage, seconds in per_step.items())
        + f"; sampling {evaluation['sample_per_clip_step'] * 1000:.1f} ms per clip per Euler step"
        + (
            f"; planning {evaluation['wm_predict'] * iterations:.2f} s per world-model MPC step"
            if "wm_predict" in evaluation
            else ""
        )
    )
    say(
        f"estimated wall time left: {total / 60:.1f} min on {workers} worker(s) for "
        f"{(training + evaluation_total) / 60:.1f} min of work (training {training / 60:.1f} min for "
        + ", ".join(f"{steps} {stage}" for stage, steps in left.items() if steps)
        + f" steps; evaluation {evaluation_total / 60:.1f} min for {runs_left} runs and planning with "
        + f"{planned_left}"
        + "). Timings are measured now, with one worker busy: workers running side by side share the "
        "memory bandwidth and run somewhat slower; a machine busy now makes the estimate pessimistic."
    )
    return {
        "per_step_seconds": per_step,
        "evaluation_timings": evaluation,
        "steps_left": left,
        "training_seconds": training,
        "evaluation_seconds": evaluation_total,
        "work_seconds": training + evaluation_total,
        "workers": workers,
        "total_seconds": total,
        "measured_at": measured_at,
    }


def _train_clip_count(driver: Any) -> int:
    from cola_train.data import split_of

    episodes = driver.episodes()
    split = split_of([e.index for e in episodes])
    frames = driver.experiment.eval.frames or int(driver.experiment.run.get("data", {}).get("clip_length", 8))
    return sum(max(len(e) - frames + 1, 0) for e in episodes if split[e.index] == "train")
