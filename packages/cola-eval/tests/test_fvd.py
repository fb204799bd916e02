import pytest
import torch
from cola_eval.fvd import fvd, load_i3d, preprocess_for_i3d
from cola_eval.i3d import InceptionI3d
from cola_eval.weights import WeightsSource, WeightsUnavailable
from safetensors.torch import save_file


@pytest.fixture(autouse=True)
def no_env_weights(monkeypatch):
    for name in ("COLA_I3D_WEIGHTS", "COLA_I3D_REPO", "COLA_I3D_FILENAME"):
        monkeypatch.delenv(name, raising=False)


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
