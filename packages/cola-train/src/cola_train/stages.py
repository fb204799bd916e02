"""Stages as data: which parameter groups train and which loss each stage minimises.

Every stage runs through the same loop (:mod:`cola_train.loop`); a stage only chooses

- the parameter groups that train: ``lam`` (IDM + VQ), ``action`` (the DiT's action-conditioning blocks and
  null action), ``dit`` (the DiT backbone), ``decoder`` (the two-stage baseline's LAMDecoder);
- the objective: ``flow`` (flow matching of the DiT, conditioned on the LAM's codes or action-free) or
  ``recon`` (the LAMDecoder reconstructs the next frame from the current one and the code).

The model that computes those losses is :class:`cola_train.model.CoLA`.
"""

from __future__ import annotations

from dataclasses import dataclass

from cola_train.config import StageConfig


@dataclass(frozen=True)
class StagePlan:
    name: str
    trains: tuple[str, ...]
    objective: str  # "flow" | "recon"
    conditioned: bool  # flow objective with the LAM's latent actions (False: action-free generation)
    stop_gradient: bool = False

    @property
    def lam_trains(self) -> bool:
        return "lam" in self.trains

    @property
    def uses_lam(self) -> bool:
        return self.conditioned or self.objective == "recon"

    @property
    def wm_trains(self) -> bool:
        return "action" in self.trains or "dit" in self.trains


_BASE_PLANS = {
    "pretrain": StagePlan("pretrain", ("dit",), "flow", conditioned=False),
    "warmup": StagePlan("warmup", ("lam", "action"), "flow", conditioned=True),
    "joint": StagePlan("joint", ("lam", "action", "dit"), "flow", conditioned=True),
    "lam_recon": StagePlan("lam_recon", ("lam", "decoder"), "recon", conditioned=False),
    "wm_finetune": StagePlan("wm_finetune", ("action", "dit"), "flow", conditioned=True),
}


def plan_stage(name: str, stage: StageConfig) -> StagePlan:
    """The plan of stage ``name`` with its config's ablation switches applied."""
    if name not in _BASE_PLANS:
        raise ValueError(f"unknown stage {name!r}; valid stages: {', '.join(_BASE_PLANS)}")
    base = _BASE_PLANS[name]
    trains = tuple(
        g
        for g in base.trains
        if not (stage.freeze_lam and g == "lam") and not (stage.freeze_wm and g == "dit")
    )
    if not trains:
        raise ValueError(
            f"stage {name!r} has nothing left to train after freeze_lam/freeze_wm; "
            "drop the stage from `stages` instead"
        )
    return StagePlan(name, trains, base.objective, base.conditioned, stop_gradient=stage.stop_gradient)
