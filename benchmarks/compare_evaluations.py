"""Two reproduction folders that evaluated the same trained runs under different settings, side by side.

The reproduction writes one ``runs/seed<N>/<run>/evaluation.json`` per evaluated run. When a second folder
holds copies of the first one's trained runs, evaluated again with one setting changed (e.g. the action
guidance in ``[eval]``), this prints, per run and metric, each folder's mean over the seeds and the paired
difference (second minus first) seed by seed, so a sampling-only factor is read on identical models.

    uv run python benchmarks/compare_evaluations.py FIRST SECOND [--labels "guidance 4" "guidance 2"]
        [--runs NAME ...]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# (key in evaluation.json's metrics, column name, decimals)
METRICS = (
    ("moving_delta_psnr", "moving-px delta (dB)", 2),
    ("delta_psnr", "full-frame delta (dB)", 2),
    ("inferred/psnr", "PSNR (dB)", 2),
    ("inferred/ssim", "SSIM", 3),
    ("inferred/lpips", "LPIPS", 3),
    ("inferred/agent_error", "agent error (px)", 1),
    ("agent_error_ratio", "agent ratio", 3),
    ("inferred/action_recovery", "action recovery (%)", 0),
    ("adapter_degradation/psnr_db", "adapter drop (dB)", 2),
)


def evaluations(folder: Path) -> dict[tuple[str, int], dict[str, float]]:
    """``{(run, seed): metrics}`` of every evaluated run under ``folder/runs``."""
    found = {}
    for path in sorted(folder.glob("runs/seed*/*/evaluation.json")):
        record = json.loads(path.read_text())
        found[(path.parent.name, int(path.parent.parent.name.removeprefix("seed")))] = record["metrics"]
    if not found:
        raise SystemExit(f"{folder}: no runs/seed*/*/evaluation.json; is it a reproduction folder?")
    return found


def compare(first: Path, second: Path, labels: tuple[str, str], only: list[str] | None = None) -> str:
    a, b = evaluations(first), evaluations(second)
    paired = sorted(pair for pair in set(a) & set(b) if not only or pair[0] in only)
    runs = sorted({run for run, _ in paired})
    lines = [
        f"First: {first} ({labels[0]}); second: {second} ({labels[1]}); {len(paired)} paired evaluations. "
        "Cells: first mean / second mean over the seeds, then the paired differences (second - first) per "
        "seed; the last row pools every paired evaluation.",
        "",
    ]
    for key, name, decimals in METRICS:
        if not any(key in a[pair] and a[pair][key] is not None for pair in paired):
            continue
        lines += [f"### {name}", "", "| run | seeds | " + " | ".join(labels) + " | difference per seed |"]
        lines.append("|---|---|---|---|---|")
        pooled = []
        for run in runs:
            seeds = [s for r, s in paired if r == run and None not in (a[r, s].get(key), b[r, s].get(key))]
            if not seeds:
                continue
            first_values = [a[run, s][key] for s in seeds]
            second_values = [b[run, s][key] for s in seeds]
            differences = [y - x for x, y in zip(first_values, second_values, strict=True)]
            pooled += differences
            lines.append(
                f"| {run} | {len(seeds)} | {statistics.fmean(first_values):.{decimals}f} | "
                f"{statistics.fmean(second_values):.{decimals}f} | "
                + ", ".join(f"{d:+.{decimals}f}" for d in differences)
                + " |"
            )
        mean = statistics.fmean(pooled)
        lines += [
            f"| all runs | {len(pooled)} evaluations | | | mean {mean:+.{decimals + 1}f}; second higher in "
            f"{sum(d > 0 for d in pooled)}, lower in {sum(d < 0 for d in pooled)} |",
            "",
        ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--labels", nargs=2, default=("first", "second"))
    parser.add_argument("--runs", nargs="+", help="only these run names (default: every run in both folders)")
    args = parser.parse_args(argv)
    print(compare(args.first, args.second, tuple(args.labels), args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
