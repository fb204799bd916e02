"""The codebook outside the VQ's own forward: its placement before the first LAM stage (and, for runs on real
actions, the actions' standardisation), and keeping it the same on every data-parallel rank."""

from __future__ import annotations

import torch

from cola_train.augment import random_resized_crop
from cola_train.batches import check_finite, derive_seed, load_batch, transition_actions
from cola_train.distributed import DistContext, broadcast_module_state
from cola_train.model import CoLA
from cola_train.session import Session
from cola_train.stages import StagePlan, plan_stage

CODEBOOK_INIT_CLIPS = 64
REAL_ACTION_FIT_CLIPS = 1024
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
            batch = load_batch(session.dataset, clips, device, real_actions=False)
            check_finite(batch, clips, f"the codebook initialisation before stage {trains_lam[0]!r}")
            video = random_resized_crop(batch.video, crops, config.train.crop_scale_min)
            outputs.append(lam.idm(video).float())
    seed = derive_seed(config.seed, stage_index, 0, _INIT_KMEANS_TAG)
    lam.quantizer.initialize_from(torch.cat(outputs), seed=seed)


def fit_real_actions(session: Session) -> None:
    """Before the first stage of a run on real actions (the counterpart of :func:`place_codebook`):
    standardise them with statistics of up to ``REAL_ACTION_FIT_CLIPS`` training clips (the same clips on
    every rank; saved with the encoder, so a resumed or loaded run keeps them)."""
    encoder = session.models.real_actions
    if encoder is None or bool(encoder.initialized):
        return
    dataset = session.dataset
    count = min(REAL_ACTION_FIT_CLIPS, len(dataset))
    generator = torch.Generator().manual_seed(derive_seed(session.config.seed, 0, 0, _INIT_CLIPS_TAG))
    indices = torch.randperm(len(dataset), generator=generator)[:count]
    # One clip at a time, keeping only its actions: 1024 clips' frames would be ~300 MB held for nothing.
    actions = torch.stack([transition_actions(dataset[int(i)]) for i in indices])
    encoder.fit(actions.to(encoder.mean.device))


def vq_writes_codebook(models: CoLA) -> bool:
    """Whether the VQ writes its codebook in the forward (dead-code restarts, EMA), beyond the optimizer."""
    lam = models.lam.config
    return lam.dead_code_steps > 0 or lam.use_ema


def check_fsdp_codebook(models: CoLA, plan: StagePlan, context: DistContext) -> None:
    """FSDP gathers parameters into temporary copies for the forward, so the codebook writes the VQ makes
    there (dead-code restarts, EMA codebook) would be silently lost; refuse instead of training wrong.
    """
    lam = models.lam.config
    if context.distributed and plan.lam_trains and vq_writes_codebook(models):
        raise ValueError(
            f"stage {plan.name!r} trains the LAM with dead-code restarts (model.lam.dead_code_steps="
            f"{lam.dead_code_steps}) or an EMA codebook (model.lam.use_ema={lam.use_ema}), which write the "
            "codebook inside the forward; FSDP would drop those writes. Use train.strategy='ddp', or set "
            "model.lam.dead_code_steps=0 and model.lam.use_ema=false"
        )


def sync_codebook(session: Session, plan: StagePlan) -> None:
    """After an optimizer step under DDP: dead-code restarts and EMA codebook updates write the codebook from
    each rank's own batch, which DDP does not average, so rank 0's codebook is the one all ranks keep."""
    models = session.models
    if session.config.train.strategy == "ddp" and plan.lam_trains and vq_writes_codebook(models):
        broadcast_module_state(models.lam.quantizer, session.context)
