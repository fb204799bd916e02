"""The one training loop every stage runs through.

Each step is a pure function of (seed, stage, step): the global batch's clip indices come from a generator
seeded with those three numbers, and every shard of the batch draws its noise, crops and action dropout from
its own generator seeded with (seed, stage, step, shard). So a resumed run reproduces an uninterrupted one,
and N processes that split the shards reproduce one process that accumulates them.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from cola_lam.hub_io import load_state_strict
from torch import nn

from cola_train.augment import random_resized_crop
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
from cola_train.config import RunConfig
from cola_train.distributed import (
    DistContext,
    all_gather_cat,
    all_reduce_mean,
    barrier,
    broadcast_module_state,
    full_state_dict,
    full_tensor,
    wrap_model,
)
from cola_train.metrics_log import MetricsLog
from cola_train.optim import EMA, build_optimizer, lr_factor, set_learning_rates
from cola_train.stages import CoLAModels, StagePlan, plan_stage

if TYPE_CHECKING:
    from cola_lam import CodebookGeometry

logger = logging.getLogger("cola_train")


class TrainingDiverged(RuntimeError):
    """A loss or gradient norm became NaN or infinite; the run stopped before applying that step."""


def derive_seed(*numbers: int) -> int:
    """A 63-bit seed that is a pure function of ``numbers``."""
    return int(np.random.SeedSequence([int(n) for n in numbers]).generate_state(2, dtype=np.uint64)[0] >> 1)


@dataclass
class Session:
    """Everything a run shares across stages."""

    config: RunConfig
    models: CoLAModels
    dataset: Any
    context: DistContext
    run_dir: Path | None = None
    ema: EMA | None = None
    global_step: int = 0
    resume: Checkpoint | None = None
    collapse_streak: str | None = None
    log: MetricsLog = field(init=False)

    def __post_init__(self) -> None:
        if self.ema is None:
            self.ema = EMA(self.models.wm, self.config.optim.ema_decay)
        enabled = self.run_dir is not None and self.context.is_main
        self.log = (
            MetricsLog(self.run_dir, enabled=enabled)
            if self.run_dir is not None
            else MetricsLog(Path("."), enabled=False)
        )

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"


@dataclass
class StageOutcome:
    name: str
    steps: int
    final_loss: float | None
    ended_early: bool = False


def parameter_names(models: nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in models.named_parameters()}


def shard_layout(config: RunConfig, context: DistContext) -> tuple[int, int]:
    """(shard size, shards per process) for the global batch."""
    batch = config.train.batch_size
    micro = config.train.micro_batch_size or batch // context.world_size
    if micro == 0 or batch % micro or (batch // micro) % context.world_size:
        raise ValueError(
            f"train.batch_size {batch} must split into shards of train.micro_batch_size "
            f"{config.train.micro_batch_size or micro} shared evenly by {context.world_size} processes"
        )
    return micro, batch // micro // context.world_size


def batch_indices(seed: int, stage_index: int, step: int, dataset_size: int, batch_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(derive_seed(seed, stage_index, step, 0))
    return torch.randint(dataset_size, (batch_size,), generator=generator)


def load_batch(
    dataset: Any, indices: torch.Tensor, device: torch.device, real_actions: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The clips ``[B, T, C, H, W]`` and, when the run conditions on real actions, their transition actions
    ``[B, T-1, frame_skip, A]``."""
    items = [dataset[int(i)] for i in indices]
    video = torch.stack([item["video"] for item in items]).to(device, non_blocking=True)
    if not real_actions:
        return video, None
    return video, torch.stack([_transition_actions(item) for item in items]).to(device, non_blocking=True)


def check_finite(video: torch.Tensor, clips: torch.Tensor, where: str) -> None:
    """ValueError naming ``where`` (stage and step) and the dataset indices of clips with NaN or inf pixels;
    the models would only say that some input was not finite."""
    bad = ~torch.isfinite(video.flatten(1)).all(dim=1)
    if bool(bad.any()):
        indices = clips[bad.cpu()].tolist()
        raise ValueError(
            f"bad data in {where}: clip(s) {indices} of the dataset hold NaN or infinite pixel values; "
            "nothing was trained on them. Frames must be finite (in [-1, 1]): fix or drop those clips"
        )


def _transition_actions(item: dict[str, Any]) -> torch.Tensor:
    if "transition_actions" not in item:
        raise ValueError(
            "model.actions = 'real' needs clips with real actions ('transition_actions'); this data has "
            f"only {sorted(item)}: train on a cola_train ClipDataset of a dataset with actions"
        )
    return item["transition_actions"]


def run_stage(session: Session, name: str) -> StageOutcome:
    """Run stage ``name`` of ``session.config`` from its start (or from the session's resume checkpoint)."""
    config, context, models = session.config, session.context, session.models
    stage_index = config.stages.index(name)
    stage_config = config.stage(name)
    plan = plan_stage(name, stage_config)
    total = stage_config.steps
    if config.train.strategy == "fsdp":
        _check_fsdp_codebook(models, plan, context)
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
    optimizer = build_optimizer(groups, rates, config.optim.betas, config.optim.weight_decay)
    trainable = [p for parameters in groups.values() for p in parameters]
    names = parameter_names(models)
    micro, shards_per_rank = shard_layout(config, context)
    adaptive = _AdaptiveWarmup(config, name)

    start = 0
    resume = session.resume
    if resume is not None and resume.state["stage"] == name:
        start = resume.state["step"]
        optimizer_from_tensors(optimizer, names, resume.group("optim"), resume.state["optim"])
        adaptive.load(resume.state.get("adaptive"))
        restore_rng(resume.group("rng"), resume.state["rng"])
        session.resume = None

    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if context.device.type == "cuda" and config.train.bf16
        else contextlib.nullcontext()
    )
    progress = _progress_bar(config, context, name, total, start)
    window = _LogWindow(time.perf_counter())
    final_loss = None
    ended_early = False
    step = start
    for step in range(start, total):
        lr = set_learning_rates(
            optimizer, lr_factor(step, total, config.optim.warmup_steps, config.optim.min_lr_ratio)
        )
        indices = batch_indices(config.seed, stage_index, step, len(session.dataset), config.train.batch_size)
        optimizer.zero_grad(set_to_none=True)
        parts: dict[str, torch.Tensor] = {}
        codes = []
        for local in range(shards_per_rank):
            shard = context.rank * shards_per_rank + local
            shard_seed = derive_seed(config.seed, stage_index, step, shard + 1)
            # The global RNG too, for anything inside the models that does
            # not take a generator (dead-code restart).
            torch.manual_seed(shard_seed)
            generator = torch.Generator(context.device).manual_seed(shard_seed)
            clips = indices[shard * micro : (shard + 1) * micro]
            video, transition_actions = load_batch(
                session.dataset, clips, context.device, real_actions=models.real_actions is not None
            )
            check_finite(video, clips, f"stage {name!r} at step {step}")
            sync = (
                wrapped.no_sync()
                if isinstance(wrapped, nn.parallel.DistributedDataParallel) and local < shards_per_rank - 1
                else contextlib.nullcontext()
            )
            with sync:
                with autocast:
                    out = wrapped(
                        video,
                        plan=plan,
                        generator=generator,
                        num_context=config.train.num_context,
                        time_sampling=config.train.time_sampling,
                        crop_scale_min=config.train.crop_scale_min,
                        transition_actions=transition_actions,
                    )
                (out["loss"] / shards_per_rank).backward()
            for key, value in out.items():
                if key == "indices":
                    codes.append(value)
                elif key != "loss":
                    parts[key] = parts.get(key, 0.0) + value.float() / shards_per_rank
            parts["loss"] = parts.get("loss", 0.0) + out["loss"].detach().float() / shards_per_rank
        losses = {key: all_reduce_mean(value, context).item() for key, value in parts.items()}
        if not math.isfinite(losses["loss"]):
            _diverged(session, name, step, f"loss is {losses}")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, config.optim.grad_clip))
        if not math.isfinite(grad_norm):
            _diverged(session, name, step, f"gradient norm is {grad_norm} (losses {losses})")
        optimizer.step()
        if config.train.strategy == "ddp" and plan.lam_trains and _vq_writes_codebook(models):
            # Dead-code restarts and EMA codebook updates write the codebook from each rank's own batch, which
            # DDP does not average: rank 0's codebook is the one all ranks keep.
            broadcast_module_state(models.lam.quantizer, context)
        if plan.wm_trains:
            session.ema.update(models.wm)
        session.global_step += 1
        final_loss = losses["loss"]

        step_codes = all_gather_cat(torch.cat(codes).flatten(), context) if codes else None
        window.add(step_codes)
        adaptive.add(losses["loss"], step_codes, models)
        done = step + 1
        if done % config.train.log_every == 0 or done == total or step == 0:
            _log_step(session, plan, stage_index, step, losses, grad_norm, lr, window)
        if progress is not None:
            progress.set_postfix(loss=f"{losses['loss']:.4f}", refresh=False)
            progress.update(1)
        if adaptive.should_stop(done, session, stage_index, step):
            ended_early = True
            break
        if done % config.train.checkpoint_every == 0 and done < total:
            _save(session, name, done, optimizer, names, adaptive, stage_done=False)
    if progress is not None:
        progress.close()
    steps_run = step + 1 if total > start else start
    _save(session, name, steps_run, optimizer, names, adaptive, stage_done=True)
    return StageOutcome(name=name, steps=steps_run, final_loss=final_loss, ended_early=ended_early)


CODEBOOK_INIT_CLIPS = 64
# Seed tags beyond any shard number, so the codebook initialization draws from streams of its own.
_INIT_CLIPS_TAG, _INIT_KMEANS_TAG, _INIT_CROPS_TAG = 2**31 - 1, 2**31 - 2, 2**31 - 3


def place_codebook(session: Session, names: list[str]) -> None:
    """Before the first of stages ``names`` runs: if one of them trains the LAM and its codebook is fresh,
    k-means the codebook onto the IDM's outputs for one fixed set of training clips (see
    ``VectorQuantizer.initialize_from``). This happens before any wrapping: every rank picks the same clips
    and computes the same codebook, where FSDP would drop a write made inside its forward and DDP does not
    average buffers."""
    lam = session.models.lam
    trains_lam = [name for name in names if plan_stage(name, session.config.stage(name)).lam_trains]
    if not trains_lam or bool(lam.quantizer.initialized) or session.models.real_actions is not None:
        return
    if session.context.distributed and session.config.train.strategy == "fsdp":
        from torch.distributed.fsdp import FSDPModule

        if isinstance(session.models, FSDPModule):
            raise ValueError(
                "the LAM's codebook is still fresh but the models were sharded by an earlier call, so its "
                "placement could not reach every shard: run the stages in one call (cola_train.train, or "
                "run_stages with every stage), or call models.lam.initialize_codebook(clips) before sharding."
            )
    stage_index = session.config.stages.index(trains_lam[0])
    config, device = session.config, session.context.device
    count = min(CODEBOOK_INIT_CLIPS, len(session.dataset))
    generator = torch.Generator().manual_seed(derive_seed(config.seed, stage_index, 0, _INIT_CLIPS_TAG))
    indices = torch.randperm(len(session.dataset), generator=generator)[:count]
    micro = max(1, config.train.micro_batch_size or config.train.batch_size)
    # The same random crops the LAM trains on: k-means on uncropped clips placed the codes where few training
    # inputs fall (8 of 32 codes used on the first batch).
    crops = torch.Generator().manual_seed(derive_seed(config.seed, stage_index, 0, _INIT_CROPS_TAG))
    outputs = []
    with torch.no_grad():
        for start in range(0, count, micro):
            clips = indices[start : start + micro]
            video, _ = load_batch(session.dataset, clips, device, real_actions=False)
            check_finite(video, clips, f"the codebook initialisation before stage {trains_lam[0]!r}")
            video = random_resized_crop(video, crops, config.train.crop_scale_min)
            outputs.append(lam.idm(video).float())
    seed = derive_seed(config.seed, stage_index, 0, _INIT_KMEANS_TAG)
    lam.quantizer.initialize_from(torch.cat(outputs), seed=seed)


REAL_ACTION_FIT_CLIPS = 1024


def fit_real_actions(session: Session) -> None:
    """Before the first stage of a run on real actions: standardise them with statistics of up to
    ``REAL_ACTION_FIT_CLIPS`` training clips (the same clips on every rank; saved with the encoder, so a
    resumed or loaded run keeps them)."""
    encoder = session.models.real_actions
    if encoder is None or bool(encoder.initialized):
        return
    dataset = session.dataset
    count = min(REAL_ACTION_FIT_CLIPS, len(dataset))
    generator = torch.Generator().manual_seed(derive_seed(session.config.seed, 0, 0, _INIT_CLIPS_TAG))
    indices = torch.randperm(len(dataset), generator=generator)[:count]
    # One clip at a time, keeping only its actions: 1024 clips' frames would be ~300 MB held for nothing.
    actions = torch.stack([_transition_actions(dataset[int(i)]) for i in indices])
    encoder.fit(actions.to(encoder.mean.device))


def _vq_writes_codebook(models: CoLAModels) -> bool:
    """Whether the VQ writes its codebook in the forward (dead-code restarts, EMA), beyond the optimizer."""
    lam = models.lam.config
    return lam.dead_code_steps > 0 or lam.use_ema


def _check_fsdp_codebook(models: CoLAModels, plan: StagePlan, context: DistContext) -> None:
    """FSDP gathers parameters into temporary copies for the forward, so the codebook writes the VQ makes
    there (dead-code restarts, EMA codebook) would be silently lost; refuse instead of training wrong.
    """
    lam = models.lam.config
    if context.distributed and plan.lam_trains and _vq_writes_codebook(models):
        raise ValueError(
            f"stage {plan.name!r} trains the LAM with dead-code restarts (model.lam.dead_code_steps="
            f"{lam.dead_code_steps}) or an EMA codebook (model.lam.use_ema={lam.use_ema}), which write the "
            "codebook inside the forward; FSDP would drop those writes. Use train.strategy='ddp', or set "
            "model.lam.dead_code_steps=0 and model.lam.use_ema=false"
        )


def _progress_bar(config: RunConfig, context: DistContext, name: str, total: int, start: int) -> Any:
    if not (config.train.progress and context.is_main) or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=start, desc=name, dynamic_ncols=True, leave=True)


class _LogWindow:
    """Codes and wall time since the last logged step (codebook stats cover the whole log interval)."""

    def __init__(self, now: float) -> None:
        self.started = now
        self.steps = 0
        self.codes: list[torch.Tensor] = []

    def add(self, codes: torch.Tensor | None) -> None:
        self.steps += 1
        if codes is not None:
            self.codes.append(codes.cpu())

    def drain(self) -> tuple[float, torch.Tensor | None]:
        now = time.perf_counter()
        rate = self.steps / max(now - self.started, 1e-9)
        codes = torch.cat(self.codes) if self.codes else None
        self.started, self.steps, self.codes = now, 0, []
        return rate, codes


def _codebook_geometry(
    models: CoLAModels, used: torch.Tensor, context: DistContext
) -> CodebookGeometry | None:
    """Geometry of the quantizer's recent inputs (its restart ring buffer, every rank's) and of the ``used``
    codes (indices, or a mask); None while the buffer is empty (a LAM that has not trained in this process;
    a frozen LAM keeps the inputs of its last training). Collective: every rank calls it at the same step."""
    from cola_lam import code_geometry

    quantizer = models.lam.quantizer
    count = int(quantizer.recent_count)
    if count == 0:
        return None
    latents = all_gather_cat(quantizer.recent_inputs[:count], context)
    # Gather the FSDP shard before normalizing, as quantizer.codes() would.
    codebook = full_tensor(quantizer.codebook.detach())
    codebook = F.normalize(codebook, dim=-1) if quantizer.l2_normalize else codebook
    return code_geometry(latents, codebook, used)


def _geometry_record(geometry: CodebookGeometry | None) -> dict[str, float]:
    if geometry is None:
        return {}
    return {
        "latent_spread": geometry.latent_spread,
        "latent_rank": geometry.latent_effective_rank,
        "code_spread": geometry.used_code_spread,
    }


def _codebook_record(
    codes: torch.Tensor, models: CoLAModels, context: DistContext
) -> tuple[dict[str, float], list[str]]:
    from cola_lam import codebook_stats, collapse_warnings

    stats = codebook_stats(codes, models.lam.config.num_codes)
    geometry = _codebook_geometry(models, codes, context)
    record = {
        "utilization": stats.utilization,
        "entropy": stats.entropy,
        "perplexity": stats.perplexity,
        "max_share": stats.max_share,
        **_geometry_record(geometry),
    }
    return record, collapse_warnings(stats, geometry)


def _log_step(
    session: Session,
    plan: StagePlan,
    stage_index: int,
    step: int,
    losses: dict[str, float],
    grad_norm: float,
    lr: dict[str, float],
    window: _LogWindow,
) -> None:
    steps_per_s, codes = window.drain()
    record: dict[str, Any] = {
        "stage": plan.name,
        "stage_index": stage_index,
        "step": step,
        "global_step": session.global_step,
        **losses,
        "grad_norm": grad_norm,
        "lr": lr,
        "steps_per_s": steps_per_s,
    }
    if codes is not None:
        stats, warnings = _codebook_record(codes, session.models, session.context)
        record.update(stats)
        record["collapse"] = bool(warnings)
        if warnings:
            record["collapse_warnings"] = warnings
        # Warn when a collapse starts (or a new stage begins collapsed) and when it ends, not every step.
        streak = plan.name if warnings else None
        if streak != session.collapse_streak:
            message = (
                f"codebook collapse signs in {plan.name} at step {step}: " + "; ".join(warnings)
                if warnings
                else f"codebook healthy again in {plan.name} at step {step}"
            )
            event = {
                "event": "codebook_collapse" if warnings else "codebook_recovered",
                "stage": plan.name,
                "step": step,
                **stats,
            }
            session.log.event(event, message, level=logging.WARNING if warnings else logging.INFO)
            session.collapse_streak = streak
    session.log.log(record, session.global_step)


class _AdaptiveWarmup:
    """Ends the warm-up once the codebook is healthy and the loss has flattened (see WarmupConfig)."""

    def __init__(self, config: RunConfig, name: str) -> None:
        warmup = config.warmup
        self.enabled = name == "warmup" and warmup.adaptive
        self.window = warmup.adaptive_window
        self.min_steps = max(warmup.adaptive_min_steps, 2 * warmup.adaptive_window)
        self.threshold = warmup.adaptive_min_improvement
        self.losses: deque[float] = deque(maxlen=2 * self.window)
        self.usage: deque[list[int]] = deque(maxlen=self.window)

    def add(self, loss: float, codes: torch.Tensor | None, models: CoLAModels) -> None:
        if not self.enabled:
            return
        self.losses.append(loss)
        if codes is not None:
            self.usage.append(torch.bincount(codes.cpu(), minlength=models.lam.config.num_codes).tolist())

    def should_stop(self, done: int, session: Session, stage_index: int, step: int) -> bool:
        if not self.enabled or done < self.min_steps or done % self.window:
            return False
        from cola_lam import CodebookStats, collapse_warnings

        previous = sum(list(self.losses)[: self.window]) / self.window
        recent = sum(list(self.losses)[self.window :]) / self.window
        improvement = (previous - recent) / max(abs(previous), 1e-12)
        counts = torch.tensor(self.usage).sum(0)
        stats = CodebookStats.from_counts(counts)
        geometry = _codebook_geometry(session.models, counts > 0, session.context)
        warnings = collapse_warnings(stats, geometry)
        stop = improvement < self.threshold and not warnings
        reason = (
            f"loss improved {improvement:.4f} (< {self.threshold}) over the last {self.window} steps and "
            "the codebook is healthy"
            if stop
            else f"continuing: loss improved {improvement:.4f} (threshold {self.threshold}), codebook "
            + ("; ".join(warnings) if warnings else "healthy")
        )
        session.log.event(
            {
                "event": "adaptive_warmup_check",
                "stage": "warmup",
                "stage_index": stage_index,
                "step": step,
                "improvement": improvement,
                "utilization": stats.utilization,
                "entropy": stats.entropy,
                "max_share": stats.max_share,
                **_geometry_record(geometry),
                "stop": stop,
            },
            f"adaptive warm-up at step {done}: " + ("ending, " if stop else "") + reason,
        )
        return stop

    def state(self) -> dict[str, Any] | None:
        return {"losses": list(self.losses), "usage": list(self.usage)} if self.enabled else None

    def load(self, state: dict[str, Any] | None) -> None:
        if self.enabled and state:
            self.losses.extend(state["losses"])
            self.usage.extend(state["usage"])


def _diverged(session: Session, name: str, step: int, what: str) -> None:
    from cola_train.checkpoint import latest_checkpoint

    last = latest_checkpoint(session.checkpoint_dir) if session.checkpoint_dir else None
    keep = (
        f"the last good checkpoint is {last}; lower the learning rates (optim.lr_*) and start a new run"
        if last
        else "no checkpoint was written yet"
    )
    message = f"training diverged in stage {name!r} at step {step}: {what}; the step was not applied; {keep}"
    session.log.event({"event": "diverged", "stage": name, "step": step}, message, level=logging.ERROR)
    raise TrainingDiverged(message)


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


def _save(
    session: Session,
    name: str,
    step: int,
    optimizer: torch.optim.Optimizer,
    names: dict[int, str],
    adaptive: _AdaptiveWarmup,
    stage_done: bool,
) -> None:
    """Checkpoint after ``step`` steps of stage ``name`` (rank 0 writes; everyone waits)."""
    if session.checkpoint_dir is None:
        return
    # Gathering FSDP shards is collective, so every rank builds the tensors; rank 0 writes them.
    optim_tensors, optim_meta = optimizer_to_tensors(optimizer, names)
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


def restore_models(session: Session, checkpoint: Checkpoint) -> None:
    """Load model, EMA and step state from ``checkpoint`` (the optimizer state loads in run_stage)."""
    models = session.models
    parts = {"lam": models.lam, "wm": models.wm, "decoder": models.decoder}
    for prefix, module in {**parts, "real_actions": models.real_actions}.items():
        if module is not None:
            load_state_strict(module, checkpoint.group(prefix), f"checkpoint {checkpoint.path} ({prefix}.*)")
    session.ema.load_state_dict(checkpoint.group("ema"), checkpoint.state["ema_updates"])
    session.global_step = checkpoint.state["global_step"]
    session.resume = None if checkpoint.state["stage_done"] else checkpoint
