"""Score a ground-truth-action ceiling run of cola-train (``model.actions = "real"``) on held-out PushT clips.

The run is trained by the same engine as every CoLA run (e.g. ``cola-train quickstart --set
'model.actions="real"'``); ``cola-eval report`` reports on latent actions, so this scores the ceiling the way
``controllability_study.py`` scores its models: rollouts from each clip's first frame with the real actions
(through the run's own RealActionEncoder), batch-shuffled ones and the null action, beside copying the frame.

    uv run python benchmarks/ceiling_score.py RUN [--guidance 1 4] [--max-clips 32] [--out FILE.json]

Prints one table row per guidance scale; ``--out`` keeps the scores as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from benchtools import evenly_spread, held_out_dataset
from controllability_study import COLUMNS, score_rollouts


def held_out_batches(trained, max_clips: int, batch_size: int = 16):
    clips = evenly_spread(held_out_dataset(trained.config["data"]), max_clips)
    for first in range(0, len(clips), batch_size):
        items = clips[first : first + batch_size]
        video = torch.stack([item["video"] for item in items])
        actions = trained.real_actions(torch.stack([item["transition_actions"] for item in items]))
        yield video, actions, torch.stack([item["states"] for item in items])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--max-clips", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    from cola_train import load_trained

    trained = load_trained(args.run)
    if trained.real_actions is None:
        raise SystemExit(f"{args.run} has no real actions (model.actions = 'real'): use cola-eval report")
    wm = trained.wm.eval()
    results = {}
    print("| guidance | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for scale in args.guidance:
        scores = score_rollouts(wm, held_out_batches(trained, args.max_clips), args.seed, guidance=scale)
        results[f"guidance {scale:g}"] = scores
        print(f"| {scale:g} | " + " | ".join(f"{column(scores):.2f}" for column in COLUMNS.values()) + " |")
    if args.out:
        record = {"run": str(args.run), "max_clips": args.max_clips, **results}
        args.out.write_text(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
