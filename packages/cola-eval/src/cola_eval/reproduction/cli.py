"""Reproduce the paper's claims at small scale with one command: warm-up vs collapse, co-evolution vs
two-stage, planning.

    uv run python benchmarks/reproduce.py --size cpu --out benchmarks/results/reproduce-cpu --workers 2
    uv run python -m cola_eval.reproduction --size gpu --out DIR   # resumable chunks: rerun until done
    # or one seed per call (--seeds N) where weights cannot outlive a call, then, from the folders without
    # their weights: python -m cola_eval.reproduction.merge --size gpu --out DIR PART...
    # (docs/gpu-runbook.md)
    # then, as a second call on the same folder: only the gradient-path ablations, their evaluations and
    # the planning of the four methods (the cpu size plans in this call only, to keep each within 90 min)
    uv run python benchmarks/reproduce.py --size cpu --out benchmarks/results/reproduce-cpu --workers 2 \
        --gradient-ablations --planning-runs methods

Per seed one world model is pretrained (action-free), then every method branches from it with the same step
budget, batch and learning rates: two-stage (lam_recon, then wm_finetune with the LAM frozen), joint without
warm-up, CoLA (warm-up, then joint), CoLA with the engine's adaptive warm-up, plus the warm-up ablation
(the config's warmup_fractions, 0, 1/4 and 1/2 of the budget at the cpu size; runs shared with the
methods are trained once). Each branch is a resumable cola-train run in OUT/runs/seed<N>/<run>/ (config.json,
metrics.jsonl, models/); each finished unit leaves a marker, so a killed or chunked run continues where it
stopped. Each training run and each evaluation is a job
(cola_eval.reproduction.jobs); ``--workers N`` runs independent jobs in N processes with cores // N torch
threads each, a branch only after its parent (the seed's pretrain; the adaptive warm-up for the adaptive
joint run). The summary (results.md, results.json, utilization.png) is recomputed from the evaluations every
time the experiment completes.

The gradient-path ablations (``--gradient-ablations`` or ``[experiment] gradient_ablations = true``; off in
the shipped configs, so the first call keeps its time budget) ask which direction of CoLA's mutual tutoring
carries its gain: per seed, CoLA's warm-up followed by a joint stage with the LAM frozen (joint-frozen-lam),
with the world model's DiT backbone frozen (joint-frozen-wm) or with the world model's gradient into the LAM
stopped (joint-stop-gradient), each from the seed's pretrained world model with CoLA's step budget. A call
with the flag on a folder a call without it finished reuses every finished run and evaluation and trains only
these; whether they plan follows ``planning_runs`` ("all" includes them). results.md then holds a
"Gradient-path ablations" table beside CoLA, with its reading rule, and results.json the key
"gradient_ablations".

Planning (``--planning-runs`` or ``[experiment] planning_runs``) is a job of its own per planned run: the
run's world model, driven through its action adapter, plans the shared held-out start/goal pairs, beside the
oracle and the random policy on the same pairs (OUT/shared/planning_reference.json). Each result
(planning.json beside the run's evaluation.json) records its settings; a call with other planning settings
redoes only the planning, and trains and evaluates nothing again.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import torch

from cola_eval.reproduction.driver import Driver
from cola_eval.reproduction.jobs import JobFailed
from cola_eval.reproduction.plan import PLANNING_RUNS, SIZES, Experiment, size_config

# Exit status of a run that stopped at its chunk limit: call again to continue.
EXIT_UNFINISHED = 75


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--size", choices=SIZES, required=True, help="the shipped configs/reproduce-<size>.toml"
    )
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
    parser.add_argument(
        "--gradient-ablations",
        action="store_true",
        help="also train and evaluate the gradient-path ablations (joint with the LAM frozen, with the world "
        "model frozen, with the gradient into the LAM stopped; the config's experiment.gradient_ablations). "
        "On a folder a call without it finished, only the new runs and their evaluations run; later calls "
        "on that folder need it too, or their summary leaves the ablations out",
    )
    parser.add_argument(
        "--planning-runs",
        choices=PLANNING_RUNS,
        help="which evaluated runs also plan on PushT (the config's experiment.planning_runs): the 4 "
        "methods, all, or none. Planning results live in their own files, so a later call on a finished "
        "folder may add or change them; only the planning jobs run",
    )
    parser.add_argument(
        "--no-videos",
        action="store_true",
        help="collect the PushT frames as PNG images in the parquet rows instead of mp4 (the config's "
        "data.use_videos = false): lossless, and needs no PyAV, e.g. on a machine without it",
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


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Within: SIGTERM raises SystemExit(143) in this process, so the call ends through its cleanup: the job
    runner terminates its busy workers and waits for them (their runs resume from their checkpoints) before
    this process exits. Without it SIGTERM ends this process at once and each worker ends on its own when it
    sees its parent gone (``jobs.exit_when_parent_ends``, the guard for kills no handler can catch)."""

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = args.config or size_config(args.size)
    try:
        threads = threads_per_worker(args.workers, args.threads, os.cpu_count() or 1)
        # This process measures the estimate's timings, at the thread count each worker will have.
        torch.set_num_threads(threads)
        experiment = Experiment.load(config, args.size)
        if args.seeds:
            experiment.seeds = list(args.seeds)
        if args.gradient_ablations:
            experiment.gradient_ablations = True
        if args.planning_runs:
            experiment.planning_runs = args.planning_runs
        if args.no_videos:
            experiment.data.use_videos = False
        max_minutes = args.max_minutes if args.max_minutes is not None else experiment.chunk_minutes
        driver = Driver(experiment, args.out, max_minutes or None)
        driver.say(
            f"size {args.size} from {config}; seeds {experiment.seeds}; out {driver.out}; "
            f"device {driver.device}; {args.workers} worker(s) x {threads} torch thread(s)"
        )
        with sigterm_as_exit():
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
