"""AdamW over named parameter groups, the warm-up + cosine schedule, and an EMA of model weights."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from cola_train.distributed import full_tensor


def build_optimizer(
    groups: dict[str, list[nn.Parameter]],
    learning_rates: dict[str, float],
    betas: Iterable[float],
    weight_decay: float,
) -> torch.optim.AdamW:
    """One AdamW param group per named group; each group remembers its name and base learning rate."""
    param_groups = []
    for name, parameters in groups.items():
        if not parameters:
            continue
        param_groups.append(
            {"params": parameters, "lr": learning_rates[name], "base_lr": learning_rates[name], "group": name}
        )
    if not param_groups:
        raise ValueError("this stage has no parameter to train; check the freeze switches in the config")
    # foreach=False keeps the update order identical whatever the group sizes, so runs reproduce bit for bit.
    return torch.optim.AdamW(param_groups, betas=tuple(betas), weight_decay=weight_decay, foreach=False)


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_ratio: float) -> float:
    """Linear warm-up over ``warmup_steps`` (capped at a fifth of the stage), then cosine down to
    ``min_ratio``.
    """
    warmup = min(warmup_steps, max(total_steps // 5, 1))
    if step < warmup:
        return (step + 1) / warmup
    span = max(total_steps - warmup, 1)
    progress = min((step - warmup) / span, 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def set_learning_rates(optimizer: torch.optim.Optimizer, factor: float) -> dict[str, float]:
    rates = {}
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * factor
        rates[group["group"]] = group["lr"]
    return rates


class EMA:
    """Exponential moving average of a module's floating-point state (parameters and buffers).

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` over the first updates so that a short run's
    average is not dominated by the initial weights.
    """

    def __init__(self, module: nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: full_tensor(v).detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in module.state_dict().items():
            shadow = self.shadow[key]
            value = full_tensor(value)
            if value.is_floating_point():
                shadow.lerp_(value.detach().to(shadow.dtype), 1.0 - decay)
            else:
                shadow.copy_(value)

    def copy_to(self, module: nn.Module) -> None:
        module.load_state_dict(self.shadow)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.shadow

    def load_state_dict(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        missing = set(self.shadow) ^ set(tensors)
        if missing:
            raise ValueError(f"EMA state does not match the world model (keys {sorted(missing)[:5]} differ)")
        for key, value in tensors.items():
            self.shadow[key].copy_(value)
        self.updates = updates
