"""The `cola-train` command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cola-train", description="CoLA data collection and training.")
    commands = parser.add_subparsers(dest="command", required=True)
    from cola_train.data.cli import add_collect_command

    add_collect_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
