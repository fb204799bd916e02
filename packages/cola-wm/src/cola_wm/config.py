"""DiTConfig: the shape of an ActionConditionedDiT, with named presets."""

from dataclasses import asdict, dataclass, replace
from typing import Any

# What the network's last layer outputs and the model returns (cola_wm.predict_velocity: the velocity).
PREDICTIONS = ("x0", "residual", "velocity")
# Where the action conditioner's output enters the DiT.
ACTION_INJECTIONS = ("adaln", "token", "both")


def check_guidance_interval(interval: Any, name: str) -> tuple[float, float]:
    """``interval`` as a ``(low, high)`` tuple of floats with ``0 <= low < high <= 1`` (a list from JSON is
    fine); a ValueError naming ``name`` otherwise."""
    valid = (
        isinstance(interval, (tuple, list))
        and len(interval) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in interval)
    )
    if not valid or not 0.0 <= interval[0] < interval[1] <= 1.0:
        raise ValueError(
            f"{name} must be two flow times (low, high) with 0 <= low < high <= 1, guidance applying to the "
            f"Euler steps from times t with low < t <= high ((0, 1): every step), got {interval!r}"
        )
    return float(interval[0]), float(interval[1])


def check_sampling_start(value: Any, name: str) -> float:
    """``value`` as a float in (0, 1]; a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise ValueError(
            f"{name} must be a flow time in (0, 1] (1: sample from pure noise; below 1: from the last "
            f"context frame noised to that time), got {value!r}"
        )
    return float(value)


@dataclass
class DiTConfig:
    """Hyper-parameters of :class:`cola_wm.ActionConditionedDiT`.

    Frames are ``channels x frame_size x frame_size`` cut into ``patch_size`` patches; one attention window
    holds at most ``num_frames`` frames. ``action_dim`` is the width of one flattened latent action (tokens x
    code dim).

    ``prediction`` is what the last layer outputs and the model returns; ``cola_wm.predict_velocity`` turns it
    into the velocity either way. ``"residual"`` (default): the clean frame as the last context frame plus a
    predicted change, turned into the velocity ``(x_t - x0) / max(t, min_flow_time)``. ``"x0"``: the clean
    frame itself. ``"velocity"``: ``eps - x0`` directly, as in plain rectified flow. Clean-frame prediction
    because a patch of pixels (192 values at patch 8) is wider than the transformer: predicting the noise part
    of the velocity through that bottleneck leaves noise in every sample, while clean frames lie on a
    low-dimensional manifold the network can reach (Li & He, "Back to Basics: Let Denoising Generative Models
    Denoise", 2025). The residual form makes a fresh model copy its last context frame, so training spends
    itself on what changes, which is what actions explain; without context frames it is plain ``"x0"``. With
    patches narrower than the width (e.g. 2x2 RGB patches, 12 values, at width 64) there is no bottleneck and
    ``"velocity"`` can do better.

    ``action_injection``: ``"adaln"`` (default, the paper's) adds the actions' shift/scale/gate to every
    block's AdaLN modulation; ``"token"`` adds a projection of frame i's action state to every patch token
    of frame i at the input (DINO-WM); ``"both"`` does both. Each path starts at zero.

    ``guidance_scale``: the classifier-free action guidance :func:`cola_wm.sample` uses when it is not given
    one, so a saved model carries the scale it was evaluated with (1: no guidance). ``guidance_interval``
    ``(low, high)``: the flow times at which it guides, an Euler step from time t being guided when
    ``low < t <= high`` ((0, 1): every step). Guidance extrapolates the clean-frame prediction away from the
    null action's; at the last, low-noise steps that extrapolation lands in the output as it is, so a
    guidance limited to the noisier steps (Kynkaanniemi et al., "Applying Guidance in a Limited Interval
    Improves Sample and Distribution Quality in Diffusion Models", 2024) can keep what guidance does to the
    motion without its artefacts on the static scene.

    ``sampling_start``: the flow time :func:`cola_wm.sample` starts each new frame at when it is not given
    one; 1 (default) from pure noise, below 1 from the last context frame noised to that time (SDEdit,
    Meng et al., 2022), so the sampler begins from the scene the context shows and generates only the
    change; it keeps more of the scene and steers less (benchmarks/results/2026-12-06-sampler.md).
    """

    frame_size: int = 64
    channels: int = 3
    patch_size: int = 8
    num_frames: int = 8
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    action_dim: int = 64
    action_width: int = 64
    action_depth: int = 2
    action_heads: int = 4
    action_dropout: float = 0.1
    time_embed_dim: int = 256
    norm_eps: float = 1e-6
    prediction: str = "residual"
    min_flow_time: float = 0.05
    action_injection: str = "adaln"
    guidance_scale: float = 1.0
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    sampling_start: float = 1.0

    def __post_init__(self) -> None:
        positive = (
            "frame_size",
            "channels",
            "patch_size",
            "num_frames",
            "width",
            "depth",
            "heads",
            "action_dim",
            "action_width",
            "action_depth",
            "action_heads",
            "time_embed_dim",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"DiTConfig.{name} must be a positive int, got {value!r}")
        if self.frame_size % self.patch_size:
            raise ValueError(
                f"DiTConfig.frame_size ({self.frame_size}) must be a multiple of "
                f"patch_size ({self.patch_size}); "
                "pick a patch size that divides the frame size"
            )
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(
                f"DiTConfig.width ({self.width}) must split into {self.heads} heads of even size; "
                "change width or heads"
            )
        if self.action_width % self.action_heads:
            raise ValueError(
                f"DiTConfig.action_width ({self.action_width}) must be divisible by "
                f"action_heads ({self.action_heads})"
            )
        if self.time_embed_dim % 2:
            raise ValueError(f"DiTConfig.time_embed_dim must be even, got {self.time_embed_dim}")
        if not 0.0 <= self.action_dropout < 1.0:
            raise ValueError(f"DiTConfig.action_dropout must be in [0, 1), got {self.action_dropout}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"DiTConfig.prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.action_injection not in ACTION_INJECTIONS:
            raise ValueError(
                f"DiTConfig.action_injection must be one of {ACTION_INJECTIONS}, "
                f"got {self.action_injection!r}"
            )
        if not 0.0 < self.min_flow_time < 1.0:
            raise ValueError(f"DiTConfig.min_flow_time must be in (0, 1), got {self.min_flow_time}")
        if isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, (int, float)):
            raise ValueError(f"DiTConfig.guidance_scale must be a number, got {self.guidance_scale!r}")
        if not 0.0 <= self.guidance_scale < float("inf"):
            raise ValueError(
                "DiTConfig.guidance_scale must be finite and >= 0 (1: no guidance), "
                f"got {self.guidance_scale}"
            )
        self.guidance_interval = check_guidance_interval(
            self.guidance_interval, "DiTConfig.guidance_interval"
        )
        self.sampling_start = check_sampling_start(self.sampling_start, "DiTConfig.sampling_start")
        if self.mlp_ratio <= 0 or self.norm_eps <= 0:
            raise ValueError("DiTConfig.mlp_ratio and norm_eps must be positive")

    @property
    def patches_per_side(self) -> int:
        return self.frame_size // self.patch_size

    @property
    def tokens_per_frame(self) -> int:
        return self.patches_per_side**2

    @property
    def patch_dim(self) -> int:
        return self.channels * self.patch_size**2

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "DiTConfig":
        """A named configuration, with fields overridden by keyword.

        ``"tiny"``: 8 frames of 64x64, 1.8M backbone + 0.4M action parameters, trains on a CPU.
        ``"base"``: OpenSora-like widths (1152 wide, 28 deep, 16 heads, ~80M action parameters) for GPUs.
        """
        if name not in _PRESETS:
            raise ValueError(f"unknown DiTConfig preset {name!r}; choose one of {sorted(_PRESETS)}")
        unknown = sorted(set(overrides) - set(_PRESETS[name].to_dict()))
        if unknown:
            raise ValueError(f"DiTConfig has no fields {unknown}")
        return replace(_PRESETS[name], **overrides)


_PRESETS = {
    "tiny": DiTConfig(),
    "base": DiTConfig(
        frame_size=64,
        patch_size=4,
        num_frames=16,
        width=1152,
        depth=28,
        heads=16,
        action_width=256,
        action_depth=6,
        action_heads=4,
    ),
}
