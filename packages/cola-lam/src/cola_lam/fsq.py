"""FiniteScalarQuantizer: finite scalar quantization (Mentzer et al., 2023) behind the VectorQuantizer's
interface, an option beside the paper's VQ (``LAMConfig.quantizer = "fsq"``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from .config import FSQ_BOUNDS
from .quantizer import VQOutput, check_code_indices, remember_inputs


class FiniteScalarQuantizer(nn.Module):
    """Quantizes ``z [..., code_dim]`` to a fixed grid of ``prod(levels)`` codes.

    ``z`` is projected to ``len(levels)`` scalars; scalar ``i`` is bounded by a tanh to ``levels[i]`` evenly
    spaced values in ``[-1, 1]`` and rounded to the nearest one (straight-through); the grid point is
    projected back to ``code_dim``. The grid cannot collapse, has no dead codes to restart and adds no loss:
    codes differ because the grid's points do, and the learned projections decide what each axis means.
    ``codes()`` and ``embed()`` give the projected grid, as a VectorQuantizer's codebook. Like the VQ it
    keeps a ring buffer of its recent inputs (``recent_inputs``, ``recent_count``) for the collapse guard.

    ``bound="uniform"`` replaces the tanh: each projected scalar is standardised (batch statistics in
    training, running ones in evaluation, as BatchNorm without its affine) and mapped through
    ``sigmoid(1.6 x)`` onto ``levels[i]`` equal-width bins, so the levels are picked about equally often
    whatever scale the projection grows to (iFSQ, Lin et al. 2026). With the tanh a projection that grows
    lands ever more often on the grid's edges.
    """

    # The attributes that code written for the VQ reads: no L2 codes, no EMA, never k-means initialised.
    l2_normalize = False
    use_ema = False

    def __init__(
        self, levels: Sequence[int], code_dim: int, restart_buffer_size: int = 1024, bound: str = "tanh"
    ) -> None:
        super().__init__()
        levels = tuple(levels)
        if not levels or any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in levels):
            raise ValueError(f"levels must be a non-empty sequence of integers >= 2, got {levels!r}.")
        if code_dim < 1 or restart_buffer_size < 1:
            raise ValueError("code_dim and restart_buffer_size must be >= 1.")
        if bound not in FSQ_BOUNDS:
            raise ValueError(f"bound must be one of {FSQ_BOUNDS}, got {bound!r}.")
        self.bound = bound
        self.levels = levels
        self.num_codes = math.prod(levels)
        self.code_dim = code_dim
        self.project_in = nn.Linear(code_dim, len(levels))
        self.project_out = nn.Linear(len(levels), code_dim)
        self.standardize = (
            nn.BatchNorm1d(len(levels), affine=False, momentum=0.05) if bound == "uniform" else None
        )
        self.register_buffer("level_counts", torch.tensor(levels, dtype=torch.long), persistent=False)
        radix = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("radix", torch.tensor(radix, dtype=torch.long), persistent=False)
        self.register_buffer("recent_inputs", torch.zeros(restart_buffer_size, code_dim))
        self.register_buffer("recent_count", torch.zeros((), dtype=torch.long))
        self.register_buffer("recent_pointer", torch.zeros((), dtype=torch.long))
        self.register_buffer("initialized", torch.tensor(True))

    def grid(self) -> torch.Tensor:
        """Every code's scalars in ``[-1, 1]``: ``[num_codes, len(levels)]``, row ``i`` the code of index
        ``i`` (scalar 0 varies fastest)."""
        indices = torch.arange(self.num_codes, device=self.radix.device)
        return self._scalars(indices)

    def codes(self) -> torch.Tensor:
        """The projected grid ``[num_codes, code_dim]``: what each code index stands for."""
        return self.project_out(self.grid().to(self.project_out.weight.dtype))

    def embed(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors ``[..., code_dim]`` for integer ``indices [...]`` in ``[0, num_codes)``."""
        check_code_indices(indices, self.num_codes)
        scalars = self._scalars(indices.long().to(self.radix.device))
        return self.project_out(scalars.to(self.project_out.weight.dtype))

    def forward(self, z: torch.Tensor) -> VQOutput:
        if z.dim() < 1 or z.shape[-1] != self.code_dim:
            raise ValueError(f"z must have shape [..., {self.code_dim}] (code_dim), got {tuple(z.shape)}.")
        flat = z.reshape(-1, self.code_dim)
        half = (self.level_counts.to(flat.dtype) - 1) / 2
        projected = self.project_in(flat)
        if self.standardize is None:
            # In (0, L - 1): the nearest integer is the level; the ends get half-width bins, as rounding does.
            bounded = half * torch.tanh(projected) + half
        else:
            if self.training and flat.shape[0] < 2:
                raise ValueError("FSQ with bound='uniform' needs at least 2 vectors per training batch")
            # In (-1/2, L - 1/2): L bins of equal width, equally likely for a standard-normal scalar.
            levels = self.level_counts.to(flat.dtype)
            bounded = torch.sigmoid(1.6 * self.standardize(projected)) * levels - 0.5
        steps = torch.minimum(bounded.round().clamp_min(0), 2 * half)
        straight_through = bounded + (steps - bounded).detach()
        indices = (steps.long() * self.radix).sum(-1)
        quantized = self.project_out(straight_through / half - 1)
        usage = torch.bincount(indices, minlength=self.num_codes)
        if self.training:
            remember_inputs(self, flat.detach().float())
        return VQOutput(
            quantized=quantized.reshape(*z.shape[:-1], self.code_dim),
            indices=indices.reshape(z.shape[:-1]),
            loss=flat.new_zeros(()),
            usage=usage,
        )

    def _scalars(self, indices: torch.Tensor) -> torch.Tensor:
        steps = (indices[..., None] // self.radix) % self.level_counts
        half = (self.level_counts.float() - 1) / 2
        return steps.float() / half - 1
