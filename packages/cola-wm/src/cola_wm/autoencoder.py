"""FrameAutoencoder: a small convolutional autoencoder, so the DiT can generate frames in a latent space.

Each frame ``[C, H, W]`` in [-1, 1] maps to a latent ``[latent_channels, H / f, W / f]`` with
``f = 2 ** len(widths)``: a 3x3 stem, then per level a stride-2 convolution and a residual block; the decoder
mirrors it with nearest-neighbour upsampling. Latents are standardised per channel with statistics fitted on
training frames (:meth:`FrameAutoencoder.fit_latent_scale`), so flow matching's unit-variance noise is on the
latents' scale, as Stable Diffusion's scale factor does. Training adds Gaussian noise of ``latent_noise``
(in standardised units) to the latents before decoding, so the decoder also maps the slightly-off latents a
sampler ends on to clean frames.
"""

from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from cola_lam.hub import SubfolderHubMixin
from cola_lam.hub_io import StrictHubMixin
from torch import nn


@dataclass
class AutoencoderConfig:
    """Shape of a :class:`FrameAutoencoder`: ``widths`` are the channels after each stride-2 level."""

    frame_size: int = 64
    channels: int = 3
    latent_channels: int = 4
    stem_width: int = 32
    widths: tuple[int, ...] = field(default=(32, 64))
    latent_noise: float = 0.1

    def __post_init__(self) -> None:
        self.widths = tuple(self.widths)
        for name in ("frame_size", "channels", "latent_channels", "stem_width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"AutoencoderConfig.{name} must be a positive int, got {value!r}")
        if not self.widths or not all(isinstance(w, int) and w > 0 for w in self.widths):
            raise ValueError(f"AutoencoderConfig.widths must be positive ints, got {self.widths!r}")
        if self.frame_size % self.downsample:
            raise ValueError(
                f"AutoencoderConfig.frame_size ({self.frame_size}) must be a multiple of the downsampling "
                f"factor 2 ** len(widths) = {self.downsample}; use fewer levels or another frame size"
            )
        if not 0.0 <= self.latent_noise < float("inf"):
            raise ValueError(
                f"AutoencoderConfig.latent_noise must be finite and >= 0, got {self.latent_noise}"
            )

    @property
    def downsample(self) -> int:
        return 2 ** len(self.widths)

    @property
    def latent_size(self) -> int:
        return self.frame_size // self.downsample

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ResBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(8, width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.norm2 = nn.GroupNorm(8, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        return x + self.conv2(F.silu(self.norm2(h)))


class FrameAutoencoder(
    nn.Module,
    StrictHubMixin,
    SubfolderHubMixin,
    library_name="cola-wm",
    tags=["cola", "autoencoder"],
    license="mit",
):
    """``encode(frames [..., C, H, W]) -> [..., latent_channels, h, w]`` (standardised) and ``decode`` back;
    any leading dims (batch, time) are kept."""

    def __init__(self, config: AutoencoderConfig):
        super().__init__()
        if not isinstance(config, AutoencoderConfig):
            raise ValueError(f"FrameAutoencoder needs an AutoencoderConfig, got {type(config).__name__}")
        self.config = config
        for w in (config.stem_width, *config.widths):
            if w % 8:
                raise ValueError(f"AutoencoderConfig widths must be multiples of 8 (GroupNorm), got {w}")
        encoder: list[nn.Module] = [nn.Conv2d(config.channels, config.stem_width, 3, padding=1)]
        previous = config.stem_width
        for width in config.widths:
            encoder += [nn.Conv2d(previous, width, 4, stride=2, padding=1), ResBlock(width)]
            previous = width
        encoder += [nn.GroupNorm(8, previous), nn.SiLU(), nn.Conv2d(previous, config.latent_channels, 1)]
        self.encoder = nn.Sequential(*encoder)

        decoder: list[nn.Module] = [
            nn.Conv2d(config.latent_channels, previous, 3, padding=1),
            ResBlock(previous),
        ]
        for width in (*reversed(config.widths[:-1]), config.stem_width):
            decoder += [
                nn.Upsample(scale_factor=2, mode="nearest"),
                nn.Conv2d(previous, width, 3, padding=1),
                ResBlock(width),
            ]
            previous = width
        decoder += [nn.GroupNorm(8, previous), nn.SiLU(), nn.Conv2d(previous, config.channels, 3, padding=1)]
        self.decoder = nn.Sequential(*decoder)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_std", torch.ones(config.latent_channels))

    def _check(self, x: torch.Tensor, shape: tuple[int, int, int], what: str) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() < 4 or tuple(x.shape[-3:]) != shape:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"{what} must be [..., {', '.join(map(str, shape))}] for this autoencoder, got {got}"
            )
        if not x.is_floating_point():
            raise ValueError(f"{what} must be a float tensor, got {x.dtype}")

    def _raw_encode(self, frames: torch.Tensor) -> torch.Tensor:
        c = self.config
        self._check(frames, (c.channels, c.frame_size, c.frame_size), "frames")
        lead = frames.shape[:-3]
        z = self.encoder(frames.reshape(-1, *frames.shape[-3:]).to(self.latent_mean.dtype))
        return z.view(*lead, *z.shape[1:])

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Standardised latents of ``frames [..., C, H, W]`` in [-1, 1]."""
        z = self._raw_encode(frames)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Frames ``[..., C, H, W]`` of standardised ``latents``."""
        c = self.config
        self._check(latents, (c.latent_channels, c.latent_size, c.latent_size), "latents")
        lead = latents.shape[:-3]
        z = latents.reshape(-1, *latents.shape[-3:]).to(self.latent_mean.dtype)
        z = z * self.latent_std[:, None, None] + self.latent_mean[:, None, None]
        x = self.decoder(z)
        return x.view(*lead, *x.shape[1:])

    def reconstruction_loss(
        self, frames: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """MSE of decoding the latents of ``frames [N, C, H, W]`` (noised in training mode)."""
        z = self.encode(frames)
        if self.training and self.config.latent_noise > 0:
            # In units of each channel's spread in this batch: the same before the scale is fitted.
            spread = z.detach().transpose(0, 1).flatten(1).std(dim=1)[:, None, None]
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
            z = z + self.config.latent_noise * spread * noise
        return F.mse_loss(self.decode(z), frames.to(z.dtype))

    @torch.no_grad()
    def fit_latent_scale(self, frames: torch.Tensor) -> None:
        """Set the per-channel mean and std the latents are standardised with from ``frames [N, C, H, W]``."""
        z = self._raw_encode(frames).transpose(0, 1).flatten(1)
        std = z.std(dim=1)
        if not torch.isfinite(z).all() or (std <= 0).any():
            raise ValueError(
                "latent statistics are not finite or a channel is constant; train the autoencoder first"
            )
        self.latent_mean.copy_(z.mean(dim=1))
        self.latent_std.copy_(std)
