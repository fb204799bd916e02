"""Why the quickstart's IDM collapses, one LAM factor at a time: the warm-up (and with ``--joint`` the joint
stage after it), from one pretrained DiT.

Every variant starts from the same action-free pretrained world model (the raw weights of the last checkpoint
of ``--pretrained RUN``, e.g. a run of the quickstart preset with ``stages=["pretrain"]``) and a fresh LAM
built with the variant's settings (the seed sets the LAM's initialisation, the batches and the noise), runs
the quickstart's warm-up (the DiT frozen; IDM, VQ and action blocks trained through the motion-weighted flow
loss) with one LAM setting changed, and is scored on the held-out clips: codebook utilization and geometry
(IDM-output spread, used-code spread) and the agent's position error of rollouts with inferred against
shuffled latent actions, and a linear probe of the agent's displacement from the latent actions.
``--joint`` runs the quickstart's joint stage after the warm-up (the world model trained too), as the
quickstart does; records of the two protocols are kept apart by the variant's name (``@joint``).

    uv run python benchmarks/lam_collapse_study.py --pretrained PRE --out OUT [--seeds 0 1] [--variants ...]
        [--joint]

Writes ``OUT/study.json`` and prints one table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

FLOOR = ["model.lam.variance_floor=0.1"]
# The quickstart's LAM since round 3: the floor and the frame-difference input.
FLOOR_DIFF = [*FLOOR, 'model.lam.idm_input="difference"']
# Rounds 1-5 ran the transformer IDM, which the quickstart preset has not held since round 7.
TRANSFORMER = [
    'model.lam.idm_backbone="transformer"',
    'model.lam.keypoint_features="position_and_displacement"',
]

TRANSFORMER_VARIANTS: dict[str, list[str]] = {
    "base": [],
    "lr_lam_1e-4": ["optim.lr_lam=1e-4"],
    "l2_codes": ["model.lam.l2_normalize=true"],
    "codes_8": ["model.lam.num_codes=8"],
    "beta_0.05": ["model.lam.beta=0.05"],
    "variance_floor_0.1": FLOOR,
    "idm_difference": ['model.lam.idm_input="difference"'],
    "decorrelate_1": ["model.lam.decorrelation_weight=1.0"],
    # round 3: one factor at a time on top of the floor (the quickstart's LAM since round 2)
    "floor_idm_difference": FLOOR_DIFF,
    "floor_codes_8": [*FLOOR, "model.lam.num_codes=8"],
    "floor_l2_codes": [*FLOOR, "model.lam.l2_normalize=true"],
    "floor_uniform_shift3": [*FLOOR, 'train.time_sampling="uniform"', "train.time_shift=3.0"],
    # round 4: one factor at a time on top of floor + frame difference ("floor_diff": round 3's
    # floor_idm_difference rerun under the name its record keeps)
    "floor_diff": FLOOR_DIFF,
    "floor_diff_l2_codes": [*FLOOR_DIFF, "model.lam.l2_normalize=true"],
    "floor_diff_no_crop": [*FLOOR_DIFF, "train.crop_scale_min=1.0"],
    "floor_diff_lr_action_3e-3": [*FLOOR_DIFF, "optim.lr_action=3e-3"],
    # round 5: the IDM's latent is its query tokens plus the mean change of its patch tokens
    "floor_diff_change_readout": [*FLOOR_DIFF, 'model.lam.idm_readout="query_plus_change"'],
}
VARIANTS = {name: [*TRANSFORMER, *overrides] for name, overrides in TRANSFORMER_VARIANTS.items()}
# round 6: the keypoint IDM in place of the transformer (it reads frame pairs, so no difference input),
# reading the keypoints' positions and displacements
VARIANTS["floor_keypoints"] = [
    *FLOOR,
    'model.lam.idm_input="pair"',
    'model.lam.idm_backbone="keypoints"',
    'model.lam.keypoint_features="position_and_displacement"',
]
# round 7 (through the joint stage): one factor at a time on top of the keypoint IDM
KEYPOINTS = VARIANTS["floor_keypoints"]
VARIANTS |= {
    "keypoints_no_floor": [*KEYPOINTS, "model.lam.variance_floor=0.0"],
    "keypoints_motion_only": [*KEYPOINTS, 'model.lam.keypoint_features="displacement"'],
    "keypoints_lr_lam_3e-3": [*KEYPOINTS, "optim.lr_lam=3e-3"],
}
# round 8 (through the joint stage): on top of the quickstart's LAM since round 7, the same 750 steps split
# 500 warm-up + 250 joint instead of 250 + 500
MOTION_ONLY = VARIANTS["keypoints_motion_only"]
VARIANTS |= {
    "motion_only_warmup_500": [*MOTION_ONLY, "warmup.steps=500", "joint.steps=250"],
}


def warm_up(
    pretrained: Path, overrides: list[str], seed: int, steps: int | None, joint: bool = False
) -> tuple[Any, Any, dict]:
    """The quickstart's warm-up (then its joint stage when ``joint``) with ``overrides`` from the raw
    world-model weights of ``pretrained``'s last checkpoint (the LAM fresh, built with the variant's
    settings); returns (lam, wm, data config)."""
    from cola_train import build_models, load_config, load_dataset, run_stages
    from cola_train.checkpoint import latest_checkpoint, load_checkpoint

    source = json.loads((pretrained / "config.json").read_text())
    config = load_config(
        preset="quickstart",
        overrides=[
            f'data.path="{source["data"]["path"]}"',
            'stages=["warmup", "joint"]' if joint else 'stages=["warmup"]',
            f"seed={seed}",
            "train.progress=false",
            *([f"warmup.steps={steps}"] if steps else []),
            *overrides,
        ],
    )
    models = build_models(config)
    models.wm.load_state_dict(load_checkpoint(latest_checkpoint(pretrained / "checkpoints")).group("wm"))
    run_stages(config, models, load_dataset(config), ["warmup", "joint"] if joint else ["warmup"])
    return models.lam.eval(), models.wm.eval(), config.to_dict()["data"]


def score(lam: Any, wm: Any, data: dict, max_clips: int) -> dict[str, float]:
    from cola_eval.codebook import codebook_usage
    from cola_eval.probe import EvenlySpaced, probe_latent_actions
    from cola_eval.rollout import evaluate_rollouts
    from cola_train.data import ClipDataset, load_episodes

    episodes = load_episodes(data["path"])
    held_out, train = (
        ClipDataset(episodes, data["clip_length"], frame_skip=data["frame_skip"], split=split)
        for split in ("test", "train")
    )
    probe = probe_latent_actions(
        lam,
        EvenlySpaced(train, 512),
        EvenlySpaced(held_out, 512),
        target="state_change",
        action_columns=[0, 1],
    )["embedding"]
    health = codebook_usage(lam, held_out, max_clips=max_clips).health()
    scores, guided = (
        evaluate_rollouts(
            wm,
            lam,
            held_out,
            sources=("inferred", "shuffled"),
            max_clips=max_clips,
            agent_states=True,
            guidance_scale=scale,
        ).controllability()
        for scale in (1.0, 4.0)
    )
    return {
        "utilization": health["utilization"],
        "latent_spread": health["latent_spread"],
        "code_spread": health["code_spread"],
        "agent_error_inferred": scores["inferred"].agent_error,
        "agent_error_shuffled": scores["shuffled"].agent_error,
        "moving_delta": scores["inferred"].moving_psnr - scores["shuffled"].moving_psnr,
        "agent_error_inferred_g4": guided["inferred"].agent_error,
        "agent_error_shuffled_g4": guided["shuffled"].agent_error,
        "moving_delta_g4": guided["inferred"].moving_psnr - guided["shuffled"].moving_psnr,
        "probe_r2_displacement": probe["r2"],
        "n_clips": min(max_clips, len(held_out)),
    }


def table(runs: list[dict]) -> str:
    keys = [
        "utilization",
        "latent_spread",
        "code_spread",
        "agent_error_inferred",
        "agent_error_shuffled",
        "moving_delta",
        "moving_delta_g4",
        "probe_r2_displacement",
    ]
    ratios = {
        "ratio": ("agent_error_inferred", "agent_error_shuffled"),
        "ratio at guidance 4": ("agent_error_inferred_g4", "agent_error_shuffled_g4"),
    }
    lines = [
        "| variant | seeds | " + " | ".join([*keys, *ratios]) + " |",
        "|---" * (len(keys) + len(ratios) + 2) + "|",
    ]
    for name in dict.fromkeys(run["variant"] for run in runs):
        group = [run["scores"] for run in runs if run["variant"] == name]
        cells = []
        for key in [*keys, *ratios]:
            if key in ratios:
                top, bottom = ratios[key]
                values = [g[top] / g[bottom] for g in group if top in g]
            else:
                values = [g[key] for g in group if key in g]
            if not values:
                cells.append("not run")
                continue
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.3f} ± {spread:.3f}")
        lines.append(f"| {name} | {len(group)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=None, help="warm-up steps (default: the quickstart's)")
    parser.add_argument("--max-clips", type=int, default=32)
    parser.add_argument("--joint", action="store_true", help="run the joint stage after the warm-up")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    record = args.out / "study.json"
    runs = json.loads(record.read_text()) if record.exists() else []
    done = {(run["variant"], run["seed"]) for run in runs}
    suffix = "@joint" if args.joint else ""
    for name in args.variants:
        for seed in args.seeds:
            if (name + suffix, seed) in done:
                continue
            lam, wm, data = warm_up(args.pretrained.resolve(), VARIANTS[name], seed, args.steps, args.joint)
            scores = score(lam, wm, data, args.max_clips)
            run = {"variant": name + suffix, "seed": seed, "overrides": VARIANTS[name], "scores": scores}
            runs.append(run)
            record.write_text(json.dumps(runs, indent=1))
            print(name + suffix, seed, runs[-1]["scores"], flush=True)
    print(table([run for run in runs if run["variant"] in {name + suffix for name in args.variants}]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
