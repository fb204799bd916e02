"""Does the world model follow its actions? One factor at a time, with the real PushT actions as the ceiling.

Each variant trains the ``tiny`` ActionConditionedDiT from scratch on quickstart-sized PushT data (48 episodes
of 120 frames, 6-frame clips, batch 8, the quickstart's optimiser) conditioned on the *real* actions of each
transition (the commanded deltas of the ``frame_skip`` environment steps it spans, a learned embedding in the
DiT's action conditioner), for the same number of steps and seeds, then rolls out held-out clips from their
first frame with the real, a batch-shuffled and no actions, and beside them copying the first frame:

    psnr            full-frame PSNR of the predicted frames (dB)
    moving_psnr     PSNR over the pixels where the true frame differs from the context frame (dB)
    agent_error     distance between the agent read off each predicted frame and the simulator's (frame px)

    uv run python benchmarks/controllability_study.py --out OUT [--steps 600] [--seeds 0 1] [--variants ...]

Writes ``OUT/study.json`` (every run) and prints one table; ``--smoke`` runs every variant for a few steps.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

BASE = {
    "frame_skip": 5,
    "explore": 0.0,
    "motion_weight": 0.0,
    "action_injection": "adaln",
    "time_sampling": "logit_normal",
    "time_shift": 1.0,
}
VARIANTS = {
    # round 1: one factor at a time against skip5
    "skip5": {},
    "skip1": {"frame_skip": 1},
    "explore0.3": {"explore": 0.3},
    "motion_w10": {"motion_weight": 10.0},
    "token": {"action_injection": "token"},
    # round 2: one factor at a time against motion_w10, round 1's winner
    "motion_w10_uniform_t": {"motion_weight": 10.0, "time_sampling": "uniform"},
    "motion_w10_both": {"motion_weight": 10.0, "action_injection": "both"},
    "motion_w10_shift3": {"motion_weight": 10.0, "time_shift": 3.0},
    # round 3: the shift on uniform times, against motion_w10_uniform_t
    "motion_w10_uniform_shift3": {"motion_weight": 10.0, "time_sampling": "uniform", "time_shift": 3.0},
}
EPISODES, EPISODE_LENGTH, CLIP_LENGTH, BATCH = 48, 120, 6, 8
ACTION_SCALE = 100.0  # PushT's commanded deltas reach ~145 px
LR, WARMUP, MIN_LR_RATIO, EMA_DECAY, GRAD_CLIP = 1e-3, 50, 0.1, 0.99, 1.0


@dataclass(frozen=True)
class Variant:
    name: str
    frame_skip: int
    explore: float
    motion_weight: float
    action_injection: str
    time_sampling: str
    time_shift: float


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise SystemExit(f"unknown variant {name!r}; choose from {', '.join(VARIANTS)}")
    return Variant(name=name, **{**BASE, **VARIANTS[name]})


def dataset(root: Path, explore: float, frame_skip: int, split: str):
    from cola_train.data import ClipDataset, collect_pusht, load_episodes

    path = root / f"pusht-explore{explore:g}"
    if not (path / "meta" / "info.json").exists():
        collect_pusht(path, EPISODES, seed=0, episode_length=EPISODE_LENGTH, explore=explore, progress=False)
    episodes = load_episodes(path)
    return ClipDataset(episodes, CLIP_LENGTH, frame_skip=frame_skip, split=split)


def transition_actions(clips, items: list[dict]) -> torch.Tensor:
    """[B, T-1, 2 * frame_skip]: the commanded deltas of every environment step inside each transition."""
    skip = clips.frame_skip
    by_index = {episode.index: episode for episode in clips.episodes}
    rows = []
    for item in items:
        deltas = torch.from_numpy(by_index[item["episode"]].actions[:, 2:4])
        start = item["start"]
        span = deltas[start : start + (CLIP_LENGTH - 1) * skip]
        rows.append(span.reshape(CLIP_LENGTH - 1, 2 * skip))
    return torch.stack(rows).float() / ACTION_SCALE


def batch(clips, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    items = [clips[int(i)] for i in indices]
    video = torch.stack([item["video"] for item in items])
    states = torch.stack([item["states"] for item in items])
    return video, transition_actions(clips, items), states


def model_config(v: Variant):
    from cola_wm import DiTConfig

    return DiTConfig.preset("tiny", action_dim=2 * v.frame_skip, action_injection=v.action_injection)


def load_model(v: Variant, path: Path):
    from cola_wm import ActionConditionedDiT

    model = ActionConditionedDiT(model_config(v))
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def train(v: Variant, seed: int, steps: int, data_root: Path):
    from cola_train.optim import EMA, lr_factor
    from cola_wm import ActionConditionedDiT, flow_matching_loss

    clips = dataset(data_root, v.explore, v.frame_skip, "train")
    torch.manual_seed(seed)
    model = ActionConditionedDiT(model_config(v))
    ema = EMA(model, EMA_DECAY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    began = time.perf_counter()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = LR * lr_factor(step, steps, WARMUP, MIN_LR_RATIO)
        video, actions, _ = batch(clips, torch.randint(len(clips), (BATCH,), generator=generator))
        loss = flow_matching_loss(
            model,
            video,
            actions,
            time_sampling=v.time_sampling,
            time_shift=v.time_shift,
            generator=generator,
            motion_weight=v.motion_weight,
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        ema.update(model)
        losses.append(loss.item())
    ema.copy_to(model)
    return model.eval(), losses, steps / (time.perf_counter() - began)


@torch.no_grad()
def evaluate(
    model,
    v: Variant,
    data_root: Path,
    max_clips: int,
    seed: int,
    guidance: float = 1.0,
    sampler_shift: float = 1.0,
) -> dict[str, dict[str, float]]:
    clips = dataset(data_root, 0.0, v.frame_skip, "test")  # every variant is scored on the same scripted data
    stride = max(1, len(clips) // max_clips)
    indices = torch.arange(0, len(clips), stride)[:max_clips]
    batches = (batch(clips, indices[first : first + 16]) for first in range(0, len(indices), 16))
    return score_rollouts(model, batches, seed, guidance, sampler_shift)


@torch.no_grad()
def score_rollouts(
    model, batches, seed: int, guidance: float = 1.0, sampler_shift: float = 1.0
) -> dict[str, dict[str, float]]:
    """Roll out every ``(video, actions, states)`` of ``batches`` from its first frame with the real, a
    batch-shuffled and the null actions, and beside them copy the first frame; score each source."""
    from cola_eval.controllability import agent_position_error, moving_pixel_psnr, pusht_agent_positions
    from cola_eval.metrics import psnr
    from cola_wm import sample

    scores: dict[str, dict[str, list[torch.Tensor]]] = {}
    for number, (video, actions, states) in enumerate(batches):
        context, target = video[:, :1], video[:, 1:]
        truth = pusht_agent_positions(states[:, 1:], video.shape[-1])
        predictions = {"copy": context.expand_as(target)}
        sources = {"real": actions, "shuffled": actions.roll(1, dims=0), "null": None}
        for name, source in sources.items():
            generator = torch.Generator().manual_seed(seed * 1000 + 16 * number)
            if source is None:
                source = model.null_actions(video.shape[0], video.shape[1] - 1)
            predictions[name] = sample(
                model,
                context,
                source,
                steps=10,
                guidance_scale=guidance,
                time_shift=sampler_shift,
                generator=generator,
            )[:, 1:].clamp(-1, 1)
        for name, pred in predictions.items():
            entry = scores.setdefault(name, {"psnr": [], "moving_psnr": [], "agent_error": []})
            entry["psnr"].append(psnr(pred, target).flatten())
            entry["moving_psnr"].append(moving_pixel_psnr(pred, target, context).flatten())
            entry["agent_error"].append(agent_position_error(pred, truth).flatten())
    out = {}
    for name, entry in scores.items():
        values = {key: torch.cat(parts) for key, parts in entry.items()}
        out[name] = {key: float(value.nanmean()) for key, value in values.items()}
        out[name]["n_frames"] = int(values["psnr"].numel())
        out[name]["n_moving_frames"] = int((~values["moving_psnr"].isnan()).sum())
    return out


def _mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}"


COLUMNS = {
    "real psnr": lambda e: e["real"]["psnr"],
    "delta-psnr (real - shuffled)": lambda e: e["real"]["psnr"] - e["shuffled"]["psnr"],
    "moving-px delta": lambda e: e["real"]["moving_psnr"] - e["shuffled"]["moving_psnr"],
    "agent err real": lambda e: e["real"]["agent_error"],
    "shuffled": lambda e: e["shuffled"]["agent_error"],
    "null": lambda e: e["null"]["agent_error"],
    "copy": lambda e: e["copy"]["agent_error"],
    "ratio real/shuffled": lambda e: e["real"]["agent_error"] / e["shuffled"]["agent_error"],
}


def summarise(runs: list[dict], key: str = "eval") -> str:
    """One markdown row per variant: mean ± std over its seeds, of the scores under ``key`` (``eval``: no
    guidance; ``eval_g4``: guidance scale 4)."""
    lines = ["| variant | seeds | " + " | ".join(COLUMNS) + " |", "|---" * (len(COLUMNS) + 2) + "|"]
    for name in dict.fromkeys(run["variant"] for run in runs if key in run):
        group = [run[key] for run in runs if run["variant"] == name and key in run]
        cells = [_mean_std([column(e) for e in group]) for column in COLUMNS.values()]
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--max-clips", type=int, default=64)
    parser.add_argument(
        "--guidance",
        type=float,
        nargs="*",
        default=[],
        help="also score each model with classifier-free action guidance at these scales (eval_g<scale>)",
    )
    parser.add_argument(
        "--sampler-shifts",
        type=float,
        nargs="*",
        default=[],
        help="also score each model with its Euler steps spaced by cola_wm.shift_time (eval_shift<s>)",
    )
    parser.add_argument(
        "--save-models",
        action="store_true",
        help="keep each trained model (OUT/models/<variant>-seed<S>-<steps>.safetensors); with saved models "
        "a rerun adds the scores it lacks (new --guidance or --sampler-shifts) without training again",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--smoke", action="store_true", help="a few steps and clips per variant (CI)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    steps, max_clips = (3, 4) if args.smoke else (args.steps, args.max_clips)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "study.json"
    runs = json.loads(record.read_text()) if record.exists() else []
    done = {(run["variant"], run["seed"], run["steps"]): run for run in runs}
    extra = {f"eval_g{scale:g}": {"guidance": scale} for scale in args.guidance}
    extra.update({f"eval_shift{shift:g}": {"sampler_shift": shift} for shift in args.sampler_shifts})
    for name in args.variants:
        v = variant(name)
        for seed in args.seeds:
            saved = args.out / "models" / f"{name}-seed{seed}-{steps}.safetensors"
            if (name, seed, steps) in done:
                run = done[(name, seed, steps)]
                missing = [key for key in extra if key not in run]
                if missing and saved.exists():
                    model = load_model(v, saved)
                    for key in missing:
                        run[key] = evaluate(model, v, args.out / "data", max_clips, seed, **extra[key])
                    record.write_text(json.dumps(runs, indent=1))
                continue
            began = time.perf_counter()
            model, losses, rate = train(v, seed, steps, args.out / "data")
            if args.save_models:
                saved.parent.mkdir(exist_ok=True)
                save_file(model.state_dict(), str(saved))
            scores = evaluate(model, v, args.out / "data", max_clips, seed)
            guided = {
                key: evaluate(model, v, args.out / "data", max_clips, seed, **options)
                for key, options in extra.items()
            }
            run = {
                "variant": name,
                "seed": seed,
                "steps": steps,
                "settings": {key: getattr(v, key) for key in BASE},
                "final_loss": statistics.fmean(losses[-50:]),
                "steps_per_s": rate,
                "minutes": (time.perf_counter() - began) / 60,
                "eval": scores,
                **guided,
            }
            runs.append(run)
            record.write_text(json.dumps(runs, indent=1))
            real, shuffled = scores["real"], scores["shuffled"]
            print(
                f"{name} seed {seed}: agent error real {real['agent_error']:.2f} shuffled "
                f"{shuffled['agent_error']:.2f} copy {scores['copy']['agent_error']:.2f}; moving-px delta "
                f"{real['moving_psnr'] - shuffled['moving_psnr']:+.2f} dB; {run['minutes']:.1f} min",
                flush=True,
            )
    chosen = [run for run in runs if run["variant"] in args.variants and run["steps"] == steps]
    if chosen:
        print(summarise(chosen))
        for key in extra:
            print(f"{key}:")
            print(summarise(chosen, key))
    return 0 if all(math.isfinite(run["final_loss"]) for run in chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
