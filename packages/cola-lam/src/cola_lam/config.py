"""LAMConfig: every size of the latent action model, with the `tiny` and `base` presets."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

# kmeans: on the IDM's outputs for the first training batch; random: N(0, 1) codes.
CODEBOOK_INITS = ("kmeans", "random")
# pair: the IDM reads (frame t, frame t+1); difference: (frame t, frame t+1 - frame t).
IDM_INPUTS = ("pair", "difference")
# query: the action-query tokens after the blocks; query_plus_change: those plus the mean over patches of the
# change of the patch tokens from the first frame of the pair to the second.
IDM_READOUTS = ("query", "query_plus_change")
# transformer: the paper's spatio-temporal transformer over patches; keypoints: a shared conv net and a
# spatial softmax per frame, the latent an MLP of the keypoints and their displacement
# (cola_lam.keypoint_idm).
IDM_BACKBONES = ("transformer", "keypoints")
# What the keypoint IDM's MLP reads per keypoint: where it is in frame t and how far it moved, or only
# how far it moved.
KEYPOINT_FEATURES = ("position_and_displacement", "displacement")
# What the keypoint IDM's spatial softmax reads: the conv net's maps as they are, or each map standardised
# over its pixels and scaled by a learned gain per keypoint.
KEYPOINT_SOFTMAXES = ("raw", "standardized")
# vq: the paper's vector quantizer (nearest of num_codes learned codes); fsq: finite scalar quantization on
# a fixed grid of prod(fsq_levels) codes (cola_lam.fsq).
QUANTIZERS = ("vq", "fsq")
# How FSQ bounds each projected scalar before rounding (cola_lam.fsq.FiniteScalarQuantizer).
FSQ_BOUNDS = ("tanh", "uniform")


@dataclass
class LAMConfig:
    """Sizes and training options of the IDM, the vector quantizer and the two-stage LAMDecoder.

    The codebook is shared by the ``tokens_per_action`` tokens of a latent action: ``num_codes`` entries of
    ``code_dim`` each, so one transition is named by ``num_codes ** tokens_per_action`` combined actions.
    ``codebook_init``: ``"kmeans"`` places the codes on the IDM's outputs for the first training batch;
    ``"random"`` draws them from N(0, 1), which a fresh IDM's outputs (one cluster ~0.07 wide) all share one
    code of.

    ``variance_floor``: when > 0, training adds a VICReg-style hinge, ``mean(relu(floor - std))`` over each
    latent dimension of each action token across the batch, so the IDM cannot give every clip the same latent.
    ``decorrelation_weight``: when > 0, training adds that times the mean squared off-diagonal correlation
    between the latent dimensions of each token across the batch (VICReg's covariance term, made scale-free),
    so the latents cannot vary along one line only.
    ``idm_input``: ``"pair"`` shows the IDM frames t and t+1; ``"difference"`` shows frame t and the change
    ``frame t+1 - frame t``, which is zero wherever nothing moved.
    ``idm_readout``: ``"query"`` reads each latent action off its action-query token; ``"query_plus_change"``
    adds to every query token the mean over patches of the change of the patch tokens between the two frames
    of the pair, so that the latent varies with what moved from the first step (a fresh query token attends
    almost uniformly and gives every transition nearly the same output).
    ``idm_backbone``: ``"transformer"`` (the paper's IDM: patches, ``width``, ``depth``, ``heads``) or
    ``"keypoints"`` (:class:`~cola_lam.keypoint_idm.KeypointIDM`: a conv net of ``keypoint_channels``
    turns each frame into ``keypoints`` spatial-softmax positions; an MLP ``width`` wide reads the latent
    off the keypoints of frame t and their displacement to frame t+1, or with ``keypoint_features =
    "displacement"`` off the displacement alone, so the latent cannot name where things are, only how they
    moved). ``keypoint_softmax = "standardized"`` standardises each keypoint map over its pixels and scales
    it by a learned gain (one per keypoint, starting at 1) before the spatial softmax, so how peaked a
    keypoint is depends on how much its feature stands out from the rest of the frame, not on the conv net's
    output scale (``"raw"``: the maps as they are). ``idm_input`` and ``idm_readout`` belong to the
    transformer: the keypoint IDM needs their defaults.

    ``quantizer``: ``"vq"`` (the paper's vector quantizer) or ``"fsq"`` (finite scalar quantization, Mentzer
    et al. 2023: each token projected to ``len(fsq_levels)`` scalars, each rounded to one of ``fsq_levels[i]``
    values, ``num_codes = prod(fsq_levels)``). The VQ's options ``beta``, ``use_ema``, ``l2_normalize`` and
    ``codebook_init`` do nothing to a grid and must keep their defaults with ``"fsq"``; ``dead_code_steps`` is
    ignored (a grid has no codes to restart). ``fsq_bound``: ``"tanh"`` (the FSQ paper's) bounds each
    projected scalar with a tanh, so every projection past the last bin edge lands on the grid's edge;
    ``"uniform"`` standardises each scalar over the batch (running statistics at evaluation) and maps it
    through ``sigmoid(1.6 x)``, close to the normal CDF, so a standard-normal scalar falls in each of the
    levels equally often (iFSQ, Lin et al. 2026, plus the standardisation that keeps its input unit-scale).
    """

    frame_size: int = 64
    channels: int = 3
    patch_size: int = 8
    width: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    tokens_per_action: int = 2
    code_dim: int = 32
    num_codes: int = 32
    beta: float = 0.25
    use_ema: bool = False
    ema_decay: float = 0.99
    l2_normalize: bool = False
    dead_code_steps: int = 100
    restart_buffer_size: int = 1024
    codebook_init: str = "kmeans"
    variance_floor: float = 0.0
    decorrelation_weight: float = 0.0
    idm_input: str = "pair"
    idm_readout: str = "query"
    idm_backbone: str = "transformer"
    keypoints: int = 16
    keypoint_channels: int = 32
    keypoint_features: str = "position_and_displacement"
    keypoint_softmax: str = "raw"
    decoder_depth: int = 2
    quantizer: str = "vq"
    fsq_levels: tuple[int, ...] = (8, 4)
    fsq_bound: str = "tanh"

    def __post_init__(self) -> None:
        positive = (
            "frame_size",
            "channels",
            "patch_size",
            "width",
            "depth",
            "heads",
            "tokens_per_action",
            "code_dim",
            "num_codes",
            "restart_buffer_size",
            "decoder_depth",
            "keypoints",
            "keypoint_channels",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"LAMConfig.{name} must be a positive integer, got {value!r}.")
        if self.frame_size % self.patch_size != 0:
            raise ValueError(
                f"LAMConfig.frame_size ({self.frame_size}) must be a multiple of "
                f"patch_size ({self.patch_size})."
            )
        if self.width % self.heads != 0:
            raise ValueError(f"LAMConfig.width ({self.width}) must be divisible by heads ({self.heads}).")
        if self.mlp_ratio <= 0:
            raise ValueError(f"LAMConfig.mlp_ratio must be > 0, got {self.mlp_ratio}.")
        if self.beta < 0:
            raise ValueError(f"LAMConfig.beta (commitment weight) must be >= 0, got {self.beta}.")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError(f"LAMConfig.ema_decay must be in (0, 1), got {self.ema_decay}.")
        if not isinstance(self.dead_code_steps, int) or self.dead_code_steps < 0:
            raise ValueError(
                "LAMConfig.dead_code_steps must be an integer >= 0 (0 disables restarts), "
                f"got {self.dead_code_steps!r}."
            )
        if not isinstance(self.variance_floor, (int, float)) or not 0.0 <= self.variance_floor < float("inf"):
            raise ValueError(
                "LAMConfig.variance_floor must be a finite number >= 0 (0 disables), "
                f"got {self.variance_floor!r}."
            )
        if not isinstance(self.decorrelation_weight, (int, float)) or not (
            0.0 <= self.decorrelation_weight < float("inf")
        ):
            raise ValueError(
                "LAMConfig.decorrelation_weight must be a finite number >= 0 (0 disables), "
                f"got {self.decorrelation_weight!r}."
            )
        if self.idm_input not in IDM_INPUTS:
            raise ValueError(
                "LAMConfig.idm_input must be 'pair' (frames t and t+1) or 'difference' (frame t and "
                f"frame t+1 - frame t), got {self.idm_input!r}."
            )
        if self.idm_readout not in IDM_READOUTS:
            raise ValueError(
                "LAMConfig.idm_readout must be 'query' (the action-query tokens) or 'query_plus_change' "
                f"(plus the patch tokens' mean change between the two frames), got {self.idm_readout!r}."
            )
        if self.idm_backbone not in IDM_BACKBONES:
            raise ValueError(
                "LAMConfig.idm_backbone must be 'transformer' (the paper's IDM over patches) or 'keypoints' "
                f"(a conv net's spatial-softmax keypoints per frame), got {self.idm_backbone!r}."
            )
        if self.keypoint_features not in KEYPOINT_FEATURES:
            raise ValueError(
                "LAMConfig.keypoint_features must be 'position_and_displacement' (where each keypoint is in "
                "frame t and how far it moved) or 'displacement' (how far it moved), got "
                f"{self.keypoint_features!r}."
            )
        if self.keypoint_softmax not in KEYPOINT_SOFTMAXES:
            raise ValueError(
                "LAMConfig.keypoint_softmax must be 'raw' (the conv net's maps as they are) or "
                "'standardized' (each map standardised over its pixels, times a learned gain), got "
                f"{self.keypoint_softmax!r}."
            )
        if self.idm_backbone == "keypoints" and (self.idm_input, self.idm_readout) != ("pair", "query"):
            raise ValueError(
                "LAMConfig.idm_input and idm_readout choose how the transformer IDM reads a pair; the "
                "keypoint IDM always compares the keypoints of both frames, so it needs idm_input='pair' and "
                f"idm_readout='query', got {self.idm_input!r} and {self.idm_readout!r}."
            )
        self._check_quantizer()
        if self.codebook_init not in CODEBOOK_INITS:
            raise ValueError(
                "LAMConfig.codebook_init must be 'kmeans' (k-means on the first training batch's IDM "
                "outputs) "
                f"or 'random' (N(0, 1) codes), got {self.codebook_init!r}."
            )

    def _check_quantizer(self) -> None:
        if self.quantizer not in QUANTIZERS:
            raise ValueError(
                "LAMConfig.quantizer must be 'vq' (the paper's vector quantizer) or 'fsq' (finite scalar "
                f"quantization on a fixed grid), got {self.quantizer!r}."
            )
        # A config read back from JSON carries a list.
        if isinstance(self.fsq_levels, list):
            self.fsq_levels = tuple(self.fsq_levels)
        levels = self.fsq_levels
        if (
            not isinstance(levels, tuple)
            or not levels
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in levels)
        ):
            raise ValueError(
                f"LAMConfig.fsq_levels must be a non-empty tuple of integers >= 2, got {levels!r}."
            )
        if self.fsq_bound not in FSQ_BOUNDS:
            raise ValueError(f"LAMConfig.fsq_bound must be one of {FSQ_BOUNDS}, got {self.fsq_bound!r}.")
        if self.quantizer != "fsq":
            return
        if math.prod(levels) != self.num_codes:
            raise ValueError(
                f"LAMConfig.num_codes ({self.num_codes}) must equal the product of fsq_levels {levels} "
                f"({math.prod(levels)}) with quantizer='fsq': set num_codes={math.prod(levels)} or other "
                "levels."
            )
        vq_only = {"beta": 0.25, "use_ema": False, "l2_normalize": False, "codebook_init": "kmeans"}
        changed = sorted(name for name, default in vq_only.items() if getattr(self, name) != default)
        if changed:
            raise ValueError(
                f"LAMConfig {changed} configure the vector quantizer and do nothing with quantizer='fsq': "
                "leave them at their defaults."
            )

    @property
    def action_dim(self) -> int:
        """Width of one flattened latent action, the world model's action input."""
        return self.tokens_per_action * self.code_dim

    @property
    def num_patches(self) -> int:
        return (self.frame_size // self.patch_size) ** 2

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LAMConfig:
        """``tiny`` (~1M-parameter IDM, trains on a laptop CPU) or ``base`` (the paper's 12 x 768 IDM)."""
        presets = {
            "tiny": cls(),
            "base": cls(width=768, depth=12, heads=12, decoder_depth=12),
        }
        if name not in presets:
            raise ValueError(f"Unknown LAMConfig preset {name!r}; choose one of {sorted(presets)}.")
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(f"Unknown LAMConfig fields {sorted(unknown)}; valid fields are {sorted(known)}.")
        return replace(presets[name], **overrides)
