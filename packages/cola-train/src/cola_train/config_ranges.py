"""The allowed range of every numeric run-config field, and of ``train.device``.

A value outside its range is never what the user meant (``optim.grad_clip = 0`` zeroes every gradient, ``-1``
ascends it), so it is an error at config time, before anything is collected or written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

INF = math.inf


@dataclass(frozen=True)
class Range:
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False
    hint: str = ""

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        above = value > self.low if self.low_open else value >= self.low
        below = value < self.high if self.high_open else value <= self.high
        return above and below

    def text(self) -> str:
        low = "(" if self.low_open else "["
        high = ")" if self.high_open or self.high == INF else "]"
        return f"{low}{self.low:g}, {self.high:g}{high}"


POSITIVE = Range(1, INF)
NON_NEGATIVE = Range(0, INF)
# AdamW's first step is lr / (1 - beta1) in size, which overflows float32 (a crash inside the optimizer) from
# lr ~1e37 on; below that a too-large rate diverges and the training guard stops the run with the step named.
LEARNING_RATE = Range(0, 1e30, low_open=True, hint="AdamW learning rates are small, e.g. 1e-4")
UNIT_OPEN = Range(0, 1, high_open=True)

RANGES: dict[str, Range] = {
    "seed": NON_NEGATIVE,
    "data.clip_length": Range(2, INF, hint="one transition needs two frames"),
    "data.frame_skip": POSITIVE,
    "data.frame_size": POSITIVE,
    "train.batch_size": POSITIVE,
    "train.micro_batch_size": Range(0, INF, hint="0: one shard per process"),
    "train.num_context": POSITIVE,
    "train.crop_scale_min": Range(0, 1, low_open=True, hint="1 disables crops"),
    "train.motion_weight": Range(0, INF, high_open=True, hint="0: unweighted"),
    "train.time_shift": Range(0, INF, low_open=True, high_open=True, hint="1: no shift, > 1 toward noise"),
    "train.log_every": POSITIVE,
    "train.checkpoint_every": POSITIVE,
    "train.keep_checkpoints": POSITIVE,
    "train.threads": Range(0, INF, hint="0 adapts the count to the load, N >= 1 fixes it"),
    "optim.lr_lam": LEARNING_RATE,
    "optim.lr_action": LEARNING_RATE,
    "optim.lr_dit": LEARNING_RATE,
    "optim.lr_decoder": LEARNING_RATE,
    "optim.weight_decay": Range(0, INF, high_open=True),
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.min_lr_ratio": Range(0, 1),
    # 0 would zero every gradient and a negative norm flips them; inf disables clipping.
    "optim.grad_clip": Range(0, INF, low_open=True, hint="inf disables clipping"),
    "optim.ema_decay": UNIT_OPEN,
    "warmup.adaptive_min_steps": NON_NEGATIVE,
    "warmup.adaptive_window": POSITIVE,
    "warmup.adaptive_min_improvement": Range(-INF, INF, low_open=True, high_open=True),
}
STAGE_STEPS = Range(0, INF)
BETA = UNIT_OPEN

DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def check_ranges(values: dict[str, Any], stage_names: tuple[str, ...]) -> None:
    """Raise ValueError naming the first field of ``values`` (a RunConfig's ``to_dict()``) out of range."""
    checks = dict(RANGES) | {f"{name}.steps": STAGE_STEPS for name in stage_names}
    for key, allowed in checks.items():
        section, _, field = key.rpartition(".")
        value = values[section][field] if section else values[field]
        _check(key, value, allowed)
    betas = values["optim"]["betas"]
    if len(betas) != 2:
        raise ValueError(f"optim.betas must hold two numbers, got {betas}")
    for index, beta in enumerate(betas):
        _check(f"optim.betas[{index}]", beta, BETA)
    device = values["train"]["device"]
    if not isinstance(device, str) or not DEVICE.match(device):
        raise ValueError(f"train.device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}")


def _check(key: str, value: Any, allowed: Range) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"config key {key!r} must be a number, got {value!r}")
    if not allowed.holds(value):
        hint = f" ({allowed.hint})" if allowed.hint else ""
        raise ValueError(f"{key} must be in {allowed.text()}{hint}, got {value!r}")
