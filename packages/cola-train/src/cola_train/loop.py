"""The one training loop every stage runs through: :func:`run_stage` around :func:`train_step`.

Each step is a pure function of (seed, stage, step) (see :mod:`cola_train.batches`), so a resumed run
reproduces an uninterrupted one, and N processes that split the shards reproduce one process that accumulates
them. Values come back from the device only at log steps (:mod:`cola_train.step_log`) and in the one check
per step that nothing diverged. On a CPU the torch thread count follows the machine's load
(:mod:`cola_train.threads`; bit-identical resumes need a fixed count).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cola_train.adaptive_warmup import AdaptiveWarmup
from cola_train.batches import batch_indices, check_finite, derive_seed, load_batch, shard_layout
from cola_train.checkpoint import latest_checkpoint
from cola_train.codebook_placement import check_fsdp_codebook, sync_codebook
from cola_train.config import RunConfig
from cola_train.distributed import DistContext, all_gather_cat, all_reduce_mean, full_tensor, wrap_model
from cola_train.model import Losses
from cola_train.optim import build_optimizer, lr_factor, set_learning_rates
from cola_train.session import Session
from cola_train.stage_checkpoint import resume_stage, save_stage
from cola_train.stages import StagePlan, plan_stage
from cola_train.step_log import LogWindow, log_step, loss_record


class TrainingDiverged(RuntimeError):
    """A loss or gradient norm became NaN or infinite; the run stopped before applying that step."""


@dataclass
class StageOutcome:
    name: str
    steps: int
    final_loss: float | None
    ended_early: bool = False


@dataclass(frozen=True)
class StepResult:
    """One optimizer step: the losses averaged over the global batch (``codes``: every rank's, flattened),
    the gradient norm before clipping, and the learning rates; tensors stay on the device."""

    losses: Losses
    grad_norm: torch.Tensor
    lr: dict[str, float]


@dataclass
class Stage:
    """What one stage holds while it trains."""

    session: Session
    plan: StagePlan
    index: int
    total: int
    wrapped: nn.Module
    optimizer: torch.optim.Optimizer
    trainable: list[nn.Parameter]
    micro: int
    shards_per_rank: int
    autocast: Any
    adaptive: AdaptiveWarmup


def run_stage(session: Session, name: str) -> StageOutcome:
    """Run stage ``name`` of ``session.config`` from its start (or from the session's resume checkpoint)."""
    config = session.config
    stage = start_stage(session, name)
    start = resume_stage(session, name, stage.optimizer, stage.adaptive)
    progress = _progress_bar(config, session.context, name, stage.total, start)
    window = LogWindow(time.perf_counter())
    result, ended_early, step = None, False, start
    session.threads.start()
    for step in range(start, stage.total):
        result = train_step(stage, step)
        session.threads.step_done()
        window.add(result.losses.codes)
        stage.adaptive.add(result.losses.loss, result.losses.codes, session.models)
        done = step + 1
        if done % config.train.log_every == 0 or done == stage.total or step == 0:
            record = log_step(session, stage.plan, stage.index, step, result, window)
            if progress is not None:
                progress.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
        if progress is not None:
            progress.update(1)
        if stage.adaptive.should_stop(done, session, stage.index, step):
            ended_early = True
            break
        if done % config.train.checkpoint_every == 0 and done < stage.total:
            save_stage(session, name, done, stage.optimizer, stage.adaptive, stage_done=False)
    if progress is not None:
        progress.close()
    steps_run = step + 1 if stage.total > start else start
    save_stage(session, name, steps_run, stage.optimizer, stage.adaptive, stage_done=True)
    final_loss = None if result is None else float(result.losses.loss)
    return StageOutcome(name=name, steps=steps_run, final_loss=final_loss, ended_early=ended_early)


def start_stage(session: Session, name: str) -> Stage:
    """Freeze what stage ``name`` does not train, wrap the models for data parallelism, build the
    optimizer."""
    config, context, models = session.config, session.context, session.models
    plan = plan_stage(name, config.stage(name))
    if config.train.strategy == "fsdp":
        check_fsdp_codebook(models, plan, context)
        # fully_shard swaps every parameter for a sharded one in place: collect them after sharding.
        wrapped = wrap_model(models, context, "fsdp")
        groups = models.prepare(plan)
    else:
        # DDP records which parameters need gradients when it wraps: set the freeze switches first.
        groups = models.prepare(plan)
        wrapped = wrap_model(models, context, "ddp")
    rates = {
        "lam": config.optim.lr_lam,
        "action": config.optim.lr_action,
        "dit": config.optim.lr_dit,
        "decoder": config.optim.lr_decoder,
    }
    micro, shards_per_rank = shard_layout(config, context)
    autocast = mixed_precision(context.device, config.train.bf16)
    return Stage(
        session=session,
        plan=plan,
        index=config.stages.index(name),
        total=config.stage(name).steps,
        wrapped=wrapped,
        optimizer=build_optimizer(groups, rates, config.optim.betas, config.optim.weight_decay),
        trainable=[p for parameters in groups.values() for p in parameters],
        micro=micro,
        shards_per_rank=shards_per_rank,
        autocast=autocast,
        adaptive=AdaptiveWarmup(config, name),
    )


def mixed_precision(device: torch.device, bf16: bool) -> contextlib.AbstractContextManager:
    """The forward passes' autocast: bf16 on CUDA when ``train.bf16``; none on the CPU, where bf16 autocast
    ran the quickstart's steps 12x slower (docs/decisions.md, CPU training)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(stage: Stage, step: int) -> StepResult:
    """Step ``step`` of ``stage``: every shard of this process's part of the batch forward and backward, then
    one optimizer step (and the EMA of the world model)."""
    session = stage.session
    config, context, models = session.config, session.context, session.models
    optim = config.optim
    lr = set_learning_rates(
        stage.optimizer, lr_factor(step, stage.total, optim.warmup_steps, optim.min_lr_ratio)
    )
    indices = batch_indices(config.seed, stage.index, step, len(session.dataset), config.train.batch_size)
    stage.optimizer.zero_grad(set_to_none=True)
    shards = []
    for local in range(stage.shards_per_rank):
        shard = context.rank * stage.shards_per_rank + local
        shard_seed = derive_seed(config.seed, stage.index, step, shard + 1)
        # The global RNG too, for anything inside the models that does not take a generator (dead-code
        # restart).
        torch.manual_seed(shard_seed)
        generator = torch.Generator(context.device).manual_seed(shard_seed)
        clips = indices[shard * stage.micro : (shard + 1) * stage.micro]
        batch = load_batch(session.dataset, clips, context.device, models.real_actions is not None)
        check_finite(batch, clips, f"stage {stage.plan.name!r} at step {step}")
        with _no_sync(stage.wrapped, last=local == stage.shards_per_rank - 1):
            with stage.autocast:
                losses = stage.wrapped(batch, stage.plan, generator)
            (losses.loss / stage.shards_per_rank).backward()
        shards.append(losses)
    mean = _batch_mean(shards, context)
    grad_norm = full_tensor(torch.nn.utils.clip_grad_norm_(stage.trainable, optim.grad_clip))
    _check_finite_step(session, stage.plan.name, step, mean, grad_norm)
    stage.optimizer.step()
    sync_codebook(session, stage.plan)
    if stage.plan.wm_trains:
        session.ema.update(models.wm)
    session.global_step += 1
    return StepResult(mean, grad_norm, lr)


def _no_sync(wrapped: nn.Module, last: bool) -> Any:
    """DDP all-reduces gradients on the last shard's backward only."""
    if isinstance(wrapped, nn.parallel.DistributedDataParallel) and not last:
        return wrapped.no_sync()
    return contextlib.nullcontext()


def _batch_mean(shards: list[Losses], context: DistContext) -> Losses:
    """The losses of this process's shards averaged, then averaged over processes; codes gathered."""

    def mean(values: list[torch.Tensor | None]) -> torch.Tensor | None:
        if values[0] is None:
            return None
        total: Any = 0.0
        for value in values:
            total = total + value.detach().float() / len(values)
        return all_reduce_mean(total, context)

    codes = [s.codes for s in shards if s.codes is not None]
    return Losses(
        loss=mean([s.loss for s in shards]),
        flow=mean([s.flow for s in shards]),
        vq=mean([s.vq for s in shards]),
        recon=mean([s.recon for s in shards]),
        codes=all_gather_cat(torch.cat(codes).flatten(), context) if codes else None,
    )


def _check_finite_step(
    session: Session, name: str, step: int, losses: Losses, grad_norm: torch.Tensor
) -> None:
    """TrainingDiverged before the optimizer step if the loss or the gradient norm is not finite (one
    device sync)."""
    loss_finite, norm_finite = torch.stack([losses.loss.isfinite(), grad_norm.isfinite()]).tolist()
    if not loss_finite:
        _diverged(session, name, step, f"loss is {loss_record(losses)}")
    if not norm_finite:
        _diverged(session, name, step, f"gradient norm is {float(grad_norm)} (losses {loss_record(losses)})")


def _diverged(session: Session, name: str, step: int, what: str) -> None:
    last = latest_checkpoint(session.checkpoint_dir) if session.checkpoint_dir else None
    keep = (
        f"the last good checkpoint is {last}; lower the learning rates (optim.lr_*) and start a new run"
        if last
        else "no checkpoint was written yet"
    )
    message = f"training diverged in stage {name!r} at step {step}: {what}; the step was not applied; {keep}"
    session.log.event({"event": "diverged", "stage": name, "step": step}, message, level=logging.ERROR)
    raise TrainingDiverged(message)


def _progress_bar(config: RunConfig, context: DistContext, name: str, total: int, start: int) -> Any:
    if not (config.train.progress and context.is_main) or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=name, dynamic_ncols=True, leave=True)
