"""Stages as data: which parameter groups train and which loss each stage minimises.

Every stage runs through the same loop (:mod:`cola_train.loop`); a stage only chooses

- the parameter groups that train: ``lam`` (IDM + VQ), ``action`` (the DiT's action-conditioning blocks and
  null action), ``dit`` (the DiT backbone), ``decoder`` (the two-stage baseline's LAMDecoder);
- the objective: ``flow`` (flow matching of the DiT, conditioned on the LAM's codes or action-free) or
  ``recon`` (the LAMDecoder reconstructs the next frame from the current one and the code).

Data flows one way: frames -> IDM -> VQ -> latent actions -> action blocks -> AdaLN of every DiT block.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cola_train.augment import random_resized_crop
from cola_train.config import StageConfig

GROUPS = ("lam", "action", "dit", "decoder")


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


class CoLAModels(nn.Module):
    """The LAM, the world model and (two-stage runs) the LAM decoder, with the stage loss as ``forward``.

    Keeping the loss inside one module lets DistributedDataParallel / FSDP wrap everything a stage trains.
    """

    def __init__(
        self,
        lam: nn.Module,
        wm: nn.Module,
        decoder: nn.Module | None = None,
        real_actions: nn.Module | None = None,
        motion_weight: float = 0.0,
        time_shift: float = 1.0,
    ) -> None:
        super().__init__()
        self.lam = lam
        self.wm = wm
        self.decoder = decoder
        # The ground-truth-action ceiling (model.actions = "real"): conditioned stages read the clips' real
        # actions through this encoder, and the LAM stays out of every stage.
        self.real_actions = real_actions
        self.motion_weight = motion_weight
        self.time_shift = time_shift

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        groups = {
            "lam": list(self.lam.parameters()) if self.real_actions is None else [],
            "action": list(self.wm.action_parameters()),
            "dit": list(self.wm.backbone_parameters()),
            "decoder": list(self.decoder.parameters()) if self.decoder is not None else [],
        }
        return groups

    def prepare(self, plan: StagePlan) -> dict[str, list[nn.Parameter]]:
        """Set requires_grad and train/eval modes for ``plan``; return the trainable groups.

        A frozen LAM or decoder goes to eval mode so its buffers (VQ EMA, dead-code counters) stay untouched;
        the world model stays in train mode because classifier-free action dropout is part of its loss.
        """
        if plan.objective == "recon" and self.decoder is None:
            raise ValueError(f"stage {plan.name!r} needs a LAMDecoder; build the models with one")
        groups = self.parameter_groups()
        for name, parameters in groups.items():
            for parameter in parameters:
                parameter.requires_grad_(name in plan.trains)
        self.lam.train(plan.lam_trains and self.real_actions is None)
        self.wm.train(True)
        if self.decoder is not None:
            self.decoder.train("decoder" in plan.trains)
        return {name: groups[name] for name in plan.trains if groups[name]}

    def forward(
        self,
        video: torch.Tensor,
        plan: StagePlan,
        generator: torch.Generator,
        num_context: int,
        time_sampling: str,
        crop_scale_min: float,
        transition_actions: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The stage loss on ``video [B, T, C, H, W]``; noise and crops come from ``generator`` only.

        ``transition_actions [B, T-1, frame_skip, A]`` (the clips' real actions) are read only by the
        ground-truth-action ceiling."""
        from cola_wm import flow_matching_loss

        def flow_loss(actions: torch.Tensor | None) -> torch.Tensor:
            return flow_matching_loss(
                self.wm,
                video,
                None if actions is None else actions.to(video.dtype),
                num_context=num_context,
                time_sampling=time_sampling,
                generator=generator,
                motion_weight=self.motion_weight,
                time_shift=self.time_shift,
            )

        if plan.objective == "flow" and not plan.conditioned:
            loss = flow_loss(None)
            return {"loss": loss, "flow_loss": loss.detach()}
        if self.real_actions is not None:
            if transition_actions is None:
                raise ValueError(
                    "model.actions = 'real' conditions the world model on the clips' real actions, but the "
                    "batch has none: the data must yield 'transition_actions' (a cola_train ClipDataset does)"
                )
            loss = flow_loss(self.real_actions(transition_actions))
            return {"loss": loss, "flow_loss": loss.detach()}

        # The LAM sees a random crop while it trains (as in the paper);
        # the world model's target stays uncropped.
        lam_video = random_resized_crop(video, generator, crop_scale_min) if plan.lam_trains else video
        if plan.lam_trains:
            codes = self.lam(lam_video)
        else:
            with torch.no_grad():
                codes = self.lam(lam_video)
        out = {"indices": codes.indices.detach(), "vq_loss": codes.loss.detach()}
        if plan.objective == "recon":
            from cola_lam import reconstruction_loss

            frames = lam_video[:, :-1].flatten(0, 1)
            target = lam_video[:, 1:].flatten(0, 1)
            prediction = self.decoder(frames, codes.quantized.flatten(0, 1))
            recon = reconstruction_loss(prediction, target)
            out.update(loss=recon + codes.loss, recon_loss=recon.detach())
            return out
        actions = codes.quantized.flatten(-2)
        if plan.stop_gradient or not plan.lam_trains:
            actions = actions.detach()
        flow = flow_loss(actions)
        loss = flow + codes.loss if plan.lam_trains else flow
        out.update(loss=loss, flow_loss=flow.detach())
        return out
