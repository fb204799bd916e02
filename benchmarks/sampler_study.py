"""How a trained run's controllability and scene depend on how its rollouts are sampled.

Rolls a run's world model out from the first frame of evenly spread held-out clips with its own LAM's
inferred codes, batch-shuffled codes and the null action, beside copying the first frame, for every
combination of Euler steps and ``sampling_start`` (``cola_wm.sample``); prints one table row per
combination: the columns of ``controllability_study.py``, then the scene PSNR of the inferred-code
rollouts (over the pixels the true frame keeps from the first frame: is the unmoved scene intact?) and the
full-frame PSNR of copying the first frame.

    uv run python benchmarks/sampler_study.py RUN [--steps 10] [--starts 1 0.4] [--guidance 4]
"""

from __future__ import annotations

import argparse
import itertools

import torch
from benchtools import evenly_spread, held_out_dataset
from controllability_study import COLUMNS


def main() -> None:
    from cola_eval.controllability import (
        agent_position_error,
        masked_psnr,
        moving_mask,
        moving_pixel_psnr,
        pusht_agent_positions,
    )
    from cola_eval.metrics import psnr
    from cola_train import load_trained
    from cola_wm import sample

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a cola-train run folder (RUN/models/{lam,wm})")
    parser.add_argument("--steps", type=int, nargs="+", default=[10])
    parser.add_argument("--starts", type=float, nargs="+", default=[1.0], help="sampling_start values")
    parser.add_argument("--guidance", type=float, default=None, help="default: the world model's own")
    parser.add_argument("--max-clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=6, help="clip length of the rollouts")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--pictures",
        default=None,
        help="folder for one PNG per row: 4 clips' true frames over their rollouts",
    )
    args = parser.parse_args()

    trained = load_trained(args.run)
    if trained.lam is None:
        raise SystemExit(f"{args.run} has no LAM (a real-action ceiling): score it with ceiling_score.py")
    data = dict(trained.config["data"], clip_length=args.frames)
    items = evenly_spread(held_out_dataset(data), args.max_clips)
    video = torch.stack([item["video"] for item in items])
    states = torch.stack([item["states"] for item in items])
    lam, wm = trained.lam.eval(), trained.wm.eval()
    with torch.no_grad():
        inferred = lam.encode(video).quantized.flatten(-2)
    context, target = video[:, :1], video[:, 1:]
    truth = pusht_agent_positions(states[:, 1:], video.shape[-1])
    sources = {
        "real": inferred,
        "shuffled": inferred.roll(1, dims=0),
        "null": wm.null_actions(len(items), video.shape[1] - 1),
    }
    static = ~moving_mask(context, target)
    print(f"| Euler steps | start | clips | {' | '.join(COLUMNS)} | scene psnr real | copy psnr |")
    print("|---" * (len(COLUMNS) + 5) + "|")
    for steps, start in itertools.product(args.steps, args.starts):
        predictions = {"copy": context.expand_as(target)}
        for name, actions in sources.items():
            parts = []
            for first in range(0, len(items), args.batch_size):
                batch = slice(first, first + args.batch_size)
                with torch.no_grad():
                    rollout = sample(
                        wm,
                        context[batch],
                        actions[batch],
                        steps=steps,
                        guidance_scale=args.guidance,
                        generator=torch.Generator().manual_seed(first),
                        sampling_start=start,
                    )
                parts.append(rollout[:, 1:].clamp(-1, 1))
            predictions[name] = torch.cat(parts)
        scores = {
            name: {
                "psnr": float(psnr(pred, target).nanmean()),
                "moving_psnr": float(moving_pixel_psnr(pred, target, context).nanmean()),
                "agent_error": float(agent_position_error(pred, truth).nanmean()),
            }
            for name, pred in predictions.items()
        }
        cells = " | ".join(f"{column(scores):.2f}" for column in COLUMNS.values())
        scene = float(masked_psnr(predictions["real"], target, static).nanmean())
        if args.pictures:
            save_rollouts(
                video[:4],
                predictions["real"][:4],
                f"{args.pictures}/steps{steps}-start{start:g}.png",
            )
        print(
            f"| {steps} | {start:g} | {len(items)} | {cells} | {scene:.2f} | {scores['copy']['psnr']:.2f} |",
            flush=True,
        )


def save_rollouts(video: torch.Tensor, rollout: torch.Tensor, path: str) -> None:
    """One PNG: for each clip of ``video [N, T, 3, H, W]``, its true frames above the first frame followed by
    ``rollout [N, T - 1, 3, H, W]``."""
    from pathlib import Path

    from PIL import Image

    rows = []
    for clip, predicted in zip(video, rollout, strict=True):
        rows += [clip, torch.cat([clip[:1], predicted])]
    grid = torch.stack(rows)  # [2N, T, 3, H, W]
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).byte().permute(0, 3, 1, 4, 2)
    height, width = grid.shape[0] * grid.shape[-2], grid.shape[1] * grid.shape[-1]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.reshape(height, width, 3).numpy()).save(path)


if __name__ == "__main__":
    main()
