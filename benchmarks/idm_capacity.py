"""Can an IDM read the PushT agent's displacement at all? Each IDM setting trained with supervision.

The LAM's IDM (built from the quickstart's LAMConfig with one setting changed) and a linear head are trained
with Adam to regress the agent's displacement across each transition (states, /60 arena px) on train clips
of a PushT collection, at the warm-up's batch (8 clips) and learning rate (1e-3); every ``--eval-every``
steps it prints R^2 on 64 held-out clips. An IDM that cannot learn this with labels cannot learn it from
the world model's loss either.

    uv run python benchmarks/idm_capacity.py --data DIR/data/pusht-quickstart [--steps 300] [--variants ...]

Prints one line per evaluation and a final table; ``--out FILE.json`` keeps the curves.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

VARIANTS: dict[str, dict[str, str]] = {
    "transformer_pair": {"idm_input": "pair"},
    "transformer_difference": {"idm_input": "difference"},
    "keypoints": {"idm_input": "pair", "idm_backbone": "keypoints"},
    "keypoints_displacement": {
        "idm_input": "pair",
        "idm_backbone": "keypoints",
        "keypoint_features": "displacement",
    },
}


def batch(clips, indices) -> tuple[torch.Tensor, torch.Tensor]:
    items = [clips[int(i)] for i in indices]
    video = torch.stack([item["video"] for item in items])
    states = torch.stack([item["states"] for item in items])
    return video, (states[:, 1:, :2] - states[:, :-1, :2]) / 60.0


def train(
    variant: dict[str, str], data: Path, steps: int, eval_every: int, seed: int, lr: float
) -> list[dict]:
    from cola_eval.probe import regression_scores
    from cola_lam import LAMConfig, LatentActionModel
    from cola_train.data import ClipDataset, load_episodes

    episodes = load_episodes(data)
    train_clips, test_clips = (
        ClipDataset(episodes, 6, frame_skip=5, split=split) for split in ("train", "test")
    )
    torch.manual_seed(seed)
    config = LAMConfig.preset("tiny", **variant)
    idm = LatentActionModel(config).idm
    head = torch.nn.Linear(config.action_dim, 2)
    optimizer = torch.optim.Adam([*idm.parameters(), *head.parameters()], lr=lr)
    held_out = batch(test_clips, range(0, len(test_clips), max(1, len(test_clips) // 64)))
    curve, start = [], time.perf_counter()
    for step in range(1, steps + 1):
        video, target = batch(train_clips, torch.randint(len(train_clips), (8,)))
        loss = (head(idm(video).flatten(2)) - target).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                predicted = head(idm(held_out[0]).flatten(2))
            r2 = regression_scores(predicted.flatten(0, 1), held_out[1].flatten(0, 1))["r2"]
            curve.append({"step": step, "r2": r2, "seconds": time.perf_counter() - start})
            print(f"  step {step}: held-out R^2 {r2:.3f} ({curve[-1]['seconds']:.0f} s)", flush=True)
    return curve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    curves = {}
    for name in args.variants:
        print(name, VARIANTS[name], flush=True)
        curves[name] = train(VARIANTS[name], args.data, args.steps, args.eval_every, args.seed, args.lr)
    print(
        "| IDM | " + " | ".join(f"R^2 at {point['step']}" for point in next(iter(curves.values()))) + " | s |"
    )
    print("|---" * (len(next(iter(curves.values()))) + 2) + "|")
    for name, curve in curves.items():
        cells = " | ".join(f"{point['r2']:.3f}" for point in curve)
        print(f"| {name} | {cells} | {curve[-1]['seconds']:.0f} |")
    if args.out:
        args.out.write_text(
            json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "curves": curves})
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
