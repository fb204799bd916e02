"""cola_eval: evaluations of CoLA runs: video metrics (PSNR, SSIM, LPIPS, FVD), controllability, codebook
health, linear probes, the action adapter, visual planning on PushT, code atlases and reports."""

from importlib.metadata import version as _version

__version__ = _version("cola-eval")

from typing import Any

from cola_train.data.optional import require_pusht

from cola_eval.adapter import ActionAdapter, AdapterConfig, adapter_accuracy, train_adapter
from cola_eval.atlas import code_atlas, write_atlas
from cola_eval.codebook import CodebookUsage, codebook_usage, plot_training_curves, read_training_metrics
from cola_eval.controllability import (
    agent_position_error,
    agent_positions,
    masked_psnr,
    moving_mask,
    moving_pixel_psnr,
    pusht_agent_positions,
)
from cola_eval.fvd import fvd, i3d_features, load_i3d
from cola_eval.i3d import InceptionI3d
from cola_eval.lpips import LPIPS, load_lpips, lpips_distance
from cola_eval.metrics import feature_statistics, frechet_distance, psnr, ssim
from cola_eval.probe import LinearProbe, fit_linear_probe, probe_latent_actions, regression_scores
from cola_eval.report import ReportOptions, write_report
from cola_eval.rollout import (
    ROLLOUT_SOURCES,
    Controllability,
    RolloutEvaluation,
    action_matches,
    evaluate_rollouts,
    latent_actions,
    rollout,
)
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
    "LPIPS",
    "ROLLOUT_SOURCES",
    "ActionAdapter",
    "AdapterConfig",
    "CodebookUsage",
    "Controllability",
    "InceptionI3d",
    "LinearProbe",
    "PlanningConfig",
    "PlanningWorldModel",
    "ReportOptions",
    "RolloutEvaluation",
    "StateReadout",
    "WeightsSource",
    "WeightsUnavailable",
    "action_matches",
    "adapter_accuracy",
    "agent_position_error",
    "agent_positions",
    "code_atlas",
    "codebook_usage",
    "evaluate_planning",
    "evaluate_rollouts",
    "feature_statistics",
    "fit_linear_probe",
    "frechet_distance",
    "fvd",
    "i3d_features",
    "latent_actions",
    "load_i3d",
    "load_lpips",
    "lpips_distance",
    "masked_psnr",
    "moving_mask",
    "moving_pixel_psnr",
    "plot_training_curves",
    "probe_latent_actions",
    "psnr",
    "pusht_agent_positions",
    "read_training_metrics",
    "regression_scores",
    "rollout",
    "ssim",
    "train_adapter",
    "train_readout",
    "write_atlas",
    "write_report",
]
