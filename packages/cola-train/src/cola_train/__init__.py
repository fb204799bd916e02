"""cola_train: the co-training engine (pretrain, warm-up, joint; two-stage baseline) and its data tools."""

from importlib.metadata import version as _version

__version__ = _version("cola-train")

from cola_train.config import (
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    StageConfig,
    TrainConfig,
    WarmupConfig,
    load_config,
    model_configs,
)
from cola_train.loop import StageOutcome, TrainingDiverged
from cola_train.model import CoLA, Losses
from cola_train.pipeline import (
    build_models,
    joint,
    lam_recon,
    load_dataset,
    pretrain,
    run_stages,
    train,
    warmup,
    wm_finetune,
)
from cola_train.runs import TrainedRun, load_trained
from cola_train.stages import StagePlan, plan_stage

__all__ = [
    "CoLA",
    "DataConfig",
    "Losses",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "StageConfig",
    "StageOutcome",
    "StagePlan",
    "TrainConfig",
    "TrainedRun",
    "TrainingDiverged",
    "WarmupConfig",
    "build_models",
    "joint",
    "lam_recon",
    "load_config",
    "load_dataset",
    "load_trained",
    "model_configs",
    "plan_stage",
    "pretrain",
    "run_stages",
    "train",
    "warmup",
    "wm_finetune",
]
