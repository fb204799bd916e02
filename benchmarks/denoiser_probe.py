"""How well a small action-free world model denoises after brief training on PushT frame pairs.

Trains the ``tiny`` ActionConditionedDiT from scratch on 2-frame clips (one context frame, one to predict) of
a collected PushT dataset, then on 64 held-out pairs prints, as one JSON line (key ``held_out``): the mean
squared error of the clean frame it implies at flow times 0.05, 0.2, 0.5 and 1 (``x0@t``, also on the
pixels that stay as in the context frame), of a 10-step sample for each sampling start
(``sample10@startS``, also split into the pixels that stay as in the context frame and those that change,
and with the block area: the sample's block-coloured pixels over the true frame's, 1 for a block neither
lost nor smeared, see block_integrity_study.block_mask) and of copying the context frame (``copy``); and
saves pictures of 8 pairs: context, truth, the implied clean frames at t = 1, 0.5, 0.2, one sample per
sampling start.

``--train-pairs N`` trains on N evenly spread training pairs only and also scores up to 64 of them (key
``trained``, picture ``*_trained.png``): a memorisation check, since a loss and sampler that work draw the
pairs they were trained on sharply, and with N grown, where generalising to held-out pairs breaks.
``--train-data DIR`` takes the training pairs from another collection's train split while the held-out
pairs stay DATA's, so training sets of different sizes are scored on the same held-out pairs (collect DIR
with another seed: collections of one seed share their first episodes, and DATA's held-out ones among them).

``--frame-size N`` trains and samples on the frames averaged down to N x N (area averaging, N dividing the
collected size): with ``--patch`` scaled alike it keeps the token count and narrows each patch (32 x 32 at
patch 4: 48 values a patch against 192 at 64 x 64, patch 8, beside the DiT's width of 128). ``--score-size
N`` also scores the samples and the truth averaged down to N x N (keys ``@N``), so models trained at
different sizes are compared on the same frames.

    uv run python benchmarks/denoiser_probe.py DATA --name base [--motion 10] [--shift 3] [--patch 8]
        [--frame-size 32] [--score-size 32] ...

DATA is a folder written by ``cola_train.data.collect_pusht`` (e.g. a quickstart's ``OUT/data/pusht``).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from benchtools import spread_indices
from block_integrity_study import block_mask


def area_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """Frames [..., C, H, W] averaged down to [..., C, size, size]; ValueError unless size divides H.

    Not ``ClipDataset(size=)``'s antialiased bilinear resize: one operator for the smaller arm's frames and
    for the frames every arm is scored on at ``--score-size``, so that arm learns exactly the truth it is
    scored against."""
    height = frames.shape[-1]
    if size > height or height % size:
        raise ValueError(f"--frame-size / --score-size must divide the collected size {height}, got {size}")
    if size == height:
        return frames
    flat = frames.reshape(-1, *frames.shape[-3:])
    return F.interpolate(flat, size=(size, size), mode="area").reshape(*frames.shape[:-2], size, size)


TIMED_STEPS = 100  # steps timed before --train-seconds sets the step count


def pooled_block_area(pred: torch.Tensor, real: torch.Tensor) -> float:
    """Block-coloured pixels of all ``pred`` frames over those of all ``real`` frames [N, 3, H, W] (a ratio
    of totals: a frame whose block is mostly hidden weighs little)."""
    return float(block_mask(pred).sum()) / max(1, int(block_mask(real).sum()))


def main() -> None:
    from cola_train.data import ClipDataset, load_episodes
    from cola_wm import ActionConditionedDiT, DiTConfig, flow_matching_loss

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--name", default="probe", help="label of the JSON line and the picture")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.0, help="AdamW's (the trainer's default: 0)")
    parser.add_argument("--shift", type=float, default=3.0, help="flow-time shift of the training times")
    parser.add_argument("--motion", type=float, default=10.0, help="motion weight of the loss")
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument("--width", type=int, default=None, help="the DiT width (default: tiny preset)")
    parser.add_argument("--frame-size", type=int, default=None, help="train at frames averaged down to this")
    parser.add_argument("--score-size", type=int, default=None, help="also score at frames averaged down")
    parser.add_argument("--train-pairs", type=int, default=None, help="train and score on N training pairs")
    parser.add_argument(
        "--train-data", default=None, help="train on this collection's train split (held-out pairs: DATA's)"
    )
    parser.add_argument("--prediction", default="residual", choices=("residual", "x0", "velocity"))
    parser.add_argument("--frame-skip", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument(
        "--sampling-start", type=float, nargs="+", default=[1.0], help="values of sample's sampling_start"
    )
    parser.add_argument("--picture", default=None, help="PNG path (default: denoiser_probe_NAME.png)")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="fit the training into this many seconds: after 100 timed steps the step count (and with it the "
        "cosine schedule) is cut to what fits, at most --steps; the JSON line's `steps` says how many ran",
    )
    parser.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="where the model trains and samples (default: cuda where there is one); the CPU runs draw the "
        "same numbers as before this option existed",
    )
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    episodes = load_episodes(args.data)
    train_episodes = load_episodes(args.train_data) if args.train_data else episodes
    train = ClipDataset(train_episodes, 2, frame_skip=args.frame_skip, split="train")
    test = ClipDataset(episodes, 2, frame_skip=args.frame_skip, split="test")
    if train[0]["video"].shape != test[0]["video"].shape:
        raise ValueError(
            f"--train-data frames are {tuple(train[0]['video'].shape[-3:])} but DATA's are "
            f"{tuple(test[0]['video'].shape[-3:])}: collect both at the same frame_size"
        )
    size = args.frame_size or train[0]["video"].shape[-1]
    widths = {"width": args.width} if args.width else {}
    config = DiTConfig.preset(
        "tiny", frame_size=size, patch_size=args.patch, num_frames=2, prediction=args.prediction, **widths
    )
    device = torch.device(args.device)
    model = ActionConditionedDiT(config).to(device)
    optimizer = torch.optim.AdamW(model.backbone_parameters(), lr=args.lr, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(args.seed)
    # On the CPU one generator draws the batches and the loss's noise, as the committed results were drawn.
    noise_generator = generator if device.type == "cpu" else torch.Generator(device).manual_seed(args.seed)
    pool = spread_indices(len(train), args.train_pairs or len(train))
    start = time.time()
    steps, step = args.steps, 0
    while step < steps:
        if args.train_seconds and step == TIMED_STEPS:
            if device.type == "cuda":
                torch.cuda.synchronize()  # time the steps the GPU ran, not the ones queued for it
            # The schedule has barely left its peak here (cosine of 100 steps in thousands), so cutting its
            # length now anneals the shorter run as if it had been asked for.
            steps = max(step, min(steps, int(args.train_seconds * step / (time.time() - start))))
        # The quickstart's schedule: 50 linear warm-up steps, cosine to 0.1.
        factor = min(1.0, (step + 1) / 50) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))
        for group in optimizer.param_groups:
            group["lr"] = args.lr * factor
        picks = torch.randint(len(pool), (args.batch,), generator=generator)
        video = area_resize(torch.stack([train[pool[int(i)]]["video"] for i in picks]), size).to(device)
        loss = flow_matching_loss(
            model, video, None, 1, "uniform", noise_generator, None, args.motion, args.shift
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        step += 1
    result = {"name": args.name, "train_s": round(time.time() - start), "train_pairs": len(pool)}
    result["steps"] = steps
    result["train_episodes"] = len({int(train[i]["episode"]) for i in pool})
    model.eval()
    picture = Path(args.picture or f"denoiser_probe_{args.name}.png")
    held_out = [test[i] for i in spread_indices(len(test), 64)]
    result["held_out"] = score(model, held_out, size, args, picture)
    if args.train_pairs:
        trained = [train[pool[i]] for i in spread_indices(len(pool), 64)]
        trained_picture = picture.with_name(f"{picture.stem}_trained.png")
        result["trained"] = score(model, trained, size, args, trained_picture)
    print(json.dumps(result))


def score(
    model: torch.nn.Module, clips: list[dict], size: int, args: argparse.Namespace, picture: Path
) -> dict[str, float]:
    """The probe's scores of ``model`` on the pairs ``clips``; saves the picture of the first 8."""
    from cola_eval.controllability import moving_mask
    from cola_wm import predict_velocity, sample
    from PIL import Image

    result = {"pairs": len(clips)}
    device = next(model.parameters()).device
    video = area_resize(torch.stack([clip["video"] for clip in clips]), size)
    noise = torch.randn(video.shape, generator=torch.Generator().manual_seed(1)).to(device)
    video = video.to(device)
    # The scene that should be copied (pixels where the true next frame equals the context) and the rest.
    static = ~moving_mask(video[:, 0], video[:, 1])[:, None].expand_as(video[:, 1])
    implied = {}
    with torch.no_grad():
        for t in (0.05, 0.2, 0.5, 1.0):
            x_t = torch.cat([video[:, :1], (1 - t) * video[:, 1:] + t * noise[:, 1:]], dim=1)
            times = torch.full((len(clips),), t, device=device)
            velocity = predict_velocity(model, x_t, times, None, 1)[:, 1:]
            implied[t] = x_t[:, 1] - t * velocity[:, 0]
            error = (implied[t] - video[:, 1]).pow(2)
            result[f"x0@{t}"] = round(float(error.mean()), 5)
            result[f"x0@{t}_static"] = round(float(error[static].mean()), 5)
    result["copy"] = round(float((video[:, 1] - video[:, 0]).pow(2).mean()), 5)
    result["copy_moving"] = round(float((video[:, 0] - video[:, 1]).pow(2)[~static].mean()), 5)
    result["copy_block_area"] = round(pooled_block_area(video[:, 0], video[:, 1]), 3)
    if args.score_size:
        small = area_resize(video, args.score_size)  # the context and the truth, at the scoring size
        small_static = ~moving_mask(small[:, 0], small[:, 1])[:, None].expand_as(small[:, 1])
        result[f"copy@{args.score_size}"] = round(float((small[:, 1] - small[:, 0]).pow(2).mean()), 5)
    samples = []
    for start in args.sampling_start:
        with torch.no_grad():
            rollout = sample(
                model,
                video[:, :1],
                None,
                num_frames=2,
                steps=args.sample_steps,
                generator=torch.Generator(device).manual_seed(2),
                sampling_start=start,
            )
        error = (rollout[:, 1] - video[:, 1]).pow(2)
        key = f"sample{args.sample_steps}@start{start}"
        result[key] = round(float(error.mean()), 5)
        result[f"{key}_static"] = round(float(error[static].mean()), 5)
        result[f"{key}_moving"] = round(float(error[~static].mean()), 5)
        result[f"{key}_block_area"] = round(pooled_block_area(rollout[:, 1], video[:, 1]), 3)
        if args.score_size:
            small_pred = area_resize(rollout[:, 1], args.score_size)
            small_error = (small_pred - small[:, 1]).pow(2)
            result[f"{key}@{args.score_size}"] = round(float(small_error.mean()), 5)
            result[f"{key}_static@{args.score_size}"] = round(float(small_error[small_static].mean()), 5)
            small_area = pooled_block_area(small_pred, small[:, 1])
            result[f"{key}_block_area@{args.score_size}"] = round(small_area, 3)
        samples.append(rollout[:8, 1])
    # Rows: context, truth, the clean frame implied at t = 1, 0.5 and 0.2, one sample per sampling start.
    rows = [video[:8, 0], video[:8, 1], implied[1.0][:8], implied[0.5][:8], implied[0.2][:8], *samples]
    grid = torch.stack(rows, dim=1)  # [8, rows, C, H, W]
    side = video.shape[-1]
    pixels = ((grid.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 3, 0, 4, 2)
    pixels = pixels.reshape(len(rows) * side, len(grid) * side, 3)
    Image.fromarray(pixels.cpu().numpy()).save(picture)
    return result


if __name__ == "__main__":
    main()
