"""Run logging: metrics.jsonl (one object per logged step), events.jsonl (decisions, warnings), TensorBoard if
installed. Only rank 0 writes.

Both logs are append-only JSON lines; a crash (or a full disk) can cut only the last line, which a resumed run
drops with a warning (:func:`drop_torn_tail`).
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

    def repair(self) -> None:
        """Drop the torn last line a crash may have left in metrics.jsonl and events.jsonl."""
        if self.enabled:
            for path in (self.metrics_path, self.events_path):
                drop_torn_tail(path)

    def truncate_from(self, stage_index: int, step: int) -> None:
        """Drop records of (stage_index, step) and later: a resumed run logs those steps again."""
        if not self.enabled or not self.metrics_path.exists():
            return
        kept = [
            json.dumps(record)
            for record in read_jsonl(self.metrics_path)
            if (record["stage_index"], record["step"]) < (stage_index, step)
        ]
        temp = self.metrics_path.with_name(".tmp-metrics.jsonl")
        temp.write_text("".join(line + "\n" for line in kept))
        os.replace(temp, self.metrics_path)

    def close(self) -> None:
        if self._tensorboard is not None:
            self._tensorboard.close()


def _append(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a") as file:
        file.write(json.dumps(record) + "\n")
        file.flush()


def drop_torn_tail(path: Path) -> None:
    """Cut a last line that a crash left unfinished (no newline, or not JSON), with a warning.

    Records are appended whole and end in a newline, so only the last one can be torn."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if not data:
        return
    keep = data.rfind(b"\n", 0, len(data) - 1) + 1  # where the last line starts
    last = data[keep:]
    if last.endswith(b"\n") and _parses(last):
        return
    logger.warning(
        "dropped the torn last line of %s (%d bytes, cut by a crash): %r", path, len(last), last[:80]
    )
    with open(path, "rb+") as file:
        file.truncate(keep)
        os.fsync(file.fileno())


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; a torn last line is skipped, any other bad line is an error naming
    the file and line."""
    lines = Path(path).read_text(errors="replace").split("\n")
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                logger.warning("skipping the torn last line of %s (cut by a crash)", path)
                continue
            raise ValueError(
                f"{path} line {number} is not JSON ({error}); the log is damaged: delete that line"
            ) from error
    return records


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    return read_jsonl(path)
