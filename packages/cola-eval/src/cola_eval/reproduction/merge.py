"""Merge reproduction folders that each ran some of an experiment's seeds into one, and write its summary.

    python -m cola_eval.reproduction.merge --size gpu [--no-videos] --out DIR PART [PART ...]

For machines whose trained weights cannot outlive one call (docs/gpu-runbook.md: one seed per GPU call,
each brought back without data, models or checkpoints): every PART is a results folder of the same
experiment, differing only in its seeds (and in the switches a later call may change). DIR, new or empty,
gets each part's ``runs/seed<N>/`` without weights, the first part's shared planning reference, an
``experiment.json`` with every seed, and results.md, results.json and utilization.png over all of them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from cola_eval.reproduction.driver import Driver, comparable_config, experiment_record, write_json
from cola_eval.reproduction.plan import SIZES, Experiment, methods, size_config

HEAVY = ("data", "models", "checkpoints", "tensorboard")


def merge(experiment: Experiment, out: Path, parts: list[Path]) -> list[Path]:
    """Merge ``parts`` (results folders of ``experiment`` with disjoint seeds) into ``out``; returns the
    summary files written."""
    if not parts:
        raise ValueError("merge needs at least one results folder")
    records = []
    for part in parts:
        record = part / "experiment.json"
        if not record.is_file():
            raise ValueError(f"{part} holds no experiment.json: it is not a reproduction results folder")
        records.append(json.loads(record.read_text()))
    expected = _without_seeds(experiment_record(experiment))
    seeds: list[int] = []
    for part, record in zip(parts, records, strict=True):
        if _without_seeds(record["config"]) != expected:
            raise ValueError(
                f"{part} ran another configuration than --size {experiment.size} (flags such as --no-videos "
                "must match the parts'); merge only parts of one experiment"
            )
        shared_seeds = set(seeds) & set(record["config"]["seeds"])
        if shared_seeds:
            raise ValueError(f"seed(s) {sorted(shared_seeds)} appear in more than one part; each seed once")
        seeds += record["config"]["seeds"]
    if out.exists() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty; merge into a new folder")
    experiment.seeds = sorted(seeds)
    experiment.gradient_ablations = any(r["config"].get("gradient_ablations") for r in records)
    experiment.planning_runs = records[0]["config"].get("planning_runs", experiment.planning_runs)
    for part, record in zip(parts, records, strict=True):
        for seed in record["config"]["seeds"]:
            source = part / "runs" / f"seed{seed}"
            if source.is_dir():
                shutil.copytree(source, out / "runs" / f"seed{seed}", ignore=shutil.ignore_patterns(*HEAVY))
    reference = parts[0] / "shared" / "planning_reference.json"
    if reference.is_file():
        (out / "shared").mkdir(parents=True, exist_ok=True)
        shutil.copy2(reference, out / "shared" / reference.name)
    write_json(
        out / "experiment.json",
        {
            "size": experiment.size,
            "config": experiment_record(experiment),
            "machine": records[0].get("machine", {}),
            "started": records[0].get("started"),
            "merged": {"at": time.strftime("%Y-%m-%d %H:%M"), "parts": [str(p) for p in parts]},
        },
    )
    from cola_eval.reproduction.summary import write_summary

    runs = Driver(experiment, out, None).evaluated_runs()
    return write_summary(experiment, out, methods(experiment), runs)


def _without_seeds(config: dict[str, Any]) -> dict[str, Any]:
    as_recorded = json.loads(json.dumps(config, default=str))  # tuples and paths as experiment.json has them
    return {k: v for k, v in comparable_config(as_recorded).items() if k != "seeds"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=SIZES, required=True, help="the size every part ran")
    parser.add_argument("--config", type=Path, help="the experiment TOML the parts ran (default: the size's)")
    parser.add_argument("--no-videos", action="store_true", help="the parts ran with --no-videos")
    parser.add_argument("--out", type=Path, required=True, help="the merged folder (new or empty)")
    parser.add_argument("parts", type=Path, nargs="+", help="results folders, each with some of the seeds")
    args = parser.parse_args(argv)
    try:
        experiment = Experiment.load(args.config or size_config(args.size), args.size)
        experiment.data.use_videos = not args.no_videos
        written = merge(experiment, args.out.resolve(), [p.resolve() for p in args.parts])
    except ValueError as error:
        print(f"merge: error: {error}", file=sys.stderr)
        return 2
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


if __name__ == "__main__":
    sys.exit(main())
