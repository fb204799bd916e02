"""What a run shares across its stages: config, models, data, process group, log, EMA and step counter."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cola_train.checkpoint import Checkpoint
from cola_train.config import RunConfig
from cola_train.distributed import DistContext
from cola_train.metrics_log import MetricsLog
from cola_train.model import CoLA
from cola_train.optim import EMA
from cola_train.threads import ThreadPolicy, thread_policy


@dataclass
class Session:
    """Everything a run shares across stages."""

    config: RunConfig
    models: CoLA
    dataset: Any
    context: DistContext
    run_dir: Path | None = None
    ema: EMA | None = None
    global_step: int = 0
    resume: Checkpoint | None = None
    collapse_streak: str | None = None
    log: MetricsLog = field(init=False)
    threads: ThreadPolicy = field(init=False)

    def __post_init__(self) -> None:
        if self.ema is None:
            self.ema = EMA(self.models.wm, self.config.optim.ema_decay)
        enabled = self.run_dir is not None and self.context.is_main
        self.log = (
            MetricsLog(self.run_dir, enabled=enabled)
            if self.run_dir is not None
            else MetricsLog(Path("."), enabled=False)
        )
        self.threads = thread_policy(self.config.train.threads, self.context.device)

    def close(self) -> None:
        """The run ends: close the metrics log, give back the caller's torch thread count."""
        self.log.close()
        self.threads.restore()

    @property
    def checkpoint_dir(self) -> Path | None:
        return None if self.run_dir is None else self.run_dir / "checkpoints"
