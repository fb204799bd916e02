"""Codebook health: utilization, perplexity, entropy, max share, the paper's collapse warning signs, and the
geometry of the encoder outputs and used codes (which index counts alone cannot see)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Collapse signs from the CoLA-World paper.
MIN_UTILIZATION = 0.2
MAX_SHARE = 0.5
MIN_ENTROPY = 1.0
# Geometry signs: index counts stay high when dead-code restarts seed the codes from collapsed encoder
# outputs, so the indices spread while the vectors do not.
MIN_LATENT_SPREAD = 0.05
MIN_CODE_SPREAD = 0.1


@dataclass(frozen=True)
class CodebookStats:
    """How a batch (or a run) spread its picks over the codebook. Entropy is in nats."""

    utilization: float
    perplexity: float
    entropy: float
    max_share: float

    @classmethod
    def from_counts(cls, counts: torch.Tensor) -> CodebookStats:
        """Stats from per-code pick counts ``[num_codes]`` (e.g. summed ``VQOutput.usage``)."""
        if counts.dim() != 1 or counts.numel() == 0:
            raise ValueError(
                f"counts must be a non-empty 1-D tensor [num_codes], got shape {tuple(counts.shape)}."
            )
        if (counts < 0).any():
            raise ValueError("counts must be non-negative pick counts.")
        total = counts.sum()
        if total <= 0:
            raise ValueError("counts sum to zero: no code was picked, so there are no statistics to compute.")
        probs = counts.double() / total.double()
        nonzero = probs[probs > 0]
        entropy = float(-(nonzero * nonzero.log()).sum())
        return cls(
            utilization=float((counts > 0).double().mean()),
            perplexity=math.exp(entropy),
            entropy=entropy,
            max_share=float(probs.max()),
        )


def codebook_stats(indices: torch.Tensor, num_codes: int) -> CodebookStats:
    """Stats of the code indices picked (any shape, integer values in ``[0, num_codes)``)."""
    if not isinstance(indices, torch.Tensor) or indices.is_floating_point() or indices.is_complex():
        raise ValueError("indices must be an integer torch.Tensor of code indices.")
    if num_codes < 1:
        raise ValueError(f"num_codes must be >= 1, got {num_codes}.")
    flat = indices.reshape(-1).long()
    if flat.numel() == 0:
        raise ValueError("indices is empty: no code was picked, so there are no statistics to compute.")
    if flat.min() < 0 or flat.max() >= num_codes:
        raise ValueError(
            f"indices must lie in [0, {num_codes}), got values in [{int(flat.min())}, {int(flat.max())}]."
        )
    return CodebookStats.from_counts(torch.bincount(flat, minlength=num_codes))


@dataclass(frozen=True)
class CodebookGeometry:
    """How far apart the encoder outputs and the used codes lie, relative to their size (scale-free).

    latent_spread: RMS distance of the latents from their mean over their RMS norm; ~0 when every input
    gives the same vector, ~1 for latents centred on the origin. latent_effective_rank: exp of the entropy
    of the centred latents' normalised singular values, in [1, D] (0 when the latents do not vary at all);
    it ignores scale, so it reads the noise of a collapsed encoder as spread too: judge collapse by the
    spread. used_code_spread: median over used codes of the distance to the nearest other used code, over
    the used codes' median norm; 0 with fewer than two used codes (one used code is a collapse). Zero
    norms give 0, not NaN: the distances are then 0 as well.
    """

    latent_spread: float
    latent_effective_rank: float
    used_code_spread: float
    n_used: int
    n_latents: int


def code_geometry(latents: torch.Tensor, codebook: torch.Tensor, used: torch.Tensor) -> CodebookGeometry:
    """Geometry of encoder outputs ``latents [N, D]`` and of the used rows of ``codebook [K, D]``.

    ``used`` is a bool mask ``[K]`` or integer code indices of any shape (the codes picked). Computed in
    float64 on the CPU (a host sync: call it at log steps, not every step).
    """
    if not isinstance(latents, torch.Tensor) or latents.dim() != 2 or latents.shape[0] == 0:
        shape = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise ValueError(f"latents must be a non-empty 2-D tensor [N, code_dim], got {shape}.")
    if not isinstance(codebook, torch.Tensor) or codebook.dim() != 2 or codebook.shape[0] == 0:
        shape = tuple(codebook.shape) if isinstance(codebook, torch.Tensor) else type(codebook).__name__
        raise ValueError(f"codebook must be a non-empty 2-D tensor [num_codes, code_dim], got {shape}.")
    if latents.shape[1] != codebook.shape[1]:
        raise ValueError(
            f"latents [N, {latents.shape[1]}] and codebook [K, {codebook.shape[1]}] must share code_dim."
        )
    mask = _used_mask(used, codebook.shape[0])
    x = latents.detach().double().cpu()
    codes = codebook.detach().double().cpu()[mask]
    if not (torch.isfinite(x).all() and torch.isfinite(codes).all()):
        raise ValueError("latents and used codes must be finite (no NaN or inf).")
    centred = x - x.mean(0)
    return CodebookGeometry(
        latent_spread=_ratio(centred.pow(2).sum(1).mean().sqrt(), x.pow(2).sum(1).mean().sqrt()),
        latent_effective_rank=_effective_rank(centred),
        used_code_spread=_code_spread(codes),
        n_used=int(mask.sum()),
        n_latents=x.shape[0],
    )


def _used_mask(used: torch.Tensor, num_codes: int) -> torch.Tensor:
    if not isinstance(used, torch.Tensor) or used.is_floating_point() or used.is_complex():
        raise ValueError("used must be a bool mask [num_codes] or an integer tensor of code indices.")
    used = used.detach().cpu()
    if used.dtype == torch.bool:
        if used.shape != (num_codes,):
            raise ValueError(
                f"a used mask must have shape [{num_codes}] (num_codes), got {tuple(used.shape)}."
            )
        return used
    flat = used.reshape(-1).long()
    if flat.numel() and (flat.min() < 0 or flat.max() >= num_codes):
        raise ValueError(
            f"used indices must lie in [0, {num_codes}), "
            f"got values in [{int(flat.min())}, {int(flat.max())}]."
        )
    return torch.bincount(flat, minlength=num_codes) > 0


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> float:
    """``numerator / denominator``, 0 where the denominator is 0 (then the numerator is 0 too)."""
    return float(numerator / denominator) if denominator > 0 else 0.0


def _effective_rank(centred: torch.Tensor) -> float:
    # Singular values from the D x D Gram matrix: cheap for many latents.
    singular = torch.linalg.eigvalsh(centred.T @ centred).clamp_min(0).sqrt()
    if singular.sum() <= 0:
        return 0.0
    probs = singular / singular.sum()
    nonzero = probs[probs > 0]
    return math.exp(float(-(nonzero * nonzero.log()).sum()))


def _code_spread(codes: torch.Tensor) -> float:
    if codes.shape[0] < 2:
        return 0.0
    distances = torch.cdist(codes, codes)
    distances.fill_diagonal_(math.inf)
    # A median norm of 0 puts over half the used codes at the origin, which makes the median distance 0 too.
    return _ratio(distances.min(1).values.quantile(0.5), codes.norm(dim=1).quantile(0.5))


def collapse_warnings(stats: CodebookStats, geometry: CodebookGeometry | None = None) -> list[str]:
    """The codebook-collapse signs present in ``stats`` (the paper's) and ``geometry`` (given it); empty
    when the codebook is healthy. The latent spread needs at least two latents to say anything."""
    warnings = []
    if stats.utilization < MIN_UTILIZATION:
        warnings.append(f"utilization {stats.utilization:.2f} < {MIN_UTILIZATION}: most codes are never used")
    if stats.max_share > MAX_SHARE:
        warnings.append(f"max_share {stats.max_share:.2f} > {MAX_SHARE}: one code takes most picks")
    if stats.entropy < MIN_ENTROPY:
        warnings.append(
            f"entropy {stats.entropy:.2f} nats < {MIN_ENTROPY}: picks concentrate on very few codes"
        )
    if geometry is None:
        return warnings
    if geometry.n_latents >= 2 and geometry.latent_spread < MIN_LATENT_SPREAD:
        warnings.append(
            f"latent_spread {geometry.latent_spread:.3g} < {MIN_LATENT_SPREAD}: the encoder gives nearly the "
            "same vector for every input"
        )
    if geometry.used_code_spread < MIN_CODE_SPREAD:
        warnings.append(
            f"code_spread {geometry.used_code_spread:.3g} < {MIN_CODE_SPREAD}: "
            + (
                "the used codes nearly coincide, so different indices name the same action"
                if geometry.n_used >= 2
                else "fewer than two codes are used"
            )
        )
    return warnings
