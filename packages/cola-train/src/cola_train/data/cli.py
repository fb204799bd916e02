"""`cola-train collect`: the data collection subcommand."""

from __future__ import annotations

import argparse
import sys
import time

from cola_train.data.optional import require_pusht

ENVIRONMENTS = ("pusht",)


def add_collect_command(commands: argparse._SubParsersAction) -> None:
    """Register `collect ENV --episodes N --out DIR [--seed S] [--episode-length L] [--workers W]
    [--explore P] [--no-videos]`."""
    parser = commands.add_parser(
        "collect",
        help="collect a dataset in a built-in environment",
        description="Collect episodes with a scripted exploration policy into a LeRobot v2.1 dataset.",
    )
    parser.add_argument("environment", choices=ENVIRONMENTS, help="the environment (only pusht for now)")
    parser.add_argument("--episodes", type=int, required=True, help="how many episodes to collect")
    parser.add_argument("--out", required=True, help="the dataset directory to create (new or empty)")
    parser.add_argument("--seed", type=int, default=0, help="run seed; the same seed gives the same data")
    parser.add_argument("--episode-length", type=int, default=None, help="frames per episode (default 200)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument(
        "--explore",
        type=float,
        default=0.0,
        help="share of the pusher's plans that are random wanders instead of pushes (0-1; default 0)",
    )
    parser.add_argument(
        "--no-videos",
        dest="use_videos",
        action="store_false",
        help="store the frames as PNG images in the parquet rows instead of one mp4 per episode (needs no "
        "PyAV to write or read)",
    )
    parser.set_defaults(func=run_collect)


def run_collect(args: argparse.Namespace) -> int:
    try:
        require_pusht("cola-train collect pusht")
    except ImportError as error:
        print(f"cola-train collect: {error}", file=sys.stderr)
        return 2
    from cola_train.data.collect import DEFAULT_EPISODE_LENGTH, collect_pusht

    episode_length = args.episode_length or DEFAULT_EPISODE_LENGTH
    began = time.perf_counter()
    try:
        out = collect_pusht(
            args.out,
            episodes=args.episodes,
            seed=args.seed,
            episode_length=episode_length,
            workers=args.workers,
            explore=args.explore,
            use_videos=args.use_videos,
        )
    except ValueError as error:
        print(f"cola-train collect: {error}", file=sys.stderr)
        return 2
    frames = args.episodes * episode_length
    seconds = time.perf_counter() - began
    print(
        f"wrote {args.episodes} episodes ({frames} frames) to {out} in {seconds:.1f} s "
        f"({frames / seconds:.0f} frames/s)"
    )
    return 0
