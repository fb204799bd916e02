"""Fused Triton kernels vs their PyTorch references: forward and gradients, fp32 and bf16, ragged sizes."""

import pytest
import torch
from cola_wm.kernels import (
    adaln_modulate,
    adaln_modulate_reference,
    adaln_modulate_triton,
    gated_residual,
    gated_residual_reference,
    gated_residual_triton,
)
from hypothesis import given, settings
from hypothesis import strategies as st

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.bfloat16]
# (batch, frames or None for per-sample modulation, tokens per frame, channels): channels not powers of two,
# token counts not multiples of the row block
SHAPES = [(2, 3, 37, 45), (3, None, 50, 130), (1, 5, 7, 1152), (2, 2, 1, 8)]


def _tolerance(dtype: torch.dtype) -> dict[str, float]:
    return {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 2e-2, "rtol": 2e-2}


def _inputs(batch, frames, patches, channels, dtype, count, seed=0):
    generator = torch.Generator().manual_seed(seed)
    tokens = patches * (frames or 1)
    mod_shape = (batch, channels) if frames is None else (batch, frames, channels)
    x = torch.randn(batch, tokens, channels, generator=generator) * 3 + 1
    mods = [torch.randn(mod_shape, generator=generator) for _ in range(count)]
    return [t.to(DEVICE, dtype).requires_grad_() for t in (x, *mods)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_adaln_matches_reference(shape, dtype):
    x, shift, scale = _inputs(*shape, dtype, count=2)
    out = adaln_modulate_triton(x, shift, scale, 1e-6)
    ref = adaln_modulate_reference(x, shift, scale, 1e-6)
    assert out.dtype == dtype and out.shape == x.shape
    torch.testing.assert_close(out, ref, **_tolerance(dtype))
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, shift, scale), grad)
    want = torch.autograd.grad(ref, (x, shift, scale), grad)
    for name, g, w in zip(("x", "shift", "scale"), got, want, strict=True):
        assert g.dtype == w.dtype, name
        torch.testing.assert_close(
            g.float(), w.float(), **_tolerance(dtype), msg=lambda m, n=name: f"d{n}: {m}"
        )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_gated_residual_matches_reference(shape, dtype):
    x, gate = _inputs(*shape, dtype, count=1)
    y = torch.randn_like(x).requires_grad_()
    out = gated_residual_triton(x, y, gate)
    ref = gated_residual_reference(x, y, gate)
    torch.testing.assert_close(out, ref, **_tolerance(dtype))
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, y, gate), grad)
    want = torch.autograd.grad(ref, (x, y, gate), grad)
    for name, g, w in zip(("x", "y", "gate"), got, want, strict=True):
        torch.testing.assert_close(
            g.float(), w.float(), **_tolerance(dtype), msg=lambda m, n=name: f"d{n}: {m}"
        )


@settings(max_examples=8, deadline=None)
@given(
    batch=st.integers(1, 3),
    frames=st.integers(1, 4),
    patches=st.integers(1, 40),
    channels=st.integers(1, 300),
)
def test_adaln_ragged_sizes_property(batch, frames, patches, channels):
    x, shift, scale = _inputs(batch, frames, patches, channels, torch.float32, count=2, seed=batch * frames)
    out = adaln_modulate_triton(x, shift, scale, 1e-5)
    torch.testing.assert_close(out, adaln_modulate_reference(x, shift, scale, 1e-5), atol=1e-4, rtol=1e-4)


def test_per_frame_modulation_broadcasts_over_that_frames_tokens():
    """Modulation row t applies exactly to tokens [t*L, (t+1)*L): same as modulating each frame on its own."""
    batch, frames, patches, channels = 2, 3, 5, 24
    x, shift, scale, gate = (t.detach() for t in _inputs(batch, frames, patches, channels, torch.float32, 3))
    y = torch.randn_like(x)
    fused = adaln_modulate_triton(x, shift, scale, 1e-6)
    residual = gated_residual_triton(x, y, gate)
    for frame in range(frames):
        rows = slice(frame * patches, (frame + 1) * patches)
        alone = adaln_modulate_reference(x[:, rows], shift[:, frame], scale[:, frame], 1e-6)
        torch.testing.assert_close(fused[:, rows], alone, atol=1e-5, rtol=1e-5)
        manual = x[:, rows] + gate[:, frame, None, :] * y[:, rows]
        torch.testing.assert_close(residual[:, rows], manual, atol=1e-6, rtol=1e-6)


def test_dispatchers_use_reference_off_cuda():
    x, shift, scale = (t.detach().cpu() for t in _inputs(2, 2, 3, 16, torch.float32, 2))
    assert torch.equal(adaln_modulate(x, shift, scale, 1e-6), adaln_modulate_reference(x, shift, scale, 1e-6))
    assert torch.equal(gated_residual(x, x, shift), gated_residual_reference(x, x, shift))


@pytest.mark.parametrize("fn", [adaln_modulate_triton, adaln_modulate_reference])
def test_adaln_rejects_mismatched_modulation(fn):
    x = torch.randn(2, 12, 8)
    with pytest.raises(ValueError, match="shift"):
        fn(x, torch.randn(2, 7), torch.randn(2, 8), 1e-6)
    with pytest.raises(ValueError, match="whole number of tokens per frame"):
        fn(x, torch.randn(2, 5, 8), torch.randn(2, 5, 8), 1e-6)
    with pytest.raises(ValueError, match=r"\[B, N, C\]"):
        fn(torch.randn(12, 8), torch.randn(2, 8), torch.randn(2, 8), 1e-6)


@pytest.mark.parametrize("fn", [gated_residual_triton, gated_residual_reference])
def test_gated_residual_rejects_mismatched_shapes(fn):
    x = torch.randn(2, 12, 8)
    with pytest.raises(ValueError, match="same shape"):
        fn(x, torch.randn(2, 12, 9), torch.randn(2, 8))
    with pytest.raises(ValueError, match="gate"):
        fn(x, x, torch.randn(3, 8))
