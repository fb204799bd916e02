"""Classifier-free action guidance at sampling, measured on one trained run's held-out clips.

Rolls the run's world model out from the first frame of each held-out clip with the IDM's inferred latent
actions, another clip's (shuffled) and random codes, at each guidance scale, and prints the controllability
table per scale (agent-position error, moving-pixel and full-frame PSNR, action recovery), with copying the
last frame as the floor. Guidance extrapolates from the null-action prediction towards the action-conditioned
one (``cola_wm.sample(..., guidance_scale=)``), so it amplifies what the world model reads from its actions.

    uv run python benchmarks/guidance_study.py --run RUN [--guidance 1 2 4] [--max-clips 32] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchtools import held_out_dataset

SOURCES = ("inferred", "shuffled", "random", "copy")


def measure(run: Path, scales: list[float], max_clips: int, steps: int) -> list[dict]:
    from cola_eval.bootstrap import contrast_intervals
    from cola_eval.rollout import evaluate_rollouts
    from cola_train import load_trained

    trained = load_trained(run)
    held_out = held_out_dataset(json.loads((run / "config.json").read_text())["data"])
    rows = []
    for scale in scales:
        evaluation = evaluate_rollouts(
            trained.wm.eval(),
            trained.lam.eval(),
            held_out,
            sources=SOURCES,
            guidance_scale=scale,
            steps=steps,
            max_clips=max_clips,
            agent_states=True,
        )
        scores = evaluation.controllability()
        intervals = contrast_intervals(evaluation)
        for source in SOURCES:
            score = scores[source]
            rows.append(
                {
                    "guidance": scale,
                    "source": source,
                    "agent_error": score.agent_error,
                    "moving_psnr": score.moving_psnr,
                    "psnr": score.psnr,
                    "action_recovery": score.action_recovery,
                    "n_clips": min(max_clips, len(held_out)),
                }
            )
            if source == "inferred":  # the report's contrasts (against random codes) with their intervals
                rows[-1]["moving_delta_psnr"] = evaluation.moving_pixel_delta_psnr()
                rows[-1]["moving_delta_psnr_ci95"] = intervals.get("moving_delta_psnr")
                rows[-1]["agent_error_ratio_ci95"] = intervals.get("agent_error_ratio")
            print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| guidance | source | agent err (px) | moving-px PSNR | PSNR | action recovery |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        recovery = "n/a" if row["action_recovery"] is None else f"{row['action_recovery']:.1f}%"
        lines.append(
            f"| {row['guidance']:g} | {row['source']} | {row['agent_error']:.2f} | "
            f"{row['moving_psnr']:.2f} | {row['psnr']:.2f} | {recovery} |"
        )
    by_scale = {}
    for row in rows:
        by_scale.setdefault(row["guidance"], {})[row["source"]] = row
    lines += [
        "",
        "| guidance | agent err inferred / shuffled [95% CI] | moving-px delta vs random (dB) [95% CI] "
        "| moving-px delta vs shuffled (dB) | delta-PSNR vs shuffled (dB) |",
        "|---|---|---|---|---|",
    ]
    for scale, group in by_scale.items():
        inferred, shuffled = group["inferred"], group["shuffled"]
        lines.append(
            f"| {scale:g} | {inferred['agent_error'] / shuffled['agent_error']:.3f} "
            f"{_bracket(inferred.get('agent_error_ratio_ci95'))} | "
            f"{inferred.get('moving_delta_psnr', float('nan')):+.3f} "
            f"{_bracket(inferred.get('moving_delta_psnr_ci95'))} | "
            f"{inferred['moving_psnr'] - shuffled['moving_psnr']:+.3f} | "
            f"{inferred['psnr'] - shuffled['psnr']:+.3f} |"
        )
    return "\n".join(lines)


def _bracket(interval: list[float] | tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0]:.2f}, {interval[1]:.2f}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, help="a cola-train run directory")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    parser.add_argument("--max-clips", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10, help="Euler steps per window")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = measure(args.run.resolve(), args.guidance, args.max_clips, args.steps)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
