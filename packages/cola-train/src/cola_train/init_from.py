"""Starting a run from another run's weights (``RunConfig.init_from`` / ``cola-train run --init-from``).

A source is one of

- a run directory: its newest training checkpoint when it has one (the LAM, the raw world model, its EMA and
  the LAM decoder, exactly as training left them), otherwise its ``models/`` folders (a run pushed to the Hub
  keeps only those: the world model there is the EMA, which then seeds both the raw weights and the EMA);
- one checkpoint file ``RUN/checkpoints/checkpoint-*.safetensors`` (e.g. of a run that has not finished);
- the Hub repo id of a run pushed with ``--push-to-hub``.

Only weights travel: the new run builds a fresh optimizer, starts its step counters and RNG from its own seed
and runs its own stages from their first step. The EMA keeps the source's update count, so its decay ramp does
not restart and wash the source's average out in the first steps.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from cola_lam.hub_io import load_state_strict
from torch import nn

from cola_train.checkpoint import CHECKPOINT_PATTERN, latest_checkpoint, load_checkpoint
from cola_train.config import RunConfig, model_configs
from cola_train.runs import download_run

logger = logging.getLogger("cola_train")

# Config fields that only steer training (loss weights, restart and dropout schedules), not what the weights
# mean; a run may change them when it starts from another.
TRAINING_ONLY_FIELDS = {"lam": {"beta", "ema_decay", "dead_code_steps"}, "wm": {"action_dropout"}}


@dataclass
class SourceWeights:
    """The weights a run starts from, their model configs, and where they were read."""

    location: str
    kind: str  # "checkpoint" | "models"
    lam_config: Any
    wm_config: Any
    lam: dict[str, torch.Tensor]
    wm: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor]
    ema_updates: int
    decoder: dict[str, torch.Tensor] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def check_compatible(self, lam_config: Any, wm_config: Any) -> None:
        """Raise ValueError naming every model config field that differs from the source's."""
        differences = []
        for name, source, target in (("lam", self.lam_config, lam_config), ("wm", self.wm_config, wm_config)):
            old, new = dataclasses.asdict(source), dataclasses.asdict(target)
            for key in sorted(set(old) | set(new)):
                if key not in TRAINING_ONLY_FIELDS[name] and old.get(key) != new.get(key):
                    differences.append(f"{name}.{key}: source {old.get(key)!r}, this run {new.get(key)!r}")
        if differences:
            raise ValueError(
                f"cannot initialise from {self.location}: its models differ from this run's in "
                f"{len(differences)} field(s):\n  " + "\n  ".join(differences) + "\nset data.frame_size, "
                "model.lam_preset / model.wm_preset and model.lam / model.wm to the source run's values"
            )

    def load_into(self, models: nn.Module) -> list[str]:
        """Copy the weights into ``models`` (a CoLA); return the names of the parts loaded."""
        self.check_compatible(models.lam.config, models.wm.config)
        load_state_strict(models.lam, self.lam, f"{self.location} (lam)")
        load_state_strict(models.wm, self.wm, f"{self.location} (wm)")
        loaded = ["lam", "wm"]
        if models.decoder is not None and self.decoder is not None:
            load_state_strict(models.decoder, self.decoder, f"{self.location} (lam_decoder)")
            loaded.append("lam_decoder")
        return loaded

    def record(self, loaded: list[str]) -> dict[str, Any]:
        """The ``init_from`` event written to the new run's events.jsonl."""
        return {
            "event": "init_from",
            "source": self.location,
            "kind": self.kind,
            "loaded": loaded,
            "ema_updates": self.ema_updates,
            **self.details,
        }


def read_source(source: str | Path) -> SourceWeights:
    """The weights of ``source`` (run directory, checkpoint file or Hub repo id), read on the CPU."""
    path = Path(source).expanduser()
    if path.is_file():
        return _from_checkpoint(path)
    if not path.exists():
        path = download_run(str(source), f"init_from {str(source)!r}")
    checkpoint = latest_checkpoint(path / "checkpoints")
    if checkpoint is not None:
        return _from_checkpoint(checkpoint)
    if (path / "models" / "lam").is_dir() or (path / "models" / "wm").is_dir():
        return _from_models(path)
    raise ValueError(
        f"cannot initialise from {path}: it holds neither checkpoints/ nor models/; pass a cola-train run "
        "directory, one of its checkpoints/checkpoint-*.safetensors files or a pushed run's Hub repo id"
    )


def _from_checkpoint(path: Path) -> SourceWeights:
    if not CHECKPOINT_PATTERN.match(path.name):
        raise ValueError(
            f"cannot initialise from {path}: a file source must be a cola-train training checkpoint "
            "(checkpoints/checkpoint-NNNNNNNNN.safetensors); pass the run directory otherwise"
        )
    checkpoint = load_checkpoint(path)
    state = checkpoint.state
    source_config = RunConfig.from_dict(state["config"])
    lam_config, wm_config = model_configs(source_config)
    finished = bool(state["stage_done"]) and state["stage"] == source_config.stages[-1]
    if not finished:
        logger.warning(
            "initialising from %s, a run that has not finished (stage %s, step %d)",
            path,
            state["stage"],
            state["step"],
        )
    return SourceWeights(
        location=str(path.resolve()),
        kind="checkpoint",
        lam_config=lam_config,
        wm_config=wm_config,
        lam=checkpoint.group("lam"),
        wm=checkpoint.group("wm"),
        ema=checkpoint.group("ema"),
        ema_updates=int(state["ema_updates"]),
        decoder=checkpoint.group("decoder") or None,
        details={
            "stage": state["stage"],
            "step": state["step"],
            "global_step": state["global_step"],
            "finished": finished,
        },
    )


def _from_models(run_dir: Path) -> SourceWeights:
    from cola_train.runs import load_trained

    trained = load_trained(run_dir)
    ema = {key: value.detach().clone() for key, value in trained.wm.state_dict().items()}
    return SourceWeights(
        location=str(run_dir.resolve()),
        kind="models",
        lam_config=trained.lam.config,
        wm_config=trained.wm.config,
        lam=trained.lam.state_dict(),
        wm=trained.wm.state_dict(),
        ema=ema,
        ema_updates=0,
        decoder=trained.lam_decoder.state_dict() if trained.lam_decoder is not None else None,
    )
