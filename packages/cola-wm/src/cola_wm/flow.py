"""Rectified-flow training loss and Euler sampler for ActionConditionedDiT.

Convention: ``x_t = (1 - t) x0 + t eps`` with t=0 data and t=1 noise; the velocity is
``dx_t/dt = eps - x0``. The DiT predicts a clean frame (or its change from the last context frame) or the
velocity itself (``DiTConfig.prediction``); :func:`predict_velocity` is the one place that turns its output
into the velocity. Context frames stay clean (the model gives them flow time 0) and carry no loss.
"""

import itertools

import torch
import torch.nn.functional as F

from cola_wm.config import check_guidance_interval, check_sampling_start
from cola_wm.dit import ActionConditionedDiT, frame_times

TIME_SAMPLINGS = ("logit_normal", "uniform")
LOSS_SPACES = ("clean_frame", "velocity")
# A pixel "moves" when a channel of the target frame differs from the last context frame by more than this
# (on the [-1, 1] scale: about 6/255, above the quantisation and resize noise of rendered frames).
MOTION_THRESHOLD = 0.05


def motion_weights(video: torch.Tensor, num_context: int, motion_weight: float) -> torch.Tensor:
    """Per-pixel loss weights ``[B, T - num_context, 1, H, W]``: 1, plus ``motion_weight`` on the pixels of
    each target frame that differ from the last context frame, and on their 8 neighbours (so a prediction
    that moves the object to the wrong place is charged on both sides of the true motion)."""
    reference = video[:, num_context - 1 : num_context].float()
    moving = ((video[:, num_context:].float() - reference).abs() > MOTION_THRESHOLD).any(dim=2)
    moving = F.max_pool2d(moving.flatten(0, 1).float()[:, None], 3, stride=1, padding=1)
    return 1.0 + motion_weight * moving.view(*video.shape[:1], -1, 1, *video.shape[-2:])


def predict_velocity(
    model: ActionConditionedDiT,
    x_t: torch.Tensor,
    t: torch.Tensor,
    actions: torch.Tensor | None = None,
    num_context: int = 0,
) -> torch.Tensor:
    """The velocity ``eps - x0`` ``model`` predicts for every frame of ``x_t [B, T, C, H, W]`` at flow times
    ``t [B]`` (the first ``num_context`` frames are clean context), in ``x_t``'s dtype.

    A clean-frame prediction ``x0`` (``DiTConfig.prediction`` "x0", or "residual": the change from the last
    context frame) becomes ``(x_t - x0) / max(t, min_flow_time)``, since ``x_t = (1 - t) x0 + t eps``; the
    floor keeps t -> 0 finite."""
    out = model(x_t, t, actions, num_context=num_context)
    config = model.config
    if config.prediction == "residual" and num_context > 0:
        out = out + x_t[:, num_context - 1 : num_context].to(out.dtype)
    if config.prediction in ("x0", "residual"):
        times = frame_times(t, x_t.shape[1], num_context).clamp_min(config.min_flow_time)
        out = (x_t.to(out.dtype) - out) / times.to(out.dtype)[:, :, None, None, None]
    return out.to(x_t.dtype)


def _check_context(num_context: int, frames: int) -> None:
    if isinstance(num_context, bool) or not isinstance(num_context, int) or not 0 <= num_context < frames:
        raise ValueError(
            f"num_context must be an int in [0, {frames}) for a clip of {frames} frames, "
            f"got {num_context!r}: "
            "at least one frame must be left to predict"
        )


def shift_time(t: torch.Tensor, shift: float) -> torch.Tensor:
    """Stable Diffusion 3's timestep shift, ``s t / (1 + (s - 1) t)``: ``shift > 1`` moves flow times toward
    noise (t = 1) and keeps 0 and 1 fixed; 1 is the identity."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def _sample_time(batch: int, time_sampling: str, device: torch.device, generator: torch.Generator | None):
    if time_sampling == "uniform":
        return torch.rand(batch, device=device, generator=generator)
    return torch.sigmoid(torch.randn(batch, device=device, generator=generator))


def flow_matching_loss(
    model: ActionConditionedDiT,
    video: torch.Tensor,
    actions: torch.Tensor | None = None,
    num_context: int = 1,
    time_sampling: str = "logit_normal",
    generator: torch.Generator | None = None,
    loss_on: str | None = None,
    motion_weight: float = 0.0,
    time_shift: float = 1.0,
) -> torch.Tensor:
    """Mean squared error on the non-context frames of ``video [B, T, C, H, W]``.

    ``motion_weight > 0`` weights the pixels that change between the last context frame and each target
    frame ``1 + motion_weight`` times as much as the rest (MaskLAM, DWS), and divides by the total weight, so
    the loss stays a weighted mean squared error. Where the moving part is a small object (PushT's agent is
    under 1% of a frame), the unweighted loss hardly changes whether a model follows its actions or not.

    ``loss_on="velocity"``: the error of the predicted velocity against ``eps - x0``. ``"clean_frame"``: the
    error of the clean frame the velocity implies, ``x_t - t * v``, against ``x0`` (the velocity error
    weighted by t^2). ``None`` picks "clean_frame" for models that predict clean frames
    (``DiTConfig.prediction`` "x0" or "residual") and "velocity" otherwise: the velocity error of a clean-
    frame predictor carries a 1/t^2 weight, so nearly-clean samples, where the task is removing a little
    noise, drown the noisy ones, where the task is predicting what moves. Measurements: docs/decisions.md.

    One flow time per sample, uniform or logit-normal (sigmoid of a standard normal), then shifted toward
    noise by ``time_shift`` (:func:`shift_time`; 1: no shift). Where the moving object is small, it is still
    visible in ``x_t`` at middle flow times, so a model can read where it went from the noisy frame itself;
    only near pure noise does the prediction depend on the action (docs/decisions.md). In training mode, each
    sample's actions are swapped for the learned null action with probability ``model.config.action_dropout``,
    so the same model also learns the unconditional velocity that classifier-free guidance needs.
    """
    if time_sampling not in TIME_SAMPLINGS:
        raise ValueError(f"time_sampling must be one of {TIME_SAMPLINGS}, got {time_sampling!r}")
    if loss_on is None:
        loss_on = "velocity" if model.config.prediction == "velocity" else "clean_frame"
    if loss_on not in LOSS_SPACES:
        raise ValueError(f"loss_on must be None or one of {LOSS_SPACES}, got {loss_on!r}")
    if not isinstance(video, torch.Tensor) or video.dim() != 5:
        raise ValueError("video must be a tensor [B, T, C, H, W]")
    if not isinstance(motion_weight, (int, float)) or not 0.0 <= motion_weight < float("inf"):
        raise ValueError(f"motion_weight must be a finite number >= 0 (0: unweighted), got {motion_weight!r}")
    batch, frames = video.shape[:2]
    _check_context(num_context, frames)
    if not isinstance(time_shift, (int, float)) or not 0.0 < time_shift < float("inf"):
        raise ValueError(f"time_shift must be a finite number > 0 (1: no shift), got {time_shift!r}")
    if motion_weight > 0 and num_context < 1:
        raise ValueError("motion_weight needs a context frame (num_context >= 1) to tell what moves")
    t = shift_time(_sample_time(batch, time_sampling, video.device, generator), float(time_shift))
    noise = torch.randn(video.shape, device=video.device, dtype=video.dtype, generator=generator)
    t_frames = t.to(video.dtype).view(batch, 1, 1, 1, 1)
    noisy = (1 - t_frames) * video + t_frames * noise
    x_t = torch.cat([video[:, :num_context], noisy[:, num_context:]], dim=1)

    dropout = model.config.action_dropout
    if actions is not None and model.training and dropout > 0:
        drop = torch.rand(batch, device=video.device, generator=generator) < dropout
        null = model.null_actions(batch, actions.shape[1]).to(actions.dtype)
        actions = torch.where(drop[:, None, None], null, actions)

    velocity = predict_velocity(model, x_t, t, actions, num_context)[:, num_context:].float()
    if loss_on == "clean_frame":
        # The clean frame the velocity implies: the model's own where t >= min_flow_time.
        prediction = x_t[:, num_context:].float() - t_frames.float() * velocity
        target = video[:, num_context:].float()
    else:
        prediction, target = velocity, (noise - video)[:, num_context:].float()
    if motion_weight == 0:
        return F.mse_loss(prediction, target)
    weights = motion_weights(video, num_context, motion_weight).expand_as(target)
    return ((prediction - target).pow(2) * weights).sum() / weights.sum()


@torch.no_grad()
def sample(
    model: ActionConditionedDiT,
    context: torch.Tensor,
    actions: torch.Tensor | None = None,
    num_frames: int | None = None,
    steps: int = 10,
    guidance_scale: float | None = None,
    generator: torch.Generator | None = None,
    time_shift: float = 1.0,
    guidance_interval: tuple[float, float] | None = None,
    sampling_start: float | None = None,
) -> torch.Tensor:
    """Roll out ``num_frames`` frames from ``context [B, k, C, H, W]`` (returned unchanged as the first k
    frames).

    ``actions [B, num_frames - 1, action_dim]`` are the transition actions (action i leads from frame i to i +
    1); ``num_frames`` defaults to ``actions.shape[1] + 1``, or to one window (``config.num_frames``) without
    actions. Each window integrates Euler steps from noise (t=1) to data (t=0). Past one window the rollout
    slides: every next window takes the last k frames generated so far as its context and adds up to
    ``config.num_frames - k`` frames. With actions and ``guidance_scale != 1``, conditional and null-action
    velocities come from one batched forward and are combined as ``v_uncond + s * (v_cond - v_uncond)``;
    without actions there is nothing to guide; ``None`` takes the model's ``config.guidance_scale``.
    ``guidance_interval (low, high)`` guides only the Euler steps from flow times t with ``low < t <= high``,
    the others take the conditional velocity alone; ``None`` takes the model's ``config.guidance_interval``.
    ``time_shift`` spaces the Euler steps by :func:`shift_time` of an even grid (> 1: more of them near
    noise, as in Stable Diffusion 3; 1: even steps). ``sampling_start`` s0 in (0, 1]: each window's new
    frames start at flow time s0 as the last context frame noised to that time, ``(1 - s0) x_last + s0 z``,
    and the steps run from s0 to 0 (SDEdit, Meng et al., 2022); 1 starts from pure noise; ``None`` takes the
    model's ``config.sampling_start``.
    """
    config = model.config
    if not isinstance(context, torch.Tensor) or context.dim() != 5:
        raise ValueError("context must be a tensor [B, k, C, H, W] of clean frames")
    batch, k = context.shape[:2]
    if num_frames is None:
        num_frames = actions.shape[1] + 1 if actions is not None else config.num_frames
    if not 1 <= k < num_frames:
        raise ValueError(
            f"context has {k} frames; it needs at least 1 and fewer than num_frames ({num_frames})"
        )
    if k >= config.num_frames:
        raise ValueError(
            f"context has {k} frames but a window holds {config.num_frames}; pass only the last "
            f"{config.num_frames - 1} frames as context"
        )
    if actions is not None and (actions.dim() != 3 or tuple(actions.shape[:2]) != (batch, num_frames - 1)):
        raise ValueError(
            f"actions must be [B, num_frames - 1, action_dim] = [{batch}, {num_frames - 1}, ...], "
            f"got {tuple(actions.shape)}"
        )
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    if guidance_scale is None:
        guidance_scale = config.guidance_scale
    if not isinstance(time_shift, (int, float)) or not 0.0 < time_shift < float("inf"):
        raise ValueError(f"time_shift must be a finite number > 0 (1: even steps), got {time_shift!r}")
    if guidance_interval is None:
        guidance_interval = config.guidance_interval
    guidance_interval = check_guidance_interval(guidance_interval, "guidance_interval")
    if sampling_start is None:
        sampling_start = config.sampling_start
    sampling_start = check_sampling_start(sampling_start, "sampling_start")
    times = shift_time(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), float(time_shift))
    times = (sampling_start * times).tolist()

    video = context
    while video.shape[1] < num_frames:
        start = video.shape[1] - k
        new = min(config.num_frames - k, num_frames - video.shape[1])
        window_actions = None if actions is None else actions[:, start : start + k + new - 1]
        frames = _generate_window(
            model, video[:, start:], window_actions, new, times, guidance_scale, guidance_interval, generator
        )
        video = torch.cat([video, frames], dim=1)
    return video


def _generate_window(
    model: ActionConditionedDiT,
    context: torch.Tensor,
    actions: torch.Tensor | None,
    new_frames: int,
    times: list[float],
    guidance_scale: float,
    guidance_interval: tuple[float, float],
    generator: torch.Generator | None,
) -> torch.Tensor:
    batch, k = context.shape[:2]
    x = torch.randn(
        (batch, new_frames, *context.shape[2:]),
        device=context.device,
        dtype=context.dtype,
        generator=generator,
    )
    if times[0] < 1.0:
        x = (1 - times[0]) * context[:, -1:] + times[0] * x
    guiding = actions is not None and guidance_scale != 1.0
    if guiding:
        both = torch.cat([actions, model.null_actions(batch, actions.shape[1]).to(actions.dtype)])
    low, high = guidance_interval
    for t, t_next in itertools.pairwise(times):
        guided = guiding and low < t <= high
        window = torch.cat([context, x], dim=1)
        if guided:
            window = torch.cat([window, window])
        flow_time = torch.full((window.shape[0],), t, device=context.device, dtype=context.dtype)
        velocity = predict_velocity(model, window, flow_time, both if guided else actions, k)[:, k:]
        if guided:
            conditional, unconditional = velocity.chunk(2)
            velocity = unconditional + guidance_scale * (conditional - unconditional)
        x = x - velocity * (t - t_next)
    return x
