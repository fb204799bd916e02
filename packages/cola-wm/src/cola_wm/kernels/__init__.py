"""Fused Triton kernels for the DiT's AdaLN-Zero modulation, each beside its PyTorch reference."""

from cola_wm.kernels.adaln import adaln_modulate, adaln_modulate_reference, adaln_modulate_triton
from cola_wm.kernels.residual import gated_residual, gated_residual_reference, gated_residual_triton

__all__ = [
    "adaln_modulate",
    "adaln_modulate_reference",
    "adaln_modulate_triton",
    "gated_residual",
    "gated_residual_reference",
    "gated_residual_triton",
]
