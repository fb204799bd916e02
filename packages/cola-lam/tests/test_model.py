import json
import os
import subprocess
import sys

import pytest
import torch
from cola_lam import InverseDynamicsModel, LAMConfig, LAMDecoder, LatentActionModel, reconstruction_loss

SMALL = {"width": 32, "depth": 2, "heads": 2, "decoder_depth": 1, "frame_size": 32, "restart_buffer_size": 64}


@pytest.fixture
def config():
    return LAMConfig.preset("tiny", **SMALL)


def video(batch=2, frames=4, size=32, seed=0):
    return torch.rand(batch, frames, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_presets():
    tiny, base = LAMConfig.preset("tiny"), LAMConfig.preset("base")
    assert (tiny.tokens_per_action, tiny.code_dim, tiny.num_codes, tiny.beta) == (2, 32, 32, 0.25)
    assert tiny.action_dim == 64 and tiny.frame_size == 64
    assert (base.depth, base.width, base.heads) == (12, 768, 12)
    tiny_params = sum(p.numel() for p in InverseDynamicsModel(tiny).parameters())
    assert 0.5e6 < tiny_params < 2e6
    assert LAMConfig.preset("tiny", num_codes=64).num_codes == 64


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"patch_size": 7}, "multiple of"),
        ({"heads": 3}, "divisible"),
        ({"num_codes": 0}, "positive integer"),
        ({"ema_decay": 1.5}, "ema_decay"),
        ({"dead_code_steps": -1}, "dead_code_steps"),
        ({"bogus": 1}, "Unknown LAMConfig fields"),
        ({"variance_floor": -0.1}, "variance_floor"),
        ({"variance_floor": float("nan")}, "variance_floor"),
        ({"idm_input": "diff"}, "idm_input"),
        ({"idm_readout": "mean"}, "idm_readout"),
        ({"decorrelation_weight": -1.0}, "decorrelation_weight"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LAMConfig.preset("tiny", **kwargs)
    with pytest.raises(ValueError, match="Unknown LAMConfig preset"):
        LAMConfig.preset("huge")


def test_encode_shapes(config):
    lam = LatentActionModel(config)
    out = lam.encode(video(batch=3, frames=5))
    assert out.quantized.shape == (3, 4, 2, 32)
    assert out.indices.shape == (3, 4, 2) and out.indices.dtype == torch.int64
    assert ((out.indices >= 0) & (out.indices < config.num_codes)).all()
    assert out.loss.dim() == 0 and out.usage.shape == (config.num_codes,) and out.usage.sum() == 24
    assert out.quantized.flatten(-2).shape[-1] == config.action_dim
    assert torch.allclose(lam.embed(out.indices), out.quantized, atol=1e-5)


def test_straight_through_gradients_reach_the_idm(config):
    lam = LatentActionModel(config)
    out = lam(video())
    out.quantized.square().sum().backward()  # no VQ loss: only the straight-through path
    for name, param in lam.idm.named_parameters():
        if name in ("blocks.0.spatial_attn.qkv.weight", "patch_embed.weight", "head.weight"):
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert lam.quantizer.codebook.grad is None  # the codebook learns from the VQ loss only


def test_latent_actions_do_not_see_the_future(config):
    torch.manual_seed(0)  # an unseeded IDM once changed its later outputs by only ~4e-4
    idm = InverseDynamicsModel(config).eval()
    clip = video(frames=5)
    changed = clip.clone()
    changed[:, 3:] = -clip[:, 3:]
    with torch.no_grad():
        before, after = idm(clip), idm(changed)
    # transitions (0,1) and (1,2) only see frames 0..2
    assert torch.allclose(before[:, :2], after[:, :2], atol=1e-5)
    # later transitions do see the changed frames: far above the 1e-5 float noise allowed above
    assert (before[:, 2:] - after[:, 2:]).abs().max() > 1e-3


def test_a_latent_action_depends_on_its_frame_pair_only(config):
    # Not on earlier frames and not on where the pair sits in the clip: a code cannot name a clip position.
    torch.manual_seed(0)
    idm = InverseDynamicsModel(config).eval()
    clip = video(frames=5)
    shifted = torch.cat([clip[:, 2:4], clip[:, :2], clip[:, 4:]], dim=1)  # pair (2, 3) moved to the front
    with torch.no_grad():
        full, moved, alone = idm(clip), idm(shifted), idm(clip[:, 2:4])
    assert torch.allclose(full[:, 2], moved[:, 0], atol=1e-5)
    assert torch.allclose(full[:, 2], alone[:, 0], atol=1e-5)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.zeros(4, 3, 32, 32), "rank 5"),
        (torch.zeros(2, 1, 3, 32, 32), "T >= 2"),
        (torch.zeros(2, 4, 3, 32, 32, dtype=torch.uint8), "float tensor"),
        (torch.full((2, 4, 3, 32, 32), float("nan")), "NaN"),
        (torch.zeros(2, 4, 3, 16, 16), r"\[C, H, W\] = \[3, 32, 32\]"),
    ],
)
def test_bad_video_raises(config, bad, message):
    with pytest.raises(ValueError, match=message):
        LatentActionModel(config).encode(bad)


def test_embed_checks_indices(config):
    lam = LatentActionModel(config)
    assert lam.embed(torch.zeros(5, 3, 2, dtype=torch.long)).shape == (5, 3, 2, 32)
    with pytest.raises(ValueError, match="tokens_per_action"):
        lam.embed(torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        lam.embed(torch.full((1, 2), 32))


def test_decoder_starts_as_copy_and_checks_shapes(config):
    decoder = LAMDecoder(config)
    frame = video(batch=3, frames=1)[:, 0]
    action = torch.randn(3, 2, 32)
    assert torch.equal(decoder(frame, action), frame)
    reconstruction_loss(decoder(frame, action), frame.flip(0)).backward()
    assert decoder.head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="action must have shape"):
        decoder(frame, torch.randn(3, 64))
    with pytest.raises(ValueError, match="frame must have shape"):
        decoder(frame[None], action)
    with pytest.raises(ValueError, match="same shape"):
        reconstruction_loss(frame, frame[:1])


def test_hub_round_trip(config, tmp_path):
    torch.manual_seed(0)
    lam = LatentActionModel(config)
    lam(video())  # training-mode step: fills the restart buffers, which must survive the round trip
    lam.eval()
    lam.save_pretrained(tmp_path / "lam")
    files = sorted(p.name for p in (tmp_path / "lam").iterdir())
    assert "model.safetensors" in files and "config.json" in files
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl")) for name in files)
    assert json.loads((tmp_path / "lam" / "config.json").read_text())["width"] == 32

    loaded = LatentActionModel.from_pretrained(tmp_path / "lam").eval()
    assert loaded.config == config
    clip = video(seed=1)
    with torch.no_grad():
        a, b = lam(clip), loaded(clip)
    assert torch.equal(a.indices, b.indices) and torch.allclose(a.quantized, b.quantized)
    for key, value in lam.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key

    decoder = LAMDecoder(config)
    decoder.save_pretrained(tmp_path / "decoder")
    assert LAMDecoder.from_pretrained(tmp_path / "decoder").config == config


def test_from_pretrained_offline_from_hub_cache(config, tmp_path):
    repo = tmp_path / "hub" / "models--cola--lam-test"
    snapshot = repo / "snapshots" / ("0" * 40)
    LatentActionModel(config).save_pretrained(snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    script = (
        "from cola_lam import LatentActionModel\n"
        "lam = LatentActionModel.from_pretrained('cola/lam-test')\n"
        "print(lam.config.width)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub"), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "32"
