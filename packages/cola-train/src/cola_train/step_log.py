"""What a log step writes to metrics.jsonl: the step's losses and gradient norm, learning rates, speed, and
the codebook statistics of every code picked since the previous log step. The only place the loop reads
values back from the device, besides the divergence check."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch

from cola_train.collapse import codebook_record, report_collapse
from cola_train.model import Losses
from cola_train.session import Session
from cola_train.stages import StagePlan

if TYPE_CHECKING:
    from cola_train.loop import StepResult


class LogWindow:
    """Codes and wall time since the last logged step (codebook stats cover the whole log interval)."""

    def __init__(self, now: float) -> None:
        self.started = now
        self.steps = 0
        self.codes: list[torch.Tensor] = []

    def add(self, codes: torch.Tensor | None) -> None:
        self.steps += 1
        if codes is not None:
            self.codes.append(codes)

    def drain(self) -> tuple[float, torch.Tensor | None]:
        now = time.perf_counter()
        rate = self.steps / max(now - self.started, 1e-9)
        codes = torch.cat(self.codes).cpu() if self.codes else None
        self.started, self.steps, self.codes = now, 0, []
        return rate, codes


def loss_record(losses: Losses) -> dict[str, float]:
    """The logged losses: ``vq_loss``, ``flow_loss``, ``recon_loss`` (those the stage has) and ``loss``."""
    parts = {"vq_loss": losses.vq, "flow_loss": losses.flow, "recon_loss": losses.recon}
    return {
        **{key: float(value) for key, value in parts.items() if value is not None},
        "loss": float(losses.loss),
    }


def log_step(
    session: Session, plan: StagePlan, stage_index: int, step: int, result: StepResult, window: LogWindow
) -> dict[str, Any]:
    """Write the record of ``step`` (and any collapse event); return the record."""
    steps_per_s, codes = window.drain()
    record: dict[str, Any] = {
        "stage": plan.name,
        "stage_index": stage_index,
        "step": step,
        "global_step": session.global_step,
        **loss_record(result.losses),
        "grad_norm": float(result.grad_norm),
        "lr": result.lr,
        "steps_per_s": steps_per_s,
    }
    if codes is not None:
        stats, warnings = codebook_record(codes, session.models, session.context)
        record.update(stats)
        record["collapse"] = bool(warnings)
        if warnings:
            record["collapse_warnings"] = warnings
        report_collapse(session, plan, step, stats, warnings)
    session.log.log(record, session.global_step)
    return record
