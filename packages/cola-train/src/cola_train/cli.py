"""The `cola-train` command line: collect | quickstart | run | two-stage."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from cola_train import __version__

    parser = argparse.ArgumentParser(prog="cola-train", description="CoLA data collection and training.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    from cola_train.data.cli import add_collect_command

    add_collect_command(commands)
    _add_quickstart_command(commands)
    _add_run_command(commands, "run", "Run the stages of a config (default: pretrain, warmup, joint).", None)
    _add_run_command(
        commands,
        "two-stage",
        "The two-stage baseline: lam_recon then wm_finetune.",
        ["lam_recon", "wm_finetune"],
    )
    return parser


def _add_quickstart_command(commands: argparse._SubParsersAction) -> None:
    quick = commands.add_parser(
        "quickstart", help="Collect PushT and co-train a tiny model on the CPU (~15 min on 2 cores)."
    )
    quick.add_argument(
        "--out", default="cola-quickstart", help="folder for data/ and run/ (default: %(default)s)"
    )
    quick.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. joint.steps=100 (repeatable)",
    )
    _add_threads_flag(quick)
    quick.set_defaults(func=_quickstart)


def _add_threads_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads for CPU training (sets train.threads): N fixes the count; 0, the default, adapts "
        "it to the machine's load as the run goes (with OMP_NUM_THREADS set, that count is kept instead)",
    )


def _overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` overrides, then ``--threads`` (which wins over a ``--set train.threads``)."""
    threads = [] if args.threads is None else [f"train.threads={args.threads}"]
    return [*args.overrides, *threads]


def _add_run_command(
    commands: argparse._SubParsersAction, name: str, text: str, stages: list[str] | None
) -> None:
    from cola_train.config import PRESETS

    run = commands.add_parser(name, help=text, description=text)
    run.add_argument(
        "--config",
        type=Path,
        help="TOML or YAML config file, or the name of one shipped with cola-train (e.g. two-stage.yaml)",
    )
    run.add_argument("--preset", choices=PRESETS, help="start from a shipped preset (configs/<name>.toml)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override, e.g. optim.lr_dit=1e-4 (repeatable)",
    )
    run.add_argument("--out", type=Path, help="run directory (required unless --print-config)")
    run.add_argument("--print-config", action="store_true", help="print the resolved config as JSON and exit")
    run.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint"
    )
    run.add_argument(
        "--init-from",
        metavar="RUN",
        help="start the models from this run's final weights (run directory, checkpoint file or Hub "
        "repo id); the stages of this config then run from their first step",
    )
    run.add_argument("--push-to-hub", metavar="REPO", help="push models, config and metrics to this Hub repo")
    _add_threads_flag(run)
    run.set_defaults(func=_run, stages=stages)


def _run(args: argparse.Namespace) -> int:
    from cola_train.config import load_config
    from cola_train.pipeline import train

    overrides = _overrides(args)
    if args.stages is not None:
        overrides.insert(0, "stages=[" + ", ".join(f'"{s}"' for s in args.stages) + "]")
    config = load_config(args.config, overrides, preset=args.preset)
    if args.init_from is not None:
        config = dataclasses.replace(config, init_from=args.init_from)
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0
    if args.out is None:
        raise ValueError(f"cola-train {args.command} needs --out DIR (the run directory)")
    run_dir = train(config, args.out, resume=args.resume, push_to_hub=args.push_to_hub)
    _print_where(run_dir)
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from cola_train.quickstart import quickstart

    run_dir = quickstart(args.out, overrides=_overrides(args))
    _print_where(run_dir)
    return 0


def _print_where(run_dir: Path) -> None:
    print(f"models:  {run_dir / 'models'}  (lam/, wm/: load with cola_train.load_trained({str(run_dir)!r}))")
    print(f"metrics: {run_dir / 'metrics.jsonl'}")
    print(f"config:  {run_dir / 'config.json'}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from cola_train.loop import TrainingDiverged
    from cola_train.run_files import RunStorageError

    try:
        return int(args.func(args) or 0)
    except (TrainingDiverged, RunStorageError) as error:
        print(f"cola-train: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"cola-train: error: {error}", file=sys.stderr)
        return 2
