"""LPIPS (Zhang et al. 2018, v0.1): distances between unit-normalised ImageNet backbone features, weighted by
learned 1x1 linear heads, averaged over space and summed over five layers.

Module names follow the reference `lpips` package (`net.slice1.0.weight`, ..., `lins.0.model.1.weight`),
so its state dict, converted to safetensors, loads unchanged; torchvision-style backbone keys
(`features.3.weight`) and the reference's `lin0.model.1.weight` head keys are accepted too.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Literal

import torch
from torch import nn

from cola_eval.weights import WeightsSource, load_weights, resolve_weights_file

LPIPS_ENV_PREFIX = "COLA_LPIPS"
Backbone = Literal["alex", "vgg"]

# Layer lists of torchvision's AlexNet / VGG16 `features` up to the last ReLU LPIPS reads, and where the five
# slices end (after relu1..relu5 for AlexNet, after relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 for VGG16).
_ALEX = [
    ("conv", 3, 64, 11, 4, 2),
    ("relu",),
    ("pool",),
    ("conv", 64, 192, 5, 1, 2),
    ("relu",),
    ("pool",),
    ("conv", 192, 384, 3, 1, 1),
    ("relu",),
    ("conv", 384, 256, 3, 1, 1),
    ("relu",),
    ("conv", 256, 256, 3, 1, 1),
    ("relu",),
]
_VGG_WIDTHS = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
SLICE_ENDS = {"alex": (2, 5, 8, 10, 12), "vgg": (4, 9, 16, 23, 30)}
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _vgg_layers() -> list[tuple]:
    layers: list[tuple] = []
    in_ch = 3
    for width in _VGG_WIDTHS:
        if width == "M":
            layers.append(("pool2",))
        else:
            layers += [("conv", in_ch, width, 3, 1, 1), ("relu",)]
            in_ch = width
    return layers


def _build(spec: tuple) -> nn.Module:
    kind = spec[0]
    if kind == "conv":
        _, cin, cout, k, s, p = spec
        return nn.Conv2d(cin, cout, k, s, p)
    if kind == "relu":
        return nn.ReLU()
    return nn.MaxPool2d(3, 2) if kind == "pool" else nn.MaxPool2d(2, 2)


class BackboneSlices(nn.Module):
    """The backbone's `features` layers cut into five slices; layer names keep torchvision's indices."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        specs = _ALEX if backbone == "alex" else _vgg_layers()
        start = 0
        for k, end in enumerate(SLICE_ENDS[backbone], start=1):
            layers = OrderedDict((str(i), _build(specs[i])) for i in range(start, end))
            setattr(self, f"slice{k}", nn.Sequential(layers))
            start = end

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for k in range(1, 6):
            x = getattr(self, f"slice{k}")(x)
            outs.append(x)
        return outs


class LinearHead(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance between images [N, 3, H, W] in [-1, 1] -> [N]."""

    def __init__(self, backbone: Backbone = "alex") -> None:
        super().__init__()
        if backbone not in SLICE_ENDS:
            raise ValueError(f"LPIPS backbone must be 'alex' or 'vgg', got {backbone!r}")
        self.backbone = backbone
        # ImageNet normalisation expressed for inputs in [-1, 1] (the reference's ScalingLayer).
        self.register_buffer(
            "shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = BackboneSlices(backbone)
        self.lins = nn.ModuleList(LinearHead(c) for c in CHANNELS[backbone])

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape or x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects two image batches [N, 3, H, W] of one shape, got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        feats_x = self.net((x - self.shift) / self.scale)
        feats_y = self.net((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for head, fx, fy in zip(self.lins, feats_x, feats_y, strict=True):
            fx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            fy = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + head((fx - fy).pow(2)).mean(dim=(1, 2, 3))
        return total


def _reference_key(backbone: Backbone):
    slice_of = {}
    start = 0
    for k, end in enumerate(SLICE_ENDS[backbone], start=1):
        slice_of.update({i: k for i in range(start, end)})
        start = end

    def rename(key: str) -> str | None:
        if key.startswith("scaling_layer."):
            return None
        if m := re.fullmatch(r"lin(\d)\.(.*)", key):
            return f"lins.{m[1]}.{m[2]}"
        if m := re.fullmatch(r"features\.(\d+)\.(.*)", key):
            index = int(m[1])
            # torchvision's `features` runs past relu5 (a final max-pool) which LPIPS never reads.
            return f"net.slice{slice_of[index]}.{index}.{m[2]}" if index in slice_of else None
        return key

    return rename


def load_lpips(
    backbone: Backbone = "alex", source: WeightsSource | None = None, device: torch.device | str = "cpu"
) -> LPIPS:
    """LPIPS in eval mode with backbone + linear-head weights from a local safetensors file or the Hub; raises
    WeightsUnavailable (with the reason) when none can be had."""
    model = LPIPS(backbone)
    path = resolve_weights_file(
        source or WeightsSource(), f"LPIPS ({backbone})", LPIPS_ENV_PREFIX, f"lpips_{backbone}.safetensors"
    )
    load_weights(model, path, "LPIPS", rename=_reference_key(backbone))
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def lpips_distance(
    model: LPIPS, pred: torch.Tensor, target: torch.Tensor, batch_size: int = 64
) -> torch.Tensor:
    """LPIPS of each frame of [..., 3, H, W] tensors in [-1, 1]: returns shape pred.shape[:-3]."""
    if pred.shape != target.shape or pred.dim() < 4:
        raise ValueError(
            f"lpips_distance: expected two [..., 3, H, W] tensors of one shape, got "
            f"{tuple(pred.shape)} and {tuple(target.shape)}"
        )
    device = next(model.parameters()).device
    x, y = pred.reshape(-1, *pred.shape[-3:]), target.reshape(-1, *target.shape[-3:])
    out = [
        model(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)).cpu()
        for i in range(0, x.shape[0], batch_size)
    ]
    return torch.cat(out).reshape(pred.shape[:-3])
