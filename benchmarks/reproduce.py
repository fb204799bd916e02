"""Reproduce the paper's claims at small scale with one command: warm-up vs collapse, co-evolution vs
two-stage, planning.

    uv run python benchmarks/reproduce.py --size cpu --out benchmarks/results/reproduce-cpu --workers 2
    uv run python benchmarks/reproduce.py --size gpu --out DIR   # resumable chunks: rerun until done

Per seed one world model is pretrained (action-free), then every method branches from it with the same step
budget, batch and learning rates: two-stage (lam_recon, then wm_finetune with the LAM frozen), joint without
warm-up, CoLA (warm-up, then joint), CoLA with the engine's adaptive warm-up, plus the warm-up ablation
(0, 1/8, 1/4, 1/2 of the budget; runs shared with the methods are trained once). Each branch is a resumable
cola-train run in OUT/runs/seed<N>/<run>/ (config.json, metrics.jsonl, models/); each finished unit leaves a
marker, so a killed or chunked run continues where it stopped. Each training run and each evaluation is a job
(reproduction.jobs); ``--workers N`` runs independent jobs in N processes with cores // N torch threads each,
a branch only after its parent (the seed's pretrain; the adaptive warm-up for the adaptive joint run). The
summary (results.md, results.json, utilization.png) is recomputed from the evaluations every time the
experiment completes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import torch
from reproduction.jobs import InlineWorkers, Job, JobFailed, ProcessWorkers, plan_jobs, run_jobs
from reproduction.plan import (
    SIZES,
    Branch,
    Experiment,
    adaptive_joint_branch,
    branches,
    finished_stage_steps,
    methods,
    run_config,
    seed_branch,
)

ROOT = Path(__file__).resolve().parent.parent
# Exit status of a run that stopped at its chunk limit: call again to continue.
EXIT_UNFINISHED = 75
OUT_GITIGNORE = "data/\n**/checkpoints/\n**/models/\n**/tensorboard/\n"


# ----------------------------------------------------------------------------------------------------
# The driver


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
        _write_json(path / "DONE", info)

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
        current = {"size": self.experiment.size, "config": _experiment_dict(self.experiment)}
        if record.exists():
            saved = json.loads(record.read_text())
            if saved.get("config") != current["config"]:
                raise ValueError(
                    f"{self.out} holds an experiment with another configuration ({saved.get('size')}); "
                    "use a new --out or the same --size and --seeds"
                )
        else:
            _write_json(record, {**current, "machine": machine(), "started": time.strftime("%Y-%m-%d %H:%M")})
        self.collect_data()

    def collect_data(self) -> None:
        if (self.data_path / "meta" / "info.json").exists():
            return
        from cola_train.data import collect_pusht

        if self.data_path.exists():
            shutil.rmtree(self.data_path)  # an interrupted collection; collect_pusht wants an empty folder
        data = self.experiment.data
        self.say(f"collecting {data['episodes']} PushT episodes of {data['episode_length']} frames")
        collect_pusht(
            self.data_path,
            int(data["episodes"]),
            seed=int(data.get("collect_seed", 0)),
            episode_length=int(data["episode_length"]),
            frame_size=int(self.experiment.run.get("data", {}).get("frame_size", 64)),
            workers=min(2, os.cpu_count() or 1),
            progress=False,
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
        choice = self.experiment.eval.get("planning_runs", "methods")
        if choice == "none":
            return set()
        return set(self.evaluated_runs()) if choice == "all" else set(methods(self.experiment).values())

    def shared(self) -> Any:
        from reproduction.evaluation import SharedEvaluation

        if self._shared is None:
            self._shared = SharedEvaluation.build(
                self.experiment, self.episodes(), self.out, self.device, self.say
            )
        return self._shared

    def evaluate(self, seed: int, name: str) -> None:
        from reproduction.evaluation import evaluate_run

        target = self.run_dir(seed, name) / "evaluation.json"
        if target.exists():
            return
        plan = name in self.planning_runs()
        self.say(f"seed {seed}: evaluating {name}" + (" (with planning)" if plan else ""))
        started = time.perf_counter()
        result = evaluate_run(self.run_dir(seed, name), self.shared(), plan=plan)
        result.update(seed=seed, run=name, seconds=time.perf_counter() - started)
        _write_json(target, result)
        self.say(f"seed {seed}: {name} evaluated in {result['seconds']:.0f} s: " + _headline(result))

    # -- jobs ----------------------------------------------------------------------------------------------
    def jobs(self) -> list[Job]:
        shared = self.experiment.eval.get("planning_runs", "methods") != "none"
        return plan_jobs(self.experiment, self.evaluated_runs(), shared)

    def job_done(self, job: Job) -> bool:
        if job.kind == "shared":
            return (self.out / "shared" / "planning_reference.json").exists()
        if job.kind == "train":
            return self.done(self.run_dir(job.seed, job.run))
        return (self.run_dir(job.seed, job.run) / "evaluation.json").exists()

    def run_job(self, job: Job) -> None:
        if job.kind == "shared":
            self.shared().reference_planning()
        elif job.kind == "train":
            self.train_branch(job.seed, job.run)
        else:
            self.evaluate(job.seed, job.run)

    def run(self, estimate_only: bool = False, workers: int = 1, threads: int = 1) -> bool:
        """Everything not yet done; True when the experiment is complete."""
        self.prepare()
        from reproduction.timing import estimate_remaining

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
        _write_json(record, {**estimate, "device": str(self.device), "threads": threads})
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
        from reproduction.summary import write_summary

        written = write_summary(self.experiment, self.out, methods(self.experiment), self.evaluated_runs())
        self.say(
            "done; results: " + ", ".join(str(p.relative_to(self.out)) for p in written) + f" in {self.out}"
        )
        return True


def _headline(result: dict[str, Any]) -> str:
    metrics = result["metrics"]
    parts = [
        f"{key} {metrics[key]:.3g}"
        for key in ("inferred/psnr", "delta_psnr", "codebook/utilization", "planning/success")
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


def _experiment_dict(experiment: Experiment) -> dict[str, Any]:
    from dataclasses import asdict

    values = asdict(experiment)
    values.pop("source")
    return values


def _write_json(path: Path, values: Any) -> None:
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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, required=True, help="configs/reproduce-<size>.toml")
    parser.add_argument("--config", type=Path, help="another experiment TOML instead of the size's")
    parser.add_argument("--out", type=Path, required=True, help="results folder (data, runs, tables, plots)")
    parser.add_argument("--seeds", type=int, nargs="+", help="override the config's seeds")
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="stop cleanly after this many minutes (default: the config's "
        f"chunk_minutes); exit status {EXIT_UNFINISHED} means: run the same command again to continue",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes running independent jobs (training runs, evaluations) at once, needs first "
        "(default 1: every job in this process); at most one per core",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads per worker (default: cores // workers, at most OMP_NUM_THREADS where set); "
        "workers x threads may not exceed the "
        "cores. On a machine shared with other jobs, fewer avoid oversubscribed OpenMP, which can be tens "
        "of times slower",
    )
    parser.add_argument("--estimate-only", action="store_true", help="collect data, print the estimate, exit")
    return parser.parse_args(argv)


def threads_per_worker(workers: int, threads: int | None, cores: int) -> int:
    """Torch threads for each worker: ``threads`` or an even share of the cores, never more than the cores
    in total."""
    if not 1 <= workers <= cores:
        raise ValueError(f"--workers must be in [1, {cores}] (one per core at most), got {workers}")
    if threads is None:
        # OMP_NUM_THREADS, where set, caps each process's threads (the machine's other users asked for it).
        ceiling = int(os.environ.get("OMP_NUM_THREADS") or cores)
        return max(1, min(cores // workers, ceiling))
    if threads < 1 or threads * workers > cores:
        raise ValueError(
            f"--threads {threads} x --workers {workers} must be in [1, {cores}] (cores): more threads than "
            "cores oversubscribe OpenMP, tens of times slower"
        )
    return threads


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.config or ROOT / "configs" / f"reproduce-{args.size}.toml"
    try:
        threads = threads_per_worker(args.workers, args.threads, os.cpu_count() or 1)
        # This process measures the estimate's timings, at the thread count each worker will have.
        torch.set_num_threads(threads)
        experiment = Experiment.load(config, args.size)
        if args.seeds:
            experiment.seeds = list(args.seeds)
        max_minutes = args.max_minutes if args.max_minutes is not None else experiment.chunk_minutes
        driver = Driver(experiment, args.out, max_minutes or None)
        driver.say(
            f"size {args.size} from {config}; seeds {experiment.seeds}; out {driver.out}; "
            f"device {driver.device}; {args.workers} worker(s) x {threads} torch thread(s)"
        )
        complete = driver.run(args.estimate_only, args.workers, threads)
    except ValueError as error:
        print(f"reproduce: error: {error}", file=sys.stderr)
        return 2
    except JobFailed as failure:
        print(f"reproduce: error: {failure}", file=sys.stderr)
        return 1
    if args.estimate_only:
        return 0
    return 0 if complete else EXIT_UNFINISHED


if __name__ == "__main__":
    sys.exit(main())
