"""`cola-eval report`'s flags come from ReportOptions' fields: one flag per field, parsed back into the same
options."""

import dataclasses

from cola_eval.cli import build_parser, options_from_args
from cola_eval.report import ReportOptions
from cola_eval.weights import WeightsSource


def _parse(*flags: str) -> ReportOptions:
    return options_from_args(build_parser().parse_args(["report", "RUN", *flags]))


def test_no_flags_give_the_default_options() -> None:
    assert _parse() == ReportOptions()


def test_every_option_has_a_flag_and_parses_back() -> None:
    flags = "--context 2 --no-adapter --planning --adapter-columns 0 1 --frames 16 --i3d-weights i3d.st"
    options = _parse(*flags.split(), "--lpips-repo", "org/lpips", "--split", "val", "--probe-ridge", "0.5")
    assert (options.num_context, options.adapter, options.planning) == (2, False, True)
    assert options.adapter_columns == [0, 1] and options.frames == 16 and options.split == "val"
    assert options.fvd_weights == WeightsSource(local_path="i3d.st")
    assert options.lpips_weights == WeightsSource(repo_id="org/lpips") and options.probe_ridge == 0.5
    help_text = build_parser()._subparsers._group_actions[0].choices["report"].format_help()
    for option in dataclasses.fields(ReportOptions):
        if option.metadata.get("cli") is False:
            continue
        flag = option.metadata.get("flag", option.name).replace("_", "-")
        assert flag in help_text, option.name
