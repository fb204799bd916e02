"""The controllability targets of several quickstart runs, side by side, with their wall times.

Each run is a folder Q made by ``bash benchmarks/quickstart_run.sh Q [--set KEY=VALUE ...]`` (the timed
``cola-train quickstart --out Q``, then ``cola-eval report Q/run --out Q/report``, the wall times in
``Q.time``); runs are grouped by a label (``LABEL=Q``, repeated: one entry per seed) and each group's
figures are printed as mean +- std over its runs, beside the issue's targets, with the stages' median
steps/s from the run's ``metrics.jsonl``. A folder without ``Q.time`` has no wall time.

    bash benchmarks/quickstart_run.sh /tmp/qD0 --set seed=0 --set pretrain.steps=600 --set joint.steps=700
    uv run python benchmarks/quickstart_table.py adopted=/tmp/qD0 adopted=/tmp/qD1 [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

# (report metric, column, target as text, the test the value must pass)
TARGETS = [
    ("codebook/utilization", "utilization", ">= 0.5", lambda v: v >= 0.5),
    ("codebook/code_spread", "code spread", ">= 0.1", lambda v: v >= 0.1),
    ("delta_psnr", "delta-PSNR (dB)", ">= 0.3", lambda v: v >= 0.3),
    ("moving_delta_psnr", "moving-pixel delta (dB)", ">= 0.7", lambda v: v >= 0.7),
    ("agent_error_ratio", "agent error ratio", "<= 2/3", lambda v: v <= 2 / 3),
    ("probe/agent_displacement/embedding/r2", "probe R^2 (displacement)", ">= 0.5", lambda v: v >= 0.5),
]
# Further columns, reported without a target.
EXTRA = [
    ("inferred/agent_error", "agent error inferred (px)"),
    ("shuffled/agent_error", "agent error shuffled (px)"),
    ("copy/agent_error", "agent error copy (px)"),
    ("inferred/psnr", "PSNR inferred (dB)"),
    ("copy/psnr", "PSNR copy (dB)"),
    ("atlas/code_separation_px", "code separation (px)"),
]
STAGES = ("pretrain", "warmup", "joint")
WALL = re.compile(r"quickstart rc=0 wall_s=(\d+)")


def read_run(folder: Path) -> dict:
    """One quickstart folder's report metrics, collapse notes, stage rates, steps and wall time."""
    report_path = folder / "report" / "report.json"
    if not report_path.is_file():
        raise SystemExit(
            f"{report_path} is missing: run `cola-eval report {folder}/run --out {folder}/report`"
        )
    report = json.loads(report_path.read_text())["runs"][0]
    values = {key: entry["value"] for key, entry in report["metrics"].items() if isinstance(entry, dict)}
    separation = (report.get("atlas") or {}).get("code_separation_px")
    if isinstance(separation, dict):
        values["atlas/code_separation_px"] = separation["value"]
    config = json.loads((folder / "run" / "config.json").read_text())
    rates: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for line in (folder / "run" / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row.get("stage") in rates and row.get("steps_per_s"):
            rates[row["stage"]].append(row["steps_per_s"])
    time_file = folder.with_name(folder.name + ".time")
    wall = WALL.search(time_file.read_text()) if time_file.is_file() else None
    return {
        "folder": str(folder),
        "seed": config["seed"],
        "steps": {stage: config[stage]["steps"] for stage in STAGES},
        "values": values,
        "collapse_notes": [note for note in report["notes"] if note.startswith("codebook:")],
        "steps_per_s": {stage: statistics.median(r) for stage, r in rates.items() if r},
        "wall_s": int(wall.group(1)) if wall else None,
    }


def cell(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def table(groups: dict[str, list[dict]]) -> str:
    columns = [name for _, name, _, _ in TARGETS] + [name for _, name in EXTRA]
    lines = [
        "| group | steps (pretrain / warm-up / joint) | seeds | wall (min) | "
        + " | ".join(columns)
        + " | targets met (all seeds) |",
        "|---" * (len(columns) + 5) + "|",
        "| target | | | <= 15 | " + " | ".join(t for _, _, t, _ in TARGETS) + " |" * len(EXTRA) + " | |",
    ]
    for label, runs in groups.items():
        steps = sorted({" / ".join(str(run["steps"][s]) for s in STAGES) for run in runs})
        walls = [run["wall_s"] / 60 for run in runs if run["wall_s"] is not None]
        cells = [cell([run["values"][key] for run in runs if key in run["values"]]) for key, *_ in TARGETS]
        cells += [cell([run["values"][key] for run in runs if key in run["values"]]) for key, _ in EXTRA]
        met = sum(
            all(key in run["values"] and check(run["values"][key]) for run in runs)
            for key, _, _, check in TARGETS
        )
        no_warning = all(not run["collapse_notes"] for run in runs)
        seeds = ", ".join(str(run["seed"]) for run in runs)
        lines.append(
            f"| {label} | {', '.join(steps)} | {seeds} | {cell(walls)} | "
            + " | ".join(cells)
            + f" | {met}/{len(TARGETS)}{'' if no_warning else ', collapse warning'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="LABEL=FOLDER, a quickstart --out folder (repeat per seed)")
    parser.add_argument("--out", type=Path, help="also write every run's figures as JSON")
    args = parser.parse_args(argv)
    groups: dict[str, list[dict]] = {}
    for entry in args.runs:
        label, sep, folder = entry.partition("=")
        if not sep or not folder:
            parser.error(f"{entry!r}: give LABEL=FOLDER")
        groups.setdefault(label, []).append(read_run(Path(folder)))
    print(table(groups))
    for label, runs in groups.items():
        for run in runs:
            rates = ", ".join(f"{stage} {rate:.2f}" for stage, rate in run["steps_per_s"].items())
            notes = run["collapse_notes"] or "none"
            print(f"- {label} seed {run['seed']}: steps/s {rates}; collapse notes: {notes}")
    if args.out:
        args.out.write_text(json.dumps(groups, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
