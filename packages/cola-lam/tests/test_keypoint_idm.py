"""The keypoint IDM: its spatial softmax finds what its maps respond to, the latent depends on its own frame
pair, gradients reach the conv net, and a LAM built on it saves and loads like any other."""

import pytest
import torch
from cola_lam import KeypointIDM, LAMConfig, LatentActionModel
from cola_lam.keypoint_idm import spatial_softmax
from hypothesis import given, settings
from hypothesis import strategies as st

SMALL = {"idm_backbone": "keypoints", "frame_size": 32, "width": 32, "keypoints": 4, "keypoint_channels": 8}


def video(batch=2, frames=4, size=32, seed=0):
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@settings(max_examples=30, deadline=None)
@given(row=st.integers(0, 15), col=st.integers(0, 11))
def test_a_sharp_peak_gives_its_pixel_centre(row, col):
    maps = torch.zeros(1, 1, 16, 12)
    maps[0, 0, row, col] = 50.0
    x, y = spatial_softmax(maps)[0, 0].tolist()
    assert x == pytest.approx((col + 0.5) / 12 * 2 - 1, abs=1e-4)
    assert y == pytest.approx((row + 0.5) / 16 * 2 - 1, abs=1e-4)


def test_a_flat_map_gives_the_centre():
    assert torch.allclose(spatial_softmax(torch.zeros(2, 3, 8, 8)), torch.zeros(2, 3, 2), atol=1e-6)


def test_encode_shapes_and_the_lam_uses_the_keypoint_idm():
    config = LAMConfig.preset("tiny", **SMALL)
    lam = LatentActionModel(config)
    assert isinstance(lam.idm, KeypointIDM)
    out = lam.encode(video(frames=5))
    assert out.quantized.shape == (2, 4, config.tokens_per_action, config.code_dim)
    assert out.indices.shape == (2, 4, config.tokens_per_action)
    assert lam.idm(video(frames=5)).shape == (2, 4, config.tokens_per_action, config.code_dim)
    assert lam.idm.keypoints(video(frames=5)).shape == (2, 5, 4, 2)


def test_a_latent_action_depends_on_its_frame_pair_only():
    idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL)).eval()
    clip = video(frames=4)
    changed = clip.clone()
    changed[:, 3] = video(frames=1, seed=7)[:, 0]
    with torch.no_grad():
        before, after = idm(clip), idm(changed)
    assert torch.equal(before[:, :2], after[:, :2])
    assert not torch.allclose(before[:, 2], after[:, 2])


def test_straight_through_gradients_reach_the_conv_net():
    lam = LatentActionModel(LAMConfig.preset("tiny", **SMALL))
    out = lam.encode(video())
    (out.quantized.square().sum() + out.loss).backward()
    assert lam.idm.encoder[0].weight.grad is not None
    assert lam.idm.encoder[0].weight.grad.abs().sum() > 0


def test_moving_a_blob_moves_a_keypoint():
    """With the conv net's first filter picking the red channel, a keypoint follows a red square."""
    idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL)).eval()
    with torch.no_grad():
        for layer in idm.encoder:
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.zero_()
                layer.bias.zero_()
        idm.encoder[0].weight[0, 0, 2, 2] = 1.0
        idm.encoder[2].weight[0, 0, 1, 1] = 1.0
        idm.encoder[4].weight[0, 0, 1, 1] = 20.0
    frames = -torch.ones(1, 2, 3, 32, 32)
    frames[0, 0, 0, 4:8, 4:8] = 1.0
    frames[0, 1, 0, 4:8, 20:24] = 1.0
    with torch.no_grad():
        (x0, y0), (x1, y1) = idm.keypoints(frames)[0, :, 0].tolist()
    assert x1 - x0 > 0.5  # moved right
    assert y1 == pytest.approx(y0, abs=1e-3)  # not down


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"idm_backbone": "cnn"}, "idm_backbone"),
        ({"idm_backbone": "keypoints", "idm_input": "difference"}, "idm_input='pair'"),
        ({"idm_backbone": "keypoints", "idm_readout": "query_plus_change"}, "idm_readout='query'"),
        ({"keypoints": 0}, "positive integer"),
        ({"keypoint_channels": 0}, "positive integer"),
        ({"keypoint_softmax": "sharp"}, "keypoint_softmax"),
    ],
)
def test_bad_keypoint_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LAMConfig.preset("tiny", **kwargs)


def test_bad_video_raises_as_for_the_transformer_idm():
    idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL))
    clip = video()
    clip[0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        idm(clip)
    with pytest.raises(ValueError, match="frames"):
        idm(video(size=16))


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.05, 20.0), shift=st.floats(-5.0, 5.0))
def test_standardized_keypoints_ignore_the_scale_of_the_maps(scale, shift):
    """Scaling the last conv layer's output by any positive factor, or shifting it, leaves the standardised
    softmax's keypoints where they were; the raw softmax's move."""
    clip = video(frames=2, seed=5)
    for softmax, invariant in (("standardized", True), ("raw", False)):
        torch.manual_seed(0)
        idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL, keypoint_softmax=softmax)).eval()
        with torch.no_grad():
            idm.encoder[4].weight.normal_(0, 1)
            before = idm.keypoints(clip)
            idm.encoder[4].weight.mul_(scale)
            idm.encoder[4].bias.mul_(scale).add_(shift)
            after = idm.keypoints(clip)
        if invariant:
            assert torch.allclose(before, after, atol=1e-3)
        elif abs(scale - 1) > 0.2:
            assert not torch.allclose(before, after, atol=1e-3)


def test_the_standardized_softmax_learns_its_gain_and_raw_checkpoints_keep_their_keys():
    raw = KeypointIDM(LAMConfig.preset("tiny", **SMALL))
    assert not any("log_gain" in name for name in raw.state_dict())
    idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL, keypoint_softmax="standardized"))
    assert torch.equal(idm.log_gain.detach(), torch.zeros(SMALL["keypoints"]))
    idm(video()).square().sum().backward()
    assert idm.log_gain.grad is not None and idm.log_gain.grad.abs().sum() > 0


@pytest.mark.parametrize("softmax", ["raw", "standardized"])
def test_hub_round_trip(tmp_path, softmax):
    config = LAMConfig.preset("tiny", **SMALL, restart_buffer_size=64, keypoint_softmax=softmax)
    lam = LatentActionModel(config)
    lam(video())
    lam.eval().save_pretrained(tmp_path / "lam")
    loaded = LatentActionModel.from_pretrained(tmp_path / "lam").eval()
    assert loaded.config == config and isinstance(loaded.idm, KeypointIDM)
    with torch.no_grad():
        a, b = lam(video(seed=1)), loaded(video(seed=1))
    assert torch.equal(a.quantized, b.quantized) and torch.equal(a.indices, b.indices)


def test_displacement_features_name_every_still_pair_alike():
    """Reading only how the keypoints moved, the latent of a pair with no change is the same for any frame."""
    idm = KeypointIDM(LAMConfig.preset("tiny", **SMALL, keypoint_features="displacement")).eval()
    assert idm.mlp[0].in_features == 2 * SMALL["keypoints"]
    still = video(batch=3, frames=1, seed=3).repeat(1, 2, 1, 1, 1)
    with torch.no_grad():
        latents = idm(still)
        moving = idm(video(batch=3, frames=2, seed=4))
    assert torch.allclose(latents, latents[:1].expand_as(latents), atol=1e-6)
    assert not torch.allclose(moving, moving[:1].expand_as(moving), atol=1e-4)
    with pytest.raises(ValueError, match="keypoint_features"):
        LAMConfig.preset("tiny", keypoint_features="positions")
