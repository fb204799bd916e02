"""LatentActionModel: the IDM followed by the vector quantizer, saved and loaded via the Hugging Face Hub."""

# No `from __future__ import annotations`: the Hub mixin reads the LAMConfig annotation at runtime
# to rebuild the dataclass from config.json.
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from .config import LAMConfig
from .fsq import FiniteScalarQuantizer
from .hub import SubfolderHubMixin
from .hub_io import StrictHubMixin
from .idm import InverseDynamicsModel
from .keypoint_idm import KeypointIDM
from .quantizer import VectorQuantizer, VQOutput

VARIANCE_EPS = 1e-10


class LatentActionModel(
    nn.Module,
    StrictHubMixin,
    SubfolderHubMixin,
    library_name="cola-lam",
    tags=["cola", "latent-action-model", "arxiv:2510.26433"],
    license="mit",
    paper_url="https://arxiv.org/abs/2510.26433",
):
    """``video [B, T, C, H, W]`` -> one discrete latent action per transition (``T-1`` of them)."""

    def __init__(self, config: LAMConfig) -> None:
        super().__init__()
        self.config = config
        self.idm = KeypointIDM(config) if config.idm_backbone == "keypoints" else InverseDynamicsModel(config)
        self.quantizer: VectorQuantizer | FiniteScalarQuantizer
        if config.quantizer == "fsq":
            self.quantizer = FiniteScalarQuantizer(
                config.fsq_levels,
                config.code_dim,
                restart_buffer_size=config.restart_buffer_size,
                bound=config.fsq_bound,
            )
        else:
            self.quantizer = VectorQuantizer(
                num_codes=config.num_codes,
                code_dim=config.code_dim,
                beta=config.beta,
                use_ema=config.use_ema,
                ema_decay=config.ema_decay,
                l2_normalize=config.l2_normalize,
                dead_code_steps=config.dead_code_steps,
                restart_buffer_size=config.restart_buffer_size,
                codebook_init=config.codebook_init,
            )

    def encode(self, video: torch.Tensor) -> VQOutput:
        """quantized ``[B, T-1, tokens_per_action, code_dim]``, indices ``[B, T-1, tokens_per_action]``,
        loss (codebook + beta * commitment; in training plus the variance-floor hinge and the decorrelation
        penalty when enabled) and this batch's
        per-code usage counts."""
        latents = self.idm(video)
        codes = self.quantizer(latents)
        if self.training and self.config.variance_floor > 0:
            codes = replace(codes, loss=codes.loss + self.variance_hinge(latents))
        if self.training and self.config.decorrelation_weight > 0:
            penalty = self.config.decorrelation_weight * self.correlation_penalty(latents)
            codes = replace(codes, loss=codes.loss + penalty)
        return codes

    def _flat_latents(self, latents: torch.Tensor) -> torch.Tensor:
        flat = latents.reshape(-1, *latents.shape[-2:]).float()
        return F.normalize(flat, dim=-1) if self.quantizer.l2_normalize else flat

    def correlation_penalty(self, latents: torch.Tensor) -> torch.Tensor:
        """Mean squared off-diagonal correlation between the ``code_dim`` dimensions of ``latents [B, T-1,
        tokens, code_dim]`` over the batch's transitions, per token; 0 for one transition. 1 when every
        dimension is a multiple of one, about 1 / transitions when they are independent."""
        flat = self._flat_latents(latents)
        if flat.shape[0] < 2:
            return flat.new_zeros(())
        centred = flat - flat.mean(dim=0)
        scaled = centred / (centred.pow(2).sum(dim=0, keepdim=True) + VARIANCE_EPS).sqrt()
        correlation = torch.einsum("nki,nkj->kij", scaled, scaled)
        dims = correlation.shape[-1]
        off_diagonal = correlation - torch.diag_embed(torch.diagonal(correlation, dim1=-2, dim2=-1))
        return off_diagonal.pow(2).sum(dim=(-2, -1)).mean() / (dims * (dims - 1))

    def variance_hinge(self, latents: torch.Tensor) -> torch.Tensor:
        """``mean(relu(variance_floor - std))`` of ``latents [B, T-1, tokens, code_dim]`` (as the quantizer
        sees them), the std per token and dimension over the batch's transitions; 0 for one transition."""
        flat = self._flat_latents(latents)
        if flat.shape[0] < 2:
            return flat.new_zeros(())
        # A fresh IDM's outputs vary by ~3e-4 across clips; VICReg's eps of 1e-4 inside the root would make
        # the hinge's gradient vanish there (a saddle a 250-step warm-up escaped on one seed of two).
        std = (flat.var(dim=0) + VARIANCE_EPS).sqrt()
        return F.relu(self.config.variance_floor - std).mean()

    @torch.no_grad()
    def initialize_codebook(self, video: torch.Tensor, seed: int = 0) -> None:
        """k-means the codebook onto the IDM's outputs for ``video [B, T, C, H, W]`` (see
        ``VectorQuantizer.initialize_from``). Training does this on its first batch anyway; call it to pick
        the batch, e.g. the same clips on every data-parallel rank. A finite scalar quantizer's grid is fixed:
        nothing to place."""
        if isinstance(self.quantizer, FiniteScalarQuantizer):
            return
        self.quantizer.initialize_from(self.idm(video), seed=seed)

    def forward(self, video: torch.Tensor) -> VQOutput:
        return self.encode(video)

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook lookup: ``indices [..., tokens_per_action]`` -> ``[..., tokens_per_action, code_dim]``."""
        if indices.dim() < 1 or indices.shape[-1] != self.config.tokens_per_action:
            raise ValueError(
                f"indices must have shape [..., {self.config.tokens_per_action}] (tokens_per_action), "
                f"got {tuple(indices.shape)}."
            )
        return self.quantizer.embed(indices)
