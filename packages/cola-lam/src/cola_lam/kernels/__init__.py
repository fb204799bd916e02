"""Triton kernels of cola_lam, each beside its PyTorch reference."""

from .nearest_code import nearest_code, nearest_code_reference, nearest_code_triton

__all__ = ["nearest_code", "nearest_code_reference", "nearest_code_triton"]
