"""cola_eval: evaluations of CoLA runs: video metrics (PSNR, SSIM, LPIPS, FVD), controllability, codebook
health, linear probes, the action adapter, visual planning on PushT, code atlases and reports."""

from importlib.metadata import version as _version

__version__ = _version("cola-eval")

from typing import Any

from cola_train.data.optional import require_pusht

from cola_eval.adapter import ActionAdapter, AdapterConfig, train_adapter
from cola_eval.atlas import code_atlas, write_atlas
from cola_eval.codebook import CodebookUsage, codebook_usage
from cola_eval.controllability import moving_pixel_psnr, pusht_agent_positions
from cola_eval.evaluation import EvaluationData, MetricNetworks, RunEvaluation, evaluate_run, run_data
from cola_eval.fvd import fvd, load_i3d
from cola_eval.lpips import load_lpips, lpips_distance
from cola_eval.metrics import frechet_distance, psnr, ssim
from cola_eval.probe import probe_latent_actions
from cola_eval.report import ReportOptions, write_report
from cola_eval.rollout import ROLLOUT_SOURCES, RolloutEvaluation, evaluate_rollouts
from cola_eval.weights import WeightsSource, WeightsUnavailable

# PushT planning is imported on first use: it needs the simulator (`cola-eval[pusht]`).
_PLANNING = {
    "PlanningConfig": "PlanningConfig",
    "StateReadout": "StateReadout",
    "evaluate_planning": "evaluate_planning",
    "train_readout": "train_readout",
    "PlanningWorldModel": "WorldModel",
}


def __getattr__(name: str) -> Any:
    if name not in _PLANNING:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    require_pusht("PushT planning")
    from cola_eval import planning

    return getattr(planning, _PLANNING[name])


__all__ = [
    "ROLLOUT_SOURCES",
    "ActionAdapter",
    "AdapterConfig",
    "CodebookUsage",
    "EvaluationData",
    "MetricNetworks",
    "PlanningConfig",
    "PlanningWorldModel",
    "ReportOptions",
    "RolloutEvaluation",
    "RunEvaluation",
    "StateReadout",
    "WeightsSource",
    "WeightsUnavailable",
    "code_atlas",
    "codebook_usage",
    "evaluate_planning",
    "evaluate_rollouts",
    "evaluate_run",
    "frechet_distance",
    "fvd",
    "load_i3d",
    "load_lpips",
    "lpips_distance",
    "moving_pixel_psnr",
    "probe_latent_actions",
    "psnr",
    "pusht_agent_positions",
    "run_data",
    "ssim",
    "train_adapter",
    "train_readout",
    "write_atlas",
    "write_report",
]
