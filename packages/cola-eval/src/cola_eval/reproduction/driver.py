"""The reproduction's driver: the experiment's units (collect, train, evaluate, summarise) in one results
folder, resumable unit by unit (see :mod:`cola_eval.reproduction`)."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch

from cola_eval.reproduction.jobs import InlineWorkers, Job, ProcessWorkers, plan_jobs, run_jobs
from cola_eval.reproduction.plan import (
    Branch,
    Experiment,
    adaptive_joint_branch,
    branches,
    finished_stage_steps,
    methods,
    run_config,
    seed_branch,
)
from cola_eval.reproduction.shared import PLANNING_FILE, PLANNING_OPTIONS, planned_under_current_settings

OUT_GITIGNORE = "data/\n**/checkpoints/\n**/models/\n**/tensorboard/\n"


class Driver:
    """The experiment's units (collect, train, evaluate, summarise) in one results folder. The main process's
    driver schedules the jobs; each worker process has its own driver that runs them."""

    def __init__(
        self, experiment: Experiment, out: Path, max_minutes: float | None, tag: str = "reproduce"
    ) -> None:
        self.experiment = experiment
        self.tag = tag
        self.out = out.resolve()
        self.data_path = self.out / "data" / "pusht"
        self.started = time.perf_counter()
        self.max_minutes = max_minutes
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self._shared: Any = None
        self._episodes: Any = None
        self._train_data: Any = None

    # -- bookkeeping ---------------------------------------------------------------------------------------
    def say(self, message: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"[{self.tag} {time.strftime('%H:%M:%S')} +{elapsed / 60:5.1f} min] {message}", flush=True)

    def time_up(self) -> bool:
        return bool(self.max_minutes) and (time.perf_counter() - self.started) / 60 >= self.max_minutes

    def run_dir(self, seed: int, name: str) -> Path:
        return self.out / "runs" / f"seed{seed}" / name

    @staticmethod
    def done(path: Path) -> bool:
        return (path / "DONE").exists()

    @staticmethod
    def mark_done(path: Path, info: dict[str, Any]) -> None:
        write_json(path / "DONE", info)

    def episodes(self) -> list[Any]:
        """The collected PushT episodes, loaded once per process."""
        if self._episodes is None:
            from cola_train.data import load_episodes

            self._episodes = load_episodes(self.data_path)
        return self._episodes

    def train_data(self, config: Any) -> Any:
        """The training clips every run shares (the same data config for all), built once per process."""
        if self._train_data is None:
            from cola_train import load_dataset

            self._train_data = load_dataset(config)
        return self._train_data

    # -- units ---------------------------------------------------------------------------------------------
    def prepare(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / ".gitignore").write_text(OUT_GITIGNORE)
        record = self.out / "experiment.json"
        current = {"size": self.experiment.size, "config": experiment_record(self.experiment)}
        if record.exists():
            saved = json.loads(record.read_text())
            if comparable_config(saved.get("config") or {}) != comparable_config(current["config"]):
                raise ValueError(
                    f"{self.out} holds an experiment with another configuration ({saved.get('size')}); "
                    "use a new --out or the same --size and --seeds"
                )
            if saved["config"] != current["config"]:  # runs were added: record what this call plans
                write_json(record, {**saved, "config": current["config"]})
        else:
            write_json(record, {**current, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M")})
        self.collect_data()

    def collect_data(self) -> None:
        if (self.data_path / "meta" / "info.json").exists():
            return
        from cola_train.data import collect_pusht

        if self.data_path.exists():
            shutil.rmtree(self.data_path)  # an interrupted collection; collect_pusht wants an empty folder
        data = self.experiment.data
        self.say(f"collecting {data.episodes} PushT episodes of {data.episode_length} frames")
        collect_pusht(
            self.data_path,
            data.episodes,
            seed=data.collect_seed,
            episode_length=data.episode_length,
            frame_size=int(self.experiment.run.get("data", {}).get("frame_size", 64)),
            progress=False,  # one collecting process per core: nothing else runs yet
            use_videos=data.use_videos,
        )

    def branch(self, seed: int, name: str) -> Branch:
        if name == "cola-adaptive":
            used = finished_stage_steps(self.run_dir(seed, "adaptive-warmup"))["warmup"]
            return adaptive_joint_branch(self.experiment, used)
        return next(b for b in branches(self.experiment) if b.name == name)

    def train_branch(self, seed: int, name: str) -> None:
        from cola_train import train

        run_dir = self.run_dir(seed, name)
        if self.done(run_dir):
            return
        branch = self.branch(seed, name)
        config = run_config(self.experiment, branch, seed, self.data_path)
        if branch.parent is not None:
            config = seed_branch(self.run_dir(seed, branch.parent), self._parent_stages(branch), config)
        todo = [
            f"{stage} {branch.steps[stage]}"
            for stage in branch.stages
            if stage in branch.steps and (branch.parent is None or stage not in self._parent_stages(branch))
        ]
        self.say(f"seed {seed}: training {branch.name} ({branch.label}: {', '.join(todo)} steps)")
        started = time.perf_counter()
        train(config, run_dir, resume=True, data=self.train_data(config))
        steps = finished_stage_steps(run_dir)
        self.mark_done(run_dir, {"seconds": time.perf_counter() - started, "stage_steps": steps})
        self.say(f"seed {seed}: {branch.name} done in {(time.perf_counter() - started) / 60:.1f} min {steps}")

    def _parent_stages(self, branch: Branch) -> tuple[str, ...]:
        by_name = {b.name: b for b in branches(self.experiment)}
        parent = by_name.get(branch.parent or "")
        return parent.stages if parent else ("pretrain",)

    def evaluated_runs(self) -> list[str]:
        names = [b.name for b in branches(self.experiment) if b.name not in ("pretrain", "adaptive-warmup")]
        return [*names, "cola-adaptive"]

    def planning_runs(self) -> set[str]:
        choice = self.experiment.planning_runs
        if choice == "none":
            return set()
        return set(self.evaluated_runs()) if choice == "all" else set(methods(self.experiment).values())

    def shared(self) -> Any:
        from cola_eval.reproduction.shared import SharedEvaluation

        if self._shared is None:
            self._shared = SharedEvaluation.build(self.experiment, self.episodes(), self.out, self.say)
        return self._shared

    def evaluate(self, seed: int, name: str) -> None:
        target = self.run_dir(seed, name) / "evaluation.json"
        if target.exists():
            return
        self.say(f"seed {seed}: evaluating {name}")
        started = time.perf_counter()
        result = self.shared().evaluate(self.run_dir(seed, name))
        result.update(seed=seed, run=name, seconds=time.perf_counter() - started)
        write_json(target, result)
        self.say(f"seed {seed}: {name} evaluated in {result['seconds']:.0f} s: " + _headline(result))

    def plan(self, seed: int, name: str) -> None:
        target = self.run_dir(seed, name) / PLANNING_FILE
        if planned_under_current_settings(target, self.experiment):
            return
        pairs = self.experiment.eval.planning_pairs
        self.say(f"seed {seed}: planning with {name} on {pairs} start/goal pairs")
        started = time.perf_counter()
        result = self.shared().plan(self.run_dir(seed, name))
        result.update(seed=seed, run=name, seconds=time.perf_counter() - started)
        write_json(target, result)
        step = result["planning"]["seconds_per_mpc_step"]
        self.say(
            f"seed {seed}: {name} planned in {result['seconds']:.0f} s: success "
            f"{result['planning']['success']:.2f}" + (f", {step:.2f} s per MPC step" if step else "")
        )

    # -- jobs ----------------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        planned = [run for run in self.evaluated_runs() if run in self.planning_runs()]
        return plan_jobs(self.experiment, self.evaluated_runs(), planned)

    def job_done(self, job: Job) -> bool:
        if job.kind == "shared":
            reference = self.out / "shared" / "planning_reference.json"
            return planned_under_current_settings(reference, self.experiment)
        if job.kind == "train":
            return self.done(self.run_dir(job.seed, job.run))
        if job.kind == "plan":
            planned = self.run_dir(job.seed, job.run) / PLANNING_FILE
            return planned_under_current_settings(planned, self.experiment)
        return (self.run_dir(job.seed, job.run) / "evaluation.json").exists()

    def run_job(self, job: Job) -> None:
        if job.kind == "shared":
            self.shared().reference_planning()
        elif job.kind == "train":
            self.train_branch(job.seed, job.run)
        elif job.kind == "plan":
            self.plan(job.seed, job.run)
        else:
            self.evaluate(job.seed, job.run)

    def run(self, estimate_only: bool = False, workers: int = 1, threads: int = 1) -> bool:
        """Everything not yet done; True when the experiment is complete."""
        self.prepare()
        from cola_eval.reproduction.timing import estimate_remaining

        record = self.out / "estimate.json"
        earlier = json.loads(record.read_text()) if record.exists() and not estimate_only else None
        if earlier is not None and (earlier.get("device"), earlier.get("threads")) != (
            str(self.device),
            threads,
        ):
            earlier = None
        estimate = estimate_remaining(self, self.say, earlier, workers)
        if earlier is not None:
            estimate["per_step_seconds"] = earlier["per_step_seconds"]  # all stage kinds, for later calls
        write_json(record, {**estimate, "device": str(self.device), "threads": threads})
        if estimate_only:
            return False
        pool = (
            InlineWorkers(self)
            if workers == 1
            else ProcessWorkers(workers, threads, partial(Driver, self.experiment, self.out, None))
        )
        if not run_jobs(self.jobs(), self.job_done, pool, self.time_up, self.say):
            self.say(
                f"stopping at the {self.max_minutes:g}-minute chunk limit; run the same command to continue"
            )
            return False
        from cola_eval.reproduction.summary import write_summary

        written = write_summary(self.experiment, self.out, methods(self.experiment), self.evaluated_runs())
        self.say(
            "done; results: " + ", ".join(str(p.relative_to(self.out)) for p in written) + f" in {self.out}"
        )
        return True


def _headline(result: dict[str, Any]) -> str:
    metrics = result["metrics"]
    parts = [
        f"{key} {metrics[key]:.3g}"
        for key in ("inferred/psnr", "delta_psnr", "codebook/utilization", "planning/world_model/success")
        if metrics.get(key) is not None
    ]
    return ", ".join(parts)


def machine() -> dict[str, Any]:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


# Switches that only add runs to an experiment: a later call on the same folder may turn them on (records
# written before a switch existed lack its key).
ADD_ONLY_SWITCHES = ("gradient_ablations",)
# Which runs plan, and how (shared.PLANNING_OPTIONS): a later call may change them, since planning results
# live in files of their own (planning.json, shared/planning_reference.json) that record their settings and
# are redone when those differ; trained runs and their evaluations do not depend on them.
PLANNING_SWITCHES = ("planning_runs",)


def comparable_config(config: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in config.items() if k not in (*ADD_ONLY_SWITCHES, *PLANNING_SWITCHES)}
    if isinstance(kept.get("data"), dict):  # records from before data.use_videos existed stored videos
        kept["data"] = {"use_videos": True, **kept["data"]}
    if isinstance(kept.get("eval"), dict):
        kept["eval"] = {k: v for k, v in kept["eval"].items() if k not in PLANNING_OPTIONS}
    return kept


def experiment_record(experiment: Experiment) -> dict[str, Any]:
    from dataclasses import asdict

    values = asdict(experiment)
    values.pop("source")
    return values


def write_json(path: Path, values: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(handle, "w") as file:
        json.dump(values, file, indent=2, allow_nan=True, default=_json_default)
    os.replace(temp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
