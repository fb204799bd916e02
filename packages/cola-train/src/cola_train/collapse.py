"""Codebook health at log steps: usage statistics, the geometry of the VQ's recent inputs, and the
``codebook_collapse`` / ``codebook_recovered`` events when collapse signs start or end."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from cola_train.distributed import DistContext, all_gather_cat, full_tensor
from cola_train.model import CoLA
from cola_train.session import Session
from cola_train.stages import StagePlan

if TYPE_CHECKING:
    from cola_lam import CodebookGeometry, FiniteScalarQuantizer, VectorQuantizer


def codebook_geometry(models: CoLA, used: torch.Tensor, context: DistContext) -> CodebookGeometry | None:
    """Geometry of the quantizer's recent inputs (its restart ring buffer, every rank's) and of the ``used``
    codes (indices, or a mask); None while the buffer is empty (a LAM that has not trained in this process;
    a frozen LAM keeps the inputs of its last training). Collective: every rank calls it at the same step."""
    from cola_lam import code_geometry

    quantizer = models.lam.quantizer
    count = int(quantizer.recent_count)
    if count == 0:
        return None
    latents = all_gather_cat(quantizer.recent_inputs[:count], context)
    return code_geometry(latents, full_codes(quantizer), used)


def full_codes(quantizer: VectorQuantizer | FiniteScalarQuantizer) -> torch.Tensor:
    """``quantizer.codes()`` from its gathered FSDP shards (collective: every rank calls it)."""
    from cola_lam import FiniteScalarQuantizer

    if isinstance(quantizer, FiniteScalarQuantizer):
        project = quantizer.project_out
        weight, bias = full_tensor(project.weight.detach()), full_tensor(project.bias.detach())
        return F.linear(quantizer.grid().to(weight), weight, bias)
    codebook = full_tensor(quantizer.codebook.detach())
    return F.normalize(codebook, dim=-1) if quantizer.l2_normalize else codebook


def geometry_record(geometry: CodebookGeometry | None) -> dict[str, float]:
    if geometry is None:
        return {}
    return {
        "latent_spread": geometry.latent_spread,
        "latent_rank": geometry.latent_effective_rank,
        "code_spread": geometry.used_code_spread,
    }


def codebook_record(
    codes: torch.Tensor, models: CoLA, context: DistContext
) -> tuple[dict[str, float], list[str]]:
    """The logged codebook statistics of ``codes`` (the indices picked since the last log step) and the
    collapse warnings they raise."""
    from cola_lam import codebook_stats, collapse_warnings

    stats = codebook_stats(codes, models.lam.config.num_codes)
    geometry = codebook_geometry(models, codes, context)
    record = {
        "utilization": stats.utilization,
        "entropy": stats.entropy,
        "perplexity": stats.perplexity,
        "max_share": stats.max_share,
        **geometry_record(geometry),
    }
    return record, collapse_warnings(stats, geometry)


def report_collapse(
    session: Session, plan: StagePlan, step: int, stats: dict[str, float], warnings: list[str]
) -> None:
    """Log an event when a collapse starts (or a new stage begins collapsed) and when it ends, not every
    step."""
    streak = plan.name if warnings else None
    if streak == session.collapse_streak:
        return
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
