"""Checkpoint I/O of a run: what a stage saves (models, EMA, optimizer, RNG, the adaptive warm-up's window)
and how a resumed run restores it. The file format is :mod:`cola_train.checkpoint`'s."""

from __future__ import annotations

from typing import Any

import torch
from cola_lam.blocks import legacy_mlp_renames, upgrade_legacy_mlp_keys
from cola_lam.hub_io import load_state_strict
from torch import nn

from cola_train.adaptive_warmup import AdaptiveWarmup
from cola_train.checkpoint import (
    Checkpoint,
    capture_rng,
    checkpoint_path,
    optimizer_from_tensors,
    optimizer_to_tensors,
    prune_checkpoints,
    restore_rng,
    save_checkpoint,
)
from cola_train.distributed import barrier, full_state_dict
from cola_train.session import Session


def parameter_names(models: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in models.named_parameters()}


def model_tensors(session: Session) -> dict[str, dict[str, torch.Tensor]]:
    """Full (unsharded) model and EMA state; every rank must call it under FSDP."""
    models = session.models
    groups = {
        "lam": full_state_dict(models.lam),
        "wm": full_state_dict(models.wm),
        "ema": session.ema.state_dict(),
    }
    if models.decoder is not None:
        groups["decoder"] = full_state_dict(models.decoder)
    if models.real_actions is not None:
        groups["real_actions"] = full_state_dict(models.real_actions)
    return groups


def save_stage(
    session: Session,
    name: str,
    step: int,
    optimizer: torch.optim.Optimizer,
    adaptive: AdaptiveWarmup,
    stage_done: bool,
) -> None:
    """Checkpoint after ``step`` steps of stage ``name`` (rank 0 writes; everyone waits)."""
    if session.checkpoint_dir is None:
        return
    # Gathering FSDP shards is collective, so every rank builds the tensors; rank 0 writes them.
    optim_tensors, optim_meta = optimizer_to_tensors(optimizer, parameter_names(session.models))
    groups = {**model_tensors(session), "optim": optim_tensors}
    if session.context.is_main:
        rng_tensors, rng_meta = capture_rng()
        groups["rng"] = rng_tensors
        state = {
            "stage": name,
            "stage_index": session.config.stages.index(name),
            "step": step,
            "stage_done": stage_done,
            "global_step": session.global_step,
            "ema_updates": session.ema.updates,
            "optim": optim_meta,
            "rng": rng_meta,
            "adaptive": adaptive.state(),
            "config": session.config.to_dict(),
        }
        save_checkpoint(checkpoint_path(session.checkpoint_dir, session.global_step), groups, state)
        prune_checkpoints(session.checkpoint_dir, session.config.train.keep_checkpoints)
    barrier(session.context)


def resume_stage(
    session: Session, name: str, optimizer: torch.optim.Optimizer, adaptive: AdaptiveWarmup
) -> int:
    """The step stage ``name`` starts from: 0, or the resume checkpoint's step within this stage, whose
    optimizer, adaptive warm-up and RNG state then load."""
    resume = session.resume
    if resume is None or resume.state["stage"] != name:
        return 0
    tensors, meta = _upgrade_legacy_optimizer_names(
        session.models, resume.group("optim"), resume.state["optim"]
    )
    optimizer_from_tensors(optimizer, parameter_names(session.models), tensors, meta)
    adaptive.load(resume.state.get("adaptive"))
    restore_rng(resume.group("rng"), resume.state["rng"])
    session.resume = None
    return resume.state["step"]


def _upgrade_legacy_optimizer_names(
    models: nn.Module, tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Optimizer state of a checkpoint written before the MLPs were shared, under today's parameter names
    (the model weights are renamed by ``load_state_dict`` / :func:`load_state_strict`)."""
    renames = legacy_mlp_renames(models, (name for group in meta["param_groups"] for name in group["params"]))
    if not renames:
        return tensors, meta
    groups = [
        {**group, "params": [renames.get(n, n) for n in group["params"]]} for group in meta["param_groups"]
    ]
    scalars = {renames.get(name, name): value for name, value in meta["scalars"].items()}
    return upgrade_legacy_mlp_keys(models, tensors), {**meta, "param_groups": groups, "scalars": scalars}


def restore_models(session: Session, checkpoint: Checkpoint) -> None:
    """Load model, EMA and step state from ``checkpoint`` (the optimizer state loads when its stage starts,
    :func:`resume_stage`)."""
    models = session.models
    parts = {"lam": models.lam, "wm": models.wm, "decoder": models.decoder}
    for prefix, module in {**parts, "real_actions": models.real_actions}.items():
        if module is not None:
            load_state_strict(module, checkpoint.group(prefix), f"checkpoint {checkpoint.path} ({prefix}.*)")
    session.ema.load_state_dict(checkpoint.group("ema"), checkpoint.state["ema_updates"])
    session.global_step = checkpoint.state["global_step"]
    session.resume = None if checkpoint.state["stage_done"] else checkpoint
