"""CoLA: the latent action model, the world model and what a stage's loss needs of them, in one module.

One training step's computation reads top to bottom in :meth:`CoLA.losses`:
clip -> IDM -> VQ -> action conditioner -> DiT -> loss. The options of the loss (context frames, flow-time
sampling and shift, motion weight, the LAM's crop scale) are bound when the model is built; a call passes
only the batch, the stage plan and the generator the noise and crops come from.

``forward`` is ``losses``, so DistributedDataParallel / FSDP wrap everything a stage trains.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from cola_lam import LatentActionModel, reconstruction_loss
from cola_wm import ActionConditionedDiT, flow_matching_loss
from torch import nn

from cola_train.augment import random_resized_crop
from cola_train.stages import StagePlan


@dataclass(frozen=True)
class Batch:
    """Clips ``video [B, T, C, H, W]`` and, for the ground-truth-action ceiling, their real actions
    ``transition_actions [B, T-1, frame_skip, A]``."""

    video: torch.Tensor
    transition_actions: torch.Tensor | None = None


@dataclass(frozen=True)
class Losses:
    """What one forward gives the loop: ``loss`` (with its graph) and detached parts.

    ``flow``: the flow-matching loss (flow stages); ``vq``: the LAM's VQ loss and ``codes`` the code
    indices it picked (stages that run the LAM); ``recon``: the LAM decoder's reconstruction loss
    (``lam_recon``).
    """

    loss: torch.Tensor
    flow: torch.Tensor | None = None
    vq: torch.Tensor | None = None
    recon: torch.Tensor | None = None
    codes: torch.Tensor | None = None


class CoLA(nn.Module):
    """The LAM, the world model, and optionally the two-stage baseline's LAM decoder and the real-action
    encoder of the ground-truth-action ceiling (``model.actions = "real"``: conditioned stages read the clips'
    real actions through it, and the LAM stays out of every stage).

    The IDM and the DiT do not check their inputs for NaN and inf here (a device sync every forward): the
    training loop checks each batch where it loads it (:func:`cola_train.batches.check_finite`).
    """

    def __init__(
        self,
        lam: LatentActionModel,
        wm: ActionConditionedDiT,
        decoder: nn.Module | None = None,
        real_actions: nn.Module | None = None,
        *,
        num_context: int = 1,
        time_sampling: str = "logit_normal",
        time_shift: float = 1.0,
        motion_weight: float = 0.0,
        crop_scale_min: float = 0.7,
    ) -> None:
        super().__init__()
        check_compatible(lam, wm, latent_actions=real_actions is None)
        self.lam = lam
        self.wm = wm
        lam.idm.check_finite = False
        wm.check_finite = False
        self.decoder = decoder
        self.real_actions = real_actions
        self.num_context = num_context
        self.time_sampling = time_sampling
        self.time_shift = time_shift
        self.motion_weight = motion_weight
        self.crop_scale_min = crop_scale_min

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "lam": list(self.lam.parameters()) if self.real_actions is None else [],
            "action": list(self.wm.action_parameters()),
            "dit": list(self.wm.backbone_parameters()),
            "decoder": list(self.decoder.parameters()) if self.decoder is not None else [],
        }

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

    def forward(self, batch: Batch, plan: StagePlan, generator: torch.Generator) -> Losses:
        return self.losses(batch, plan, generator)

    def losses(self, batch: Batch, plan: StagePlan, generator: torch.Generator) -> Losses:
        """The loss of stage ``plan`` on ``batch``; noise and crops come from ``generator`` only."""
        video = batch.video
        if plan.objective == "flow" and not plan.conditioned:
            flow = self.flow_loss(video, None, generator)
            return Losses(flow, flow=flow.detach())
        if self.real_actions is not None:
            flow = self.flow_loss(video, self.real_actions(_real_actions(batch)), generator)
            return Losses(flow, flow=flow.detach())

        # Clip: the LAM sees a random crop while it trains (as in the paper); the world model's target stays
        # uncropped.
        clip = random_resized_crop(video, generator, self.crop_scale_min) if plan.lam_trains else video
        # IDM -> VQ: one quantized latent action per transition.
        with contextlib.nullcontext() if plan.lam_trains else torch.no_grad():
            codes = self.lam(clip)
        vq, indices = codes.loss.detach(), codes.indices.detach()
        if plan.objective == "recon":
            frames, target = clip[:, :-1].flatten(0, 1), clip[:, 1:].flatten(0, 1)
            recon = reconstruction_loss(self.decoder(frames, codes.quantized.flatten(0, 1)), target)
            return Losses(recon + codes.loss, vq=vq, recon=recon.detach(), codes=indices)
        # Action conditioner -> DiT -> flow-matching loss, which reaches the LAM unless the plan stops it.
        actions = codes.quantized.flatten(-2)
        if plan.stop_gradient or not plan.lam_trains:
            actions = actions.detach()
        flow = self.flow_loss(video, actions, generator)
        loss = flow + codes.loss if plan.lam_trains else flow
        return Losses(loss, flow=flow.detach(), vq=vq, codes=indices)

    def flow_loss(
        self, video: torch.Tensor, actions: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor:
        return flow_matching_loss(
            self.wm,
            video,
            None if actions is None else actions.to(video.dtype),
            num_context=self.num_context,
            time_sampling=self.time_sampling,
            generator=generator,
            motion_weight=self.motion_weight,
            time_shift=self.time_shift,
        )


def check_compatible(
    lam: LatentActionModel,
    wm: ActionConditionedDiT,
    frame_shape: Sequence[int] | None = None,
    *,
    latent_actions: bool = True,
) -> None:
    """Raise ValueError unless the LAM and the world model take the same frames (those of the data,
    ``frame_shape [C, H, W]``, when given) and, with ``latent_actions``, the world model's actions are the
    LAM's (``action_dim = tokens_per_action x code_dim``)."""
    lam_cfg, wm_cfg = lam.config, wm.config
    lam_frames = (lam_cfg.channels, lam_cfg.frame_size, lam_cfg.frame_size)
    wm_frames = (wm_cfg.channels, wm_cfg.frame_size, wm_cfg.frame_size)
    if frame_shape is None and lam_frames != wm_frames:
        raise ValueError(
            f"the LAM takes {'x'.join(map(str, lam_frames))} frames but the world model "
            f"{'x'.join(map(str, wm_frames))}; the two models are not from one run"
        )
    if frame_shape is not None:
        c, h, w = (int(s) for s in frame_shape)
        for name, (channels, size, _) in (("LAM", lam_frames), ("world model", wm_frames)):
            if (channels, size, size) != (c, h, w):
                raise ValueError(
                    f"the {name} was built for {channels}x{size}x{size} frames but the evaluation data has "
                    f"{c}x{h}x{w}; evaluate on data of the run's frame size (set the dataset's size to the "
                    "model's frame_size)"
                )
    if latent_actions and wm_cfg.action_dim != lam_cfg.tokens_per_action * lam_cfg.code_dim:
        raise ValueError(
            f"the world model takes actions of {wm_cfg.action_dim} dims but the LAM gives "
            f"{lam_cfg.tokens_per_action} x {lam_cfg.code_dim}; the two models are not from one run"
        )


def _real_actions(batch: Batch) -> torch.Tensor:
    if batch.transition_actions is None:
        raise ValueError(
            "model.actions = 'real' conditions the world model on the clips' real actions, but the batch has "
            "none: the data must yield 'transition_actions' (a cola_train ClipDataset does)"
        )
    return batch.transition_actions
