from pathlib import Path

import numpy as np
import pytest
import torch
from cola_eval.lpips import LPIPS, load_lpips, lpips_distance
from cola_eval.weights import WeightsSource, WeightsUnavailable
from PIL import Image
from safetensors.torch import save_file


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch, tmp_path):
    for name in ("COLA_LPIPS_WEIGHTS", "COLA_LPIPS_REPO", "COLA_LPIPS_FILENAME"):
        monkeypatch.delenv(name, raising=False)
    # An empty fetch cache, so what a test loads is what it configures.
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path / "no-fetched-weights"))


def _reference_layout_state(model: LPIPS) -> dict[str, torch.Tensor]:
    """The key layout of the reference `lpips` package's LPIPS state dict (lin0 and lins.0 duplicates,
    scaling-layer buffers)."""
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for k in range(5):
        state[f"lin{k}.model.1.weight"] = state[f"lins.{k}.model.1.weight"].clone()
    state["scaling_layer.shift"] = torch.tensor([-0.030, -0.088, -0.188])[None, :, None, None]
    state["scaling_layer.scale"] = torch.tensor([0.458, 0.448, 0.450])[None, :, None, None]
    return state


def test_lpips_loads_reference_layout_and_is_zero_on_identical_images(tmp_path):
    torch.manual_seed(0)
    model = LPIPS("alex").eval()
    for head in model.lins:
        head.model[1].weight.data.abs_()  # the released heads are non-negative
    path = tmp_path / "lpips_alex.safetensors"
    save_file(_reference_layout_state(model), str(path))
    loaded = load_lpips("alex", WeightsSource(local_path=path))
    x = torch.rand(2, 4, 3, 64, 64) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    d = lpips_distance(loaded, x, y)
    assert d.shape == (2, 4)
    assert torch.allclose(d, lpips_distance(model, x, y))
    assert (d > 0).all()
    assert torch.allclose(lpips_distance(loaded, x, x), torch.zeros(2, 4))


def test_lpips_accepts_torchvision_backbone_keys(tmp_path):
    model = LPIPS("alex")
    state = {}
    for name, value in model.state_dict().items():
        if name.startswith("net."):
            _, _, index, rest = name.split(".", 3)
            state[f"features.{index}.{rest}"] = value
        else:
            state[name.replace("lins.", "lin")] = value
    path = tmp_path / "alex.safetensors"
    save_file(state, str(path))
    assert isinstance(load_lpips("alex", WeightsSource(local_path=path)), LPIPS)


def test_lpips_vgg_from_offline_hub_cache(tmp_path, offline_hub):
    source = tmp_path / "w.safetensors"
    save_file(LPIPS("vgg").state_dict(), str(source))
    offline_hub(tmp_path / "cache", "someone/lpips", "lpips_vgg.safetensors", source)
    model = load_lpips("vgg", WeightsSource(repo_id="someone/lpips", cache_dir=tmp_path / "cache"))
    assert model(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)).shape == (1,)


def test_lpips_without_weights_is_unavailable():
    with pytest.raises(WeightsUnavailable, match="no LPIPS"):
        load_lpips("alex")
    with pytest.raises(ValueError, match="'alex' or 'vgg'"):
        LPIPS("resnet")


def _example_image(name: str) -> torch.Tensor:
    path = Path(__file__).parent / "data" / "lpips" / f"{name}.png"
    pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(pixels).permute(2, 0, 1)[None] / 127.5 - 1


def test_fetched_weights_are_found_by_default(tmp_path, monkeypatch):
    save_file(LPIPS("alex").state_dict(), str(tmp_path / "lpips_alex.safetensors"))
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path))
    assert isinstance(load_lpips("alex"), LPIPS)
    with pytest.raises(WeightsUnavailable, match="cola-eval weights fetch"):
        load_lpips("vgg")


def test_lpips_alex_matches_the_published_values_on_the_example_images(fetched_weights_dir, monkeypatch):
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(fetched_weights_dir))
    model = load_lpips("alex")  # found by default in the fetch cache
    ref, p0, p1 = (_example_image(n) for n in ("ex_ref", "ex_p0", "ex_p1"))
    # The LPIPS authors' test_network.py values for v0.1 alex, to their 3 printed places.
    assert model(ref, p0).item() == pytest.approx(0.722, abs=5e-4)
    assert model(ref, p1).item() == pytest.approx(0.138, abs=5e-4)
    vgg = load_lpips("vgg")
    assert vgg(ref, p1).item() < vgg(ref, p0).item()  # p1 is the closer distortion for both networks
