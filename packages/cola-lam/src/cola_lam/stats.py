"""Codebook health: utilization, perplexity, entropy, max share, and the paper's collapse warning signs."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# Collapse signs from the CoLA-World paper.
MIN_UTILIZATION = 0.2
MAX_SHARE = 0.5
MIN_ENTROPY = 1.0


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


def collapse_warnings(stats: CodebookStats) -> list[str]:
    """The paper's codebook-collapse signs present in ``stats``; empty when the codebook is healthy."""
    warnings = []
    if stats.utilization < MIN_UTILIZATION:
        warnings.append(f"utilization {stats.utilization:.2f} < {MIN_UTILIZATION}: most codes are never used")
    if stats.max_share > MAX_SHARE:
        warnings.append(f"max_share {stats.max_share:.2f} > {MAX_SHARE}: one code takes most picks")
    if stats.entropy < MIN_ENTROPY:
        warnings.append(
            f"entropy {stats.entropy:.2f} nats < {MIN_ENTROPY}: picks concentrate on very few codes"
        )
    return warnings
