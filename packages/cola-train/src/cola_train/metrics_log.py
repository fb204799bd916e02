"""Run logging: metrics.jsonl (one object per logged step), events.jsonl (decisions, warnings), TensorBoard if
installed. Only rank 0 writes.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger("cola_train")


class MetricsLog:
    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.events_path = self.run_dir / "events.jsonl"
        self._tensorboard = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                SummaryWriter = None  # tensorboard is optional; metrics.jsonl is the record.
                logger.info('TensorBoard logging is off (pip install "cola-train[tensorboard]" turns it on)')
            if SummaryWriter is not None:
                self._tensorboard = SummaryWriter(log_dir=str(self.run_dir / "tensorboard"))

    def log(self, record: dict[str, Any], global_step: int) -> None:
        if not self.enabled:
            return
        _append(self.metrics_path, record)
        if self._tensorboard is not None:
            stage = record.get("stage", "run")
            for key, value in record.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    self._tensorboard.add_scalar(f"{stage}/{key}", value, global_step)
                elif isinstance(value, dict):
                    for sub, number in value.items():
                        self._tensorboard.add_scalar(f"{stage}/{key}/{sub}", number, global_step)

    def event(self, record: dict[str, Any], message: str, level: int = logging.INFO) -> None:
        logger.log(level, message)
        if self.enabled:
            _append(self.events_path, {**record, "message": message})

    def truncate_from(self, stage_index: int, step: int) -> None:
        """Drop records of (stage_index, step) and later: a resumed run logs those steps again."""
        if not self.enabled or not self.metrics_path.exists():
            return
        kept = []
        for line in self.metrics_path.read_text().splitlines():
            if not line.strip():
                continue
            record = json.loads(line)
            if (record["stage_index"], record["step"]) < (stage_index, step):
                kept.append(line)
        temp = self.metrics_path.with_suffix(".jsonl.tmp")
        temp.write_text("".join(line + "\n" for line in kept))
        os.replace(temp, self.metrics_path)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
