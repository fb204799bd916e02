"""Which code a trained run's LAM picks most, token by token, and how far the agent moves under it.

Encodes evenly spread held-out clips with the run's LAM and prints, for each latent-action token, its most
picked code, that code's share of the picks, and the agent's mean displacement (frame px) in the transitions
that code names against the rest: a top code with the rest's displacement is not a "the agent stays" code.

    uv run python benchmarks/top_code_study.py RUN [RUN ...] [--max-clips 64] [--frames 6]
"""

from __future__ import annotations

import argparse

import torch
from benchtools import evenly_spread, held_out_dataset


def main() -> None:
    from cola_eval.controllability import pusht_agent_positions
    from cola_train import load_trained

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="cola-train run folders (RUN/models/lam)")
    parser.add_argument("--max-clips", type=int, default=64)
    parser.add_argument("--frames", type=int, default=6, help="clip length")
    args = parser.parse_args()

    print("| run | token | transitions | top code | share | agent moves under it (px) | elsewhere (px) |")
    print("|---|---|---|---|---|---|---|")
    for run in args.runs:
        trained = load_trained(run)
        if trained.lam is None:
            raise SystemExit(f"{run} has no LAM (a real-action ceiling)")
        data = dict(trained.config["data"], clip_length=args.frames)
        items = evenly_spread(held_out_dataset(data), args.max_clips)
        video = torch.stack([item["video"] for item in items])
        positions = pusht_agent_positions(torch.stack([item["states"] for item in items]), video.shape[-1])
        moved = (positions[:, 1:] - positions[:, :-1]).norm(dim=-1)  # [clips, transitions]
        with torch.no_grad():
            indices = trained.lam.eval().encode(video).indices  # [clips, transitions, tokens]
        for token in range(indices.shape[-1]):
            picks = indices[..., token]
            counts = torch.bincount(picks.flatten())
            top = int(counts.argmax())
            named = picks == top
            print(
                f"| {run} | {token} | {picks.numel()} | {top} | {float(counts[top] / counts.sum()):.2f} "
                f"| {float(moved[named].mean()):.1f} | {float(moved[~named].mean()):.1f} |"
            )


if __name__ == "__main__":
    main()
