"""The adaptive warm-up: it ends once the codebook is healthy and the loss has flattened (see WarmupConfig).

Losses and code counts stay on the device between checks; they are read only at check steps.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import torch

from cola_train.collapse import codebook_geometry, geometry_record
from cola_train.config import RunConfig
from cola_train.model import CoLA
from cola_train.session import Session


class AdaptiveWarmup:
    """Ends the warm-up once the codebook is healthy and the loss has flattened (see WarmupConfig)."""

    def __init__(self, config: RunConfig, name: str) -> None:
        warmup = config.warmup
        self.enabled = name == "warmup" and warmup.adaptive
        self.window = warmup.adaptive_window
        self.min_steps = max(warmup.adaptive_min_steps, 2 * warmup.adaptive_window)
        self.threshold = warmup.adaptive_min_improvement
        self.losses: deque[torch.Tensor | float] = deque(maxlen=2 * self.window)
        self.usage: deque[torch.Tensor] = deque(maxlen=self.window)

    def add(self, loss: torch.Tensor | float, codes: torch.Tensor | None, models: CoLA) -> None:
        if not self.enabled:
            return
        self.losses.append(loss)
        if codes is not None:
            self.usage.append(torch.bincount(codes, minlength=models.lam.config.num_codes))

    def should_stop(self, done: int, session: Session, stage_index: int, step: int) -> bool:
        if not self.enabled or done < self.min_steps or done % self.window:
            return False
        from cola_lam import CodebookStats, collapse_warnings

        losses = [float(loss) for loss in self.losses]
        previous = sum(losses[: self.window]) / self.window
        recent = sum(losses[self.window :]) / self.window
        improvement = (previous - recent) / max(abs(previous), 1e-12)
        counts = torch.stack([usage.cpu() for usage in self.usage]).sum(0)
        stats = CodebookStats.from_counts(counts)
        geometry = codebook_geometry(session.models, counts > 0, session.context)
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
                **geometry_record(geometry),
                "stop": stop,
            },
            f"adaptive warm-up at step {done}: " + ("ending, " if stop else "") + reason,
        )
        return stop

    def state(self) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        return {"losses": [float(x) for x in self.losses], "usage": [u.tolist() for u in self.usage]}

    def load(self, state: dict[str, Any] | None) -> None:
        if self.enabled and state:
            self.losses.extend(state["losses"])
            self.usage.extend(torch.tensor(counts) for counts in state["usage"])
