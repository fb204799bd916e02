import pytest
import torch
from cola_lam.kernels import nearest_code, nearest_code_reference, nearest_code_triton
from cola_lam.kernels.nearest_code import INTERPRETED
from hypothesis import given, settings
from hypothesis import strategies as st

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def test_kernel_runs_interpreted_on_cpu():
    assert torch.cuda.is_available() or INTERPRETED, (
        "triton was imported before tests/conftest.py set TRITON_INTERPRET=1; run with TRITON_INTERPRET=1 set"
    )


def assert_matches_reference(z, codebook, dist_tol):
    indices, sq_dist = nearest_code_triton(z, codebook)
    ref_indices, ref_dist = nearest_code_reference(z, codebook)
    assert indices.dtype == torch.int64 and sq_dist.dtype == torch.float32
    assert indices.shape == sq_dist.shape == (z.shape[0],)
    assert ((indices >= 0) & (indices < codebook.shape[0])).all()
    assert torch.allclose(sq_dist, ref_dist, atol=dist_tol, rtol=1e-4)
    # Near-ties may round either way; the code the kernel picked must be as near as the reference's pick.
    z32, e32 = z.float(), codebook.float()
    picked = (z32 - e32[indices]).pow(2).sum(1)
    assert torch.allclose(picked, ref_dist, atol=dist_tol, rtol=1e-4)
    assert (indices == ref_indices).float().mean() > 0.95


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    ("n", "k", "d"), [(1, 1, 1), (37, 5, 3), (100, 70, 33), (130, 32, 32), (65, 129, 100)]
)
def test_kernel_matches_reference_on_ragged_sizes(n, k, d, dtype):
    gen = torch.Generator().manual_seed(n * 1000 + k * 10 + d)
    z = torch.randn(n, d, generator=gen).to(DEVICE, dtype)
    codebook = torch.randn(k, d, generator=gen).to(DEVICE, dtype)
    assert_matches_reference(z, codebook, dist_tol=1e-3)


def test_single_code_picks_zero():
    z = torch.randn(50, 16, device=DEVICE)
    codebook = torch.randn(1, 16, device=DEVICE)
    indices, sq_dist = nearest_code_triton(z, codebook)
    assert (indices == 0).all()
    assert torch.allclose(sq_dist, (z - codebook).pow(2).sum(1), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_duplicate_rows_resolve_to_lowest_index(dtype):
    # Small integers keep every product and sum exact, so duplicated rows tie exactly in any summation order.
    gen = torch.Generator().manual_seed(0)
    codebook = torch.randint(-3, 4, (100, 20), generator=gen).float()
    codebook[70] = codebook[5]  # duplicate across two K tiles
    codebook[6] = codebook[5]  # and within one tile
    codebook[99] = codebook[42]
    z = codebook[[5, 6, 70, 42, 99, 0]].clone()
    indices, sq_dist = nearest_code_triton(z.to(DEVICE, dtype), codebook.to(DEVICE, dtype))
    assert indices.tolist() == [5, 5, 5, 42, 42, 0]
    assert (sq_dist == 0).all()
    assert nearest_code_reference(z.to(dtype), codebook.to(dtype))[0].tolist() == indices.tolist()


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    k=st.integers(1, 80),
    d=st.integers(1, 40),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
)
def test_kernel_equals_reference_exactly_on_integer_data(n, k, d, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randint(-4, 5, (n, d), generator=gen).to(dtype)
    codebook = torch.randint(-4, 5, (k, d), generator=gen).to(dtype)
    indices, sq_dist = nearest_code_triton(z.to(DEVICE), codebook.to(DEVICE))
    ref_indices, ref_dist = nearest_code_reference(z, codebook)
    assert indices.cpu().tolist() == ref_indices.tolist()
    assert sq_dist.cpu().tolist() == ref_dist.tolist()
    assert ref_indices.tolist() == torch.cdist(z.double(), codebook.double()).argmin(1).tolist()


def test_non_contiguous_and_mixed_dtype_inputs():
    z = torch.randn(24, 40, device=DEVICE).T  # [40, 24], strided
    codebook = torch.randn(24, 9, device=DEVICE).T.to(torch.bfloat16)
    indices, _ = nearest_code_triton(z, codebook)
    ref_indices, _ = nearest_code_reference(z, codebook.float())
    assert indices.tolist() == ref_indices.tolist()


def test_empty_input():
    indices, sq_dist = nearest_code_triton(torch.zeros(0, 8, device=DEVICE), torch.randn(4, 8, device=DEVICE))
    assert indices.shape == sq_dist.shape == (0,)


def test_dispatch_matches_reference():
    z, codebook = torch.randn(33, 8), torch.randn(7, 8)
    for got, want in zip(nearest_code(z, codebook), nearest_code_reference(z, codebook), strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("fn", [nearest_code, nearest_code_reference, nearest_code_triton])
@pytest.mark.parametrize(
    ("z", "codebook", "message"),
    [
        (torch.randn(4, 8), torch.randn(3, 7), "share the code dimension"),
        (torch.randn(2, 4, 8), torch.randn(3, 8), "rank 2"),
        (torch.randn(4, 8), torch.randn(8), "rank 2"),
        (torch.randint(0, 3, (4, 8)), torch.randn(3, 8), "float32, bfloat16 or float16"),
        (torch.randn(4, 8), torch.randn(0, 8), "at least one entry"),
    ],
)
def test_bad_input_raises(fn, z, codebook, message):
    with pytest.raises(ValueError, match=message):
        fn(z, codebook)


def test_without_triton_the_reference_runs(monkeypatch):
    import importlib.util
    import sys

    def fresh(name: str, path: str):
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    installed = sys.modules["cola_lam.kernels.nearest_code"]  # the package's `nearest_code` is the function
    shim = sys.modules["cola_lam.kernels.triton_import"]
    monkeypatch.setitem(sys.modules, "triton", None)
    monkeypatch.setitem(sys.modules, "triton.language", None)
    # Triton is imported in one place: import that again without it, then the kernel module.
    monkeypatch.setitem(sys.modules, shim.__name__, fresh(shim.__name__, shim.__file__))
    module = fresh("cola_lam.kernels.nearest_code_without_triton", installed.__file__)
    z, codebook = torch.randn(9, 4), torch.randn(5, 4)
    assert torch.equal(module.nearest_code(z, codebook)[0], nearest_code_reference(z, codebook)[0])
    with pytest.raises(RuntimeError, match="needs Triton"):
        module.nearest_code_triton(z, codebook)
