"""Does the T block survive a rollout? Sampling settings against block-integrity scores, on trained runs.

Rolls each run's world model out from the first frame of held-out PushT clips two DiT windows long (the
code atlas's horizon), driven by the IDM's inferred latent actions of the clip, at every combination of Euler
steps, action guidance, sampling time shift and guidance interval, with the same noise for every setting.
Scores, per predicted frame, against the real clip:

    block IoU    intersection over union of the block-coloured pixels (PushT draws the T in slate grey;
                 see `block_mask`) of the prediction and of the real frame: 1 is a block in the right place
                 and shape, a smeared or dissolved block scores low
    block area   block-coloured pixels of the prediction over those of the real frame: a block that dissolves
                 into scattered pixels loses them (below 1) even where it sits in the right place
    scene PSNR   PSNR over the pixels that are agent-coloured in neither frame (block, goal, background),
                 capped at 60 dB
    PSNR         full frame

and, so that a setting that keeps the block is not one that stops steering, the same rollout driven by
another clip's actions (shuffled) beside it: the moving-pixel PSNR delta (inferred - shuffled) and the agent
error (the agent read off the frames, cola_eval.controllability.agent_positions, against where it is in the
real frames) of both. Beside copying the first frame (the floor every rollout should beat on scene fidelity
where nothing is pushed). Nothing is trained: it asks whether the smear is the sampler's or the model's.

    uv run python benchmarks/block_integrity_study.py --run RUN [RUN ...] [--steps 5 10 20]
        [--guidance 1 4] [--time-shift 1 3] [--guidance-interval 0:1 0.3:1] [--max-clips 16]
        [--out FILE.json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import torch
from benchtools import held_out_dataset

SCENE_PSNR_CEILING = 60.0
# PushT's block is drawn in LightSlateGray (118, 136, 153) and, over the goal, (144, 163, 184): blue a little
# above red and green, darker than the white floor and the light grey walls. The agent is far bluer.
BLOCK_BLUENESS = (12.0, 70.0)
BLOCK_MAX_BRIGHTNESS = 200.0


def block_mask(frames: torch.Tensor) -> torch.Tensor:
    """Bool [..., H, W]: the block-coloured pixels of frames [..., 3, H, W] in [-1, 1]."""
    pixels = (frames.float().clamp(-1, 1) + 1) * 127.5
    r, g, b = pixels[..., 0, :, :], pixels[..., 1, :, :], pixels[..., 2, :, :]
    blueness = b - (r + g) / 2
    low, high = BLOCK_BLUENESS
    return (blueness > low) & (blueness < high) & ((r + g + b) / 3 < BLOCK_MAX_BRIGHTNESS)


def block_iou(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """IoU of the block masks of pred and real [..., 3, H, W]: shape [...]; NaN where neither shows it."""
    a, b = block_mask(pred), block_mask(real)
    inter = (a & b).flatten(-2).sum(-1).float()
    union = (a | b).flatten(-2).sum(-1).float()
    return inter / union  # 0/0 is NaN: no block in either frame


def block_area(pred: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Block-coloured pixels of pred over those of real [..., 3, H, W]: shape [...]; NaN where real has
    none."""
    kept = block_mask(pred).flatten(-2).sum(-1).float()
    present = block_mask(real).flatten(-2).sum(-1).float()
    return torch.where(present > 0, kept / present.clamp(min=1), torch.nan)


def scores(pred: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame block IoU, scene PSNR and PSNR of predicted frames [N, T, 3, H, W] against real ones."""
    from cola_eval.controllability import agent_mask, masked_psnr
    from cola_eval.metrics import psnr

    keep = ~(agent_mask(pred) | agent_mask(real))
    return {
        "block_iou": block_iou(pred, real),
        "block_area": block_area(pred, real),
        "scene_psnr": masked_psnr(pred, real, keep).clamp(max=SCENE_PSNR_CEILING),
        "psnr": psnr(pred, real),
    }


def control(pred: torch.Tensor, real: torch.Tensor, start: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-frame moving-pixel PSNR and agent error of predicted frames [N, T, 3, H, W] against real ones,
    the moving pixels being those where the real frame differs from ``start [N, 1, 3, H, W]``."""
    from cola_eval.controllability import agent_positions, moving_pixel_psnr

    return {
        "moving_psnr": moving_pixel_psnr(pred, real, start),
        "agent_error": (agent_positions(pred) - agent_positions(real)).norm(dim=-1),
    }


def summarize(per_frame: dict[str, torch.Tensor], window_new: int) -> dict[str, float | list[float]]:
    """Means over clips and frames of the first window's new frames and of the frames after it, and curves."""
    out: dict[str, float | list[float]] = {}
    for name, values in per_frame.items():
        values = values.double()
        out[f"{name}_window1"] = float(values[:, :window_new].nanmean())
        out[f"{name}_later"] = float(values[:, window_new:].nanmean())
        out[f"{name}_curve"] = [round(float(v), 4) for v in values.nanmean(0)]
    return out


def held_out_clips(run: Path, wm: torch.nn.Module, max_clips: int) -> tuple[torch.Tensor, int]:
    """Held-out clips two windows long from the run's own data, and the number of context frames."""
    from cola_eval.atlas import atlas_clips, default_horizon

    held_out = held_out_dataset(json.loads((run / "config.json").read_text())["data"])
    k = 1
    real = atlas_clips(held_out, k + default_horizon(wm, k), max_clips)
    if real is None:
        raise ValueError(f"{run}: no held-out episode is two DiT windows long")
    return real, k


def rollout(
    wm: torch.nn.Module, real: torch.Tensor, k: int, actions: torch.Tensor, setting: dict
) -> torch.Tensor:
    """The predicted frames of a rollout over real's length from its first k frames, seeded noise."""
    from cola_wm import sample

    generator = torch.Generator().manual_seed(0)
    video = sample(wm, real[:, :k], actions, num_frames=real.shape[1], generator=generator, **setting)
    return video.clamp(-1, 1)[:, k:]


@torch.no_grad()
def measure(
    runs: list[Path],
    steps: list[int],
    guidance: list[float],
    shifts: list[float],
    intervals: list[tuple[float, float]],
    max_clips: int,
) -> list[dict]:
    from cola_eval.rollout import latent_actions
    from cola_train import load_trained

    rows = []
    for run in runs:
        trained = load_trained(run)
        wm, lam = trained.wm.eval(), trained.lam.eval()
        real, k = held_out_clips(run, wm, max_clips)
        window_new = wm.config.num_frames - k
        future, start = real[:, k:], real[:, k - 1 : k]
        copy = scores(start.expand_as(future), future) | control(start.expand_as(future), future, start)
        rows.append({"run": str(run), "setting": "copy", **summarize(copy, window_new), "n_clips": len(real)})
        print(json.dumps({key: v for key, v in rows[-1].items() if "curve" not in key}), flush=True)
        actions = latent_actions(lam, real, "inferred")
        shuffled = actions.roll(1, dims=0)  # another clip's actions, the same codes in all
        for n_steps, scale, shift, interval in itertools.product(steps, guidance, shifts, intervals):
            if scale == 1.0 and interval != intervals[0]:
                continue  # without guidance the interval changes nothing
            began = time.perf_counter()
            setting = {
                "steps": n_steps,
                "guidance_scale": scale,
                "time_shift": shift,
                "guidance_interval": interval,
            }
            video = rollout(wm, real, k, actions, setting)
            other = rollout(wm, real, k, shuffled, setting)
            inferred = scores(video, future) | control(video, future, start)
            against = {f"shuffled_{name}": v for name, v in control(other, future, start).items()}
            row = {
                "run": str(run),
                "setting": f"steps {n_steps}, guidance {scale:g}, shift {shift:g}"
                + ("" if scale == 1.0 else f", guided ({interval[0]:g}, {interval[1]:g}]"),
                "steps": n_steps,
                "guidance": scale,
                "time_shift": shift,
                "guidance_interval": list(interval),
                **summarize(inferred | against, window_new),
                "n_clips": len(real),
                "seconds": round(time.perf_counter() - began, 1),
            }
            rows.append(row)
            print(json.dumps({key: v for key, v in row.items() if "curve" not in key}), flush=True)
    return rows


def _overall(row: dict, name: str) -> float:
    """The mean of a per-frame curve over the whole horizon."""
    curve = torch.tensor(row[f"{name}_curve"], dtype=torch.float64)
    return float(curve.nanmean())


def table(rows: list[dict]) -> str:
    lines = [
        "| run | setting | block IoU, window 1 | block IoU, later | block area, window 1 | block area, later "
        "| scene PSNR, window 1 | scene PSNR, later "
        "| PSNR, window 1 | PSNR, later | moving-px delta (dB) | agent err inferred / shuffled (px) "
        "| clips |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "shuffled_moving_psnr_curve" in row:
            delta = _overall(row, "moving_psnr") - _overall(row, "shuffled_moving_psnr")
            errors = _overall(row, "agent_error"), _overall(row, "shuffled_agent_error")
            steer = f"{delta:+.2f} | {errors[0]:.1f} / {errors[1]:.1f}"
        elif "agent_error_curve" in row:
            steer = f"- | {_overall(row, 'agent_error'):.1f} (copy)"
        else:  # rows of a study run before the control columns
            steer = "- | -"
        run = "/".join(Path(row["run"]).parts[-2:])  # seed<N>/<run> in a reproduction folder
        lines.append(
            f"| {run} | {row['setting']} | {row['block_iou_window1']:.3f} | "
            f"{row['block_iou_later']:.3f} | {row['block_area_window1']:.2f} | "
            f"{row['block_area_later']:.2f} | "
            f"{row['scene_psnr_window1']:.2f} | {row['scene_psnr_later']:.2f} | "
            f"{row['psnr_window1']:.2f} | {row['psnr_later']:.2f} | {steer} | {row['n_clips']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", required=True, type=Path, nargs="+", help="cola-train run directories")
    parser.add_argument("--steps", type=int, nargs="+", default=[5, 10, 20], help="Euler steps per window")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--time-shift", type=float, nargs="+", default=[1.0, 3.0])
    parser.add_argument(
        "--guidance-interval",
        nargs="+",
        default=["0:1"],
        help="LOW:HIGH flow times whose Euler steps are guided (cola_wm.sample's guidance_interval)",
    )
    parser.add_argument("--max-clips", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    runs = [r.resolve() for r in args.run]
    intervals = [tuple(float(v) for v in text.split(":")) for text in args.guidance_interval]
    rows = measure(runs, args.steps, args.guidance, args.time_shift, intervals, args.max_clips)
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1))
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
