"""The one place the workspace imports Triton: ``triton`` and ``tl`` are None where it is missing (it ships
for Linux only), and the kernels' callers run their PyTorch references instead."""

try:
    import triton
    import triton.language as tl
except ImportError:
    triton = None
    tl = None

HAS_TRITON = triton is not None


def require_triton() -> None:
    if not HAS_TRITON:
        raise RuntimeError(
            "triton is not installed; use the *_reference functions or the dispatchers instead"
        )
