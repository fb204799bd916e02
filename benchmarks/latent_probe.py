"""Does a small DiT draw PushT frames better in an autoencoder's latent space than in pixels?

Trains a :class:`cola_wm.FrameAutoencoder` on single frames of a collected PushT dataset, then the ``tiny``
ActionConditionedDiT from scratch on 2-frame latent clips (one context frame, one to predict; the
quickstart's loss: uniform flow times shifted by 3, motion weight 10 on the pixels that move, pooled to the
latent grid), and on 64 held-out pairs prints one JSON line: the autoencoder's reconstruction MSE, the MSE
of a decoded 10-step sample (all pixels, the pixels that stay as in the context frame and those that change)
and of copying the context frame. Saves a picture of 8 pairs: context, truth, reconstruction, sample.
``benchmarks/denoiser_probe.py`` is the same probe in pixel space.

    uv run python benchmarks/latent_probe.py DATA --name latent [--ae-steps 400] [--latent-channels 4]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def lr_factor(step: int, steps: int) -> float:
    # The quickstart's schedule: 50 linear warm-up steps, cosine to 0.1.
    return min(1.0, (step + 1) / 50) * (0.1 + 0.45 * (1 + math.cos(math.pi * step / steps)))


def main() -> None:
    from cola_eval.controllability import moving_mask
    from cola_train.data import ClipDataset, load_episodes
    from cola_wm import ActionConditionedDiT, DiTConfig, flow_matching_loss, sample
    from cola_wm.autoencoder import AutoencoderConfig, FrameAutoencoder
    from PIL import Image
    from safetensors.torch import load_file, save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--name", default="latent")
    parser.add_argument("--ae-steps", type=int, default=400)
    parser.add_argument("--ae-batch", type=int, default=32)
    parser.add_argument("--latent-channels", type=int, default=4)
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--latent-noise", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patch", type=int, default=2)
    parser.add_argument("--prediction", default="residual", choices=("residual", "x0", "velocity"))
    parser.add_argument("--motion", type=float, default=10.0)
    parser.add_argument("--frame-skip", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--picture", default=None)
    parser.add_argument(
        "--ae-cache", default=None, help="safetensors file: load the autoencoder if it exists, else save it"
    )
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    episodes = load_episodes(args.data)
    train = ClipDataset(episodes, 2, frame_skip=args.frame_skip, split="train")
    test = ClipDataset(episodes, 2, frame_skip=args.frame_skip, split="test")
    result: dict = {"name": args.name}

    ae = FrameAutoencoder(
        AutoencoderConfig(
            latent_channels=args.latent_channels, widths=tuple(args.widths), latent_noise=args.latent_noise
        )
    )
    optimizer = torch.optim.AdamW(ae.parameters(), lr=2e-3, weight_decay=0.0)
    start = time.time()
    cached = args.ae_cache is not None and Path(args.ae_cache).is_file()
    if cached:
        ae.load_state_dict(load_file(args.ae_cache))
    for step in range(0 if cached else args.ae_steps):
        for group in optimizer.param_groups:
            group["lr"] = 2e-3 * lr_factor(step, args.ae_steps)
        picks = torch.randint(len(train), (args.ae_batch // 2,), generator=generator)
        frames = torch.cat([train[int(i)]["video"] for i in picks])
        loss = ae.reconstruction_loss(frames, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    result["ae_train_s"] = round(time.time() - start)
    ae.eval().requires_grad_(False)
    picks = torch.randint(len(train), (256,), generator=generator)
    if not cached:
        ae.fit_latent_scale(torch.cat([train[int(i)]["video"] for i in picks]))
        if args.ae_cache is not None:
            save_file(ae.state_dict(), args.ae_cache)

    config = DiTConfig.preset(
        "tiny",
        frame_size=ae.config.latent_size,
        channels=ae.config.latent_channels,
        patch_size=args.patch,
        num_frames=2,
        prediction=args.prediction,
    )
    model = ActionConditionedDiT(config)
    optimizer = torch.optim.AdamW(model.backbone_parameters(), lr=args.lr, weight_decay=0.0)
    start = time.time()
    factor = ae.config.downsample
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = args.lr * lr_factor(step, args.steps)
        picks = torch.randint(len(train), (args.batch,), generator=generator)
        video = torch.stack([train[int(i)]["video"] for i in picks])
        with torch.no_grad():
            latents = ae.encode(video)
        # Motion weight on the latent cells over pixels that move.
        moving = moving_mask(video[:, 0], video[:, 1]).float()[:, None]
        moving = F.max_pool2d(moving, factor)[:, None]
        loss = flow_matching_loss(
            model, latents, None, 1, "uniform", generator, None, 0.0, 3.0, weights=1 + args.motion * moving
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    result["dit_train_s"] = round(time.time() - start)

    model.eval()
    picks = list(range(0, len(test), max(1, len(test) // 64)))[:64]
    video = torch.stack([test[i]["video"] for i in picks])
    static = ~moving_mask(video[:, 0], video[:, 1])[:, None].expand_as(video[:, 1])
    with torch.no_grad():
        latents = ae.encode(video)
        reconstruction = ae.decode(latents[:, 1]).clamp(-1, 1)
        rollout = sample(
            model, latents[:, :1], None, num_frames=2, steps=10, generator=torch.Generator().manual_seed(2)
        )
        predicted = ae.decode(rollout[:, 1]).clamp(-1, 1)
    result["reconstruction"] = round(float((reconstruction - video[:, 1]).pow(2).mean()), 5)
    result["copy"] = round(float((video[:, 1] - video[:, 0]).pow(2).mean()), 5)
    error = (predicted - video[:, 1]).pow(2)
    result["sample10"] = round(float(error.mean()), 5)
    result["sample10_static"] = round(float(error[static].mean()), 5)
    result["sample10_moving"] = round(float(error[~static].mean()), 5)
    result["copy_moving"] = round(float((video[:, 0] - video[:, 1]).pow(2)[~static].mean()), 5)
    print(json.dumps(result))

    rows = [video[:8, 0], video[:8, 1], reconstruction[:8], predicted[:8]]
    grid = torch.stack(rows, dim=1)
    size = video.shape[-1]
    pixels = (
        ((grid.clamp(-1, 1) + 1) * 127.5).byte().permute(1, 3, 0, 4, 2).reshape(len(rows) * size, 8 * size, 3)
    )
    Image.fromarray(pixels.numpy()).save(args.picture or f"latent_probe_{args.name}.png")


if __name__ == "__main__":
    main()
