"""LatentActionModel: the IDM followed by the vector quantizer, saved and loaded via the Hugging Face Hub."""

# No `from __future__ import annotations`: the Hub mixin reads the LAMConfig annotation at runtime
# to rebuild the dataclass from config.json.
import torch
from torch import nn

from .config import LAMConfig
from .hub import SubfolderHubMixin
from .idm import InverseDynamicsModel
from .quantizer import VectorQuantizer, VQOutput


class LatentActionModel(
    nn.Module,
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
        self.idm = InverseDynamicsModel(config)
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
        loss (codebook + beta * commitment) and this batch's per-code usage counts."""
        return self.quantizer(self.idm(video))

    @torch.no_grad()
    def initialize_codebook(self, video: torch.Tensor, seed: int = 0) -> None:
        """k-means the codebook onto the IDM's outputs for ``video [B, T, C, H, W]`` (see
        ``VectorQuantizer.initialize_from``). Training does this on its first batch anyway; call it to pick
        the batch, e.g. the same clips on every data-parallel rank."""
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
