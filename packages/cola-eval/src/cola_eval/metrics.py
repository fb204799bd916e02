"""Frame metrics (PSNR, SSIM) and the Frechet distance between Gaussian feature statistics.

Frames follow the project convention: float tensors [..., C, H, W] in [-1, 1], so the default data range is 2.
"""

from __future__ import annotations

import torch

SSIM_SIGMA = 1.5
SSIM_TRUNCATE = 3.5  # scipy.ndimage.gaussian_filter's default, which scikit-image's SSIM uses
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_pair(pred: torch.Tensor, target: torch.Tensor, name: str) -> None:
    if pred.shape != target.shape:
        raise ValueError(
            f"{name}: prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}; "
            "pass frames of the same shape [..., C, H, W]"
        )
    if pred.dim() < 3:
        raise ValueError(f"{name}: expected frames [..., C, H, W], got shape {tuple(pred.shape)}")
    if not (torch.isfinite(pred).all() and torch.isfinite(target).all()):
        raise ValueError(f"{name}: frames contain NaN or inf; check the model's output")


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each frame: returns a tensor of shape pred.shape[:-3].

    Identical frames give +inf.
    """
    _check_pair(pred, target, "psnr")
    mse = (pred.double() - target.double()).pow(2).flatten(-3).mean(-1)
    return (10.0 * torch.log10(data_range**2 / mse)).float()


def gaussian_window(
    sigma: float = SSIM_SIGMA, truncate: float = SSIM_TRUNCATE, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """The normalised 1-D Gaussian scipy.ndimage.gaussian_filter applies (radius int(truncate*sigma+0.5))."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=dtype)
    window = torch.exp(-0.5 * (x / sigma) ** 2)
    return window / window.sum()


def _band(window: torch.Tensor, size: int) -> torch.Tensor:
    """[size - k + 1, size] matrix whose row i holds the window at columns i..i+k-1 (a 'valid' 1-D filter)."""
    k = window.numel()
    band = torch.zeros(size - k + 1, size, dtype=window.dtype, device=window.device)
    for offset in range(k):
        band.diagonal(offset).copy_(window[offset].expand(size - k + 1))
    return band


def ssim(
    pred: torch.Tensor, target: torch.Tensor, data_range: float = 2.0, sigma: float = SSIM_SIGMA
) -> torch.Tensor:
    """Structural similarity of each frame (mean over pixels and channels): shape pred.shape[:-3].

    Matches skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=...): scikit-image filters the whole
    image and then averages only the pixels at least one window radius from the border, which are exactly the
    pixels a 'valid' convolution produces, so no padding rule is involved.
    """
    _check_pair(pred, target, "ssim")
    window = gaussian_window(sigma).to(pred.device)
    size = window.numel()
    *lead, c, h, w = pred.shape
    if h < size or w < size:
        raise ValueError(
            f"ssim: frames of {h}x{w} are smaller than the {size}x{size} Gaussian window; "
            "use frames of at least that size"
        )
    x = pred.double().reshape(-1, h, w)
    y = target.double().reshape(-1, h, w)
    # The separable 'valid' Gaussian filter as two banded matrices: blur(img) = rows @ img @ cols^T, which
    # runs on float64 BLAS (float64 convolutions are slow on CPU).
    rows, cols = _band(window, h), _band(window, w)

    def blur(img: torch.Tensor) -> torch.Tensor:
        return rows @ img @ cols.T

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / (
        (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    )
    per_channel = ssim_map.flatten(1).mean(1).view(*lead, c)
    return per_channel.mean(-1).float()


def feature_statistics(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased, like numpy.cov) covariance of features [N, D], in float64."""
    if features.dim() != 2:
        raise ValueError(f"feature_statistics: expected features [N, D], got shape {tuple(features.shape)}")
    if features.shape[0] < 2:
        raise ValueError(
            f"feature_statistics: need at least 2 samples for a covariance, got {features.shape[0]}"
        )
    f = features.double()
    mu = f.mean(0)
    centred = f - mu
    sigma = centred.T @ centred / (f.shape[0] - 1)
    return mu, sigma


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp_min(0).sqrt()) @ eigvecs.T


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2).

    d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^1/2). The trace of the matrix square root is taken as
    the sum of square roots of the eigenvalues of S1^1/2 S2 S1^1/2, which is symmetric PSD and similar to
    S1 S2, so no complex sqrtm is needed and rank-deficient covariances (few samples) stay stable.
    """
    mu1, mu2, sigma1, sigma2 = (t.detach().double().cpu() for t in (mu1, mu2, sigma1, sigma2))
    d = mu1.shape[-1]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(
            "frechet_distance: expected means [D] and covariances [D, D] of one D, got "
            f"{tuple(mu1.shape)}, {tuple(sigma1.shape)}, {tuple(mu2.shape)}, {tuple(sigma2.shape)}"
        )
    for t in (mu1, mu2, sigma1, sigma2):
        if not torch.isfinite(t).all():
            raise ValueError("frechet_distance: statistics contain NaN or inf")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return max(float(distance), 0.0)


def frechet_distance_from_features(real: torch.Tensor, generated: torch.Tensor) -> float:
    """Frechet distance between the Gaussian fits of two feature sets [N, D] and [M, D]."""
    return frechet_distance(*feature_statistics(real), *feature_statistics(generated))
