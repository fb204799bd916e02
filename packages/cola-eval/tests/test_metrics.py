import math

import numpy as np
import pytest
import scipy.linalg
import torch
from cola_eval.metrics import feature_statistics, frechet_distance, frechet_distance_from_features, psnr, ssim
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def test_identical_videos_give_psnr_inf_ssim_one_frechet_zero():
    video = torch.rand(2, 5, 3, 32, 32) * 2 - 1
    assert torch.isinf(psnr(video, video)).all()
    assert torch.allclose(ssim(video, video), torch.ones(2, 5))
    features = torch.randn(50, 8)
    assert frechet_distance_from_features(features, features) == pytest.approx(0.0, abs=1e-8)


def test_psnr_matches_scikit_image():
    a = torch.rand(3, 16, 20) * 2 - 1
    b = (a + 0.1 * torch.randn_like(a)).clamp(-1, 1)
    ours = psnr(b, a, data_range=2.0).item()
    theirs = peak_signal_noise_ratio(
        a.numpy().astype(np.float64), b.numpy().astype(np.float64), data_range=2.0
    )
    assert ours == pytest.approx(theirs, abs=1e-4)


@settings(max_examples=15, deadline=None)
@given(
    h=st.integers(11, 40),
    w=st.integers(11, 40),
    channels=st.sampled_from([1, 3]),
    noise=st.floats(0.01, 1.0),
    seed=st.integers(0, 2**16),
)
def test_ssim_matches_scikit_image_gaussian(h, w, channels, noise, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(channels, h, w, generator=g) * 2 - 1
    b = (a + noise * torch.randn(channels, h, w, generator=g)).clamp(-1, 1)
    ours = ssim(b, a, data_range=2.0).item()
    theirs = structural_similarity(
        a.numpy().astype(np.float64),
        b.numpy().astype(np.float64),
        channel_axis=0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=2.0,
    )
    assert abs(ours - theirs) < 1e-3


def test_metrics_reject_bad_input():
    a = torch.zeros(2, 3, 16, 16)
    with pytest.raises(ValueError, match="shape"):
        psnr(a, torch.zeros(2, 3, 16, 8))
    with pytest.raises(ValueError, match="NaN"):
        ssim(a, torch.full_like(a, math.nan))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="at least 2"):
        feature_statistics(torch.zeros(1, 4))


def _scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = covmean.real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@settings(max_examples=10, deadline=None)
@given(d=st.integers(2, 24), seed=st.integers(0, 2**16))
def test_frechet_distance_matches_scipy_sqrtm(d, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ours = frechet_distance(*(torch.from_numpy(x) for x in (mu1, s1, mu2, s2)))
    assert ours == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-6, abs=1e-6)


def test_frechet_distance_of_shifted_gaussians_is_the_squared_shift():
    torch.manual_seed(0)
    x = torch.randn(4000, 4)
    assert frechet_distance_from_features(x, x + 2.0) == pytest.approx(16.0, rel=1e-6)


def test_frechet_distance_rejects_mismatched_dims():
    with pytest.raises(ValueError, match="one D"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))
