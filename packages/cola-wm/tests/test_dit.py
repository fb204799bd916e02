"""ActionConditionedDiT: shapes, zero-init action conditioning, causality, checkpoints, input validation."""

from dataclasses import replace

import pytest
import torch
from cola_wm import ActionConditionedDiT, DiTConfig, predict_velocity, sample
from cola_wm_test_helpers import pretrained_like, random_video, small_config
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

CONFIG = small_config()


@pytest.fixture(scope="module")
def model() -> ActionConditionedDiT:
    return pretrained_like(CONFIG)


def test_presets():
    tiny = DiTConfig.preset("tiny")
    assert (tiny.frame_size, tiny.channels, tiny.patch_size, tiny.num_frames) == (64, 3, 8, 8)
    assert (tiny.action_dim, tiny.action_dropout) == (64, 0.1)
    base = DiTConfig.preset("base", action_dim=16)
    assert (base.width, base.depth, base.heads, base.action_dim) == (1152, 28, 16, 16)
    with torch.device("meta"):
        params = sum(p.numel() for p in ActionConditionedDiT(tiny).backbone_parameters())
    assert 1.5e6 < params < 2.0e6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"patch_size": 5},
        {"width": 30},
        {"heads": 0},
        {"action_dropout": 1.0},
        {"num_frames": -1},
        {"guidance_scale": -1.0},
        {"guidance_scale": float("nan")},
        {"guidance_scale": "4"},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="DiTConfig"):
        small_config(**kwargs)


def test_unknown_preset_or_field_raises():
    with pytest.raises(ValueError, match="preset"):
        DiTConfig.preset("huge")
    with pytest.raises(ValueError, match="no fields"):
        DiTConfig.preset("tiny", widht=3)


def test_forward_shape_and_velocity_for_every_frame(model):
    x = random_video(2, CONFIG)
    actions = torch.randn(2, CONFIG.num_frames - 1, CONFIG.action_dim)
    out = predict_velocity(model, x, torch.rand(2), actions, num_context=1)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.abs().sum() > 0
    shorter = predict_velocity(model, x[:, :2], torch.rand(2))
    assert shorter.shape == x[:, :2].shape


def test_fresh_model_predicts_its_starting_frame():
    """AdaLN-Zero: a fresh model's last layer outputs zero. Without context it predicts x0 = 0 (velocity
    x_t / t); with context ("residual") it predicts the last context frame, so sampling copies that frame;
    with velocity prediction it is the zero velocity field."""
    x, t = random_video(1, CONFIG), torch.rand(1)
    time = t.clamp_min(CONFIG.min_flow_time)
    model = ActionConditionedDiT(CONFIG)
    assert torch.allclose(predict_velocity(model, x, t), x / time)
    with_context = predict_velocity(model, x, t, num_context=2)
    assert torch.allclose(with_context[:, 2:], (x[:, 2:] - x[:, 1:2]) / time, atol=1e-5)
    rollout = sample(model, x[:, :1], num_frames=3, steps=4, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(rollout, x[:, :1].expand(-1, 3, -1, -1, -1), atol=1e-5)
    velocity = replace(CONFIG, prediction="velocity")
    assert torch.equal(predict_velocity(ActionConditionedDiT(velocity), x, t), torch.zeros_like(x))


@pytest.mark.parametrize("prediction", ["x0", "residual"])
def test_clean_frame_prediction_turns_into_the_velocity(prediction):
    """At x_t = (1 - t) x0 + t eps the returned velocity (x_t - x0_hat) / t is eps - x0 when the predicted
    clean frame x0_hat (a constant here; plus the last context frame for "residual") is x0."""
    config = replace(CONFIG, prediction=prediction)
    model = ActionConditionedDiT(config)
    x0, noise, t = random_video(1, config), torch.randn(1, config.num_frames, 3, 16, 16), torch.tensor([0.6])
    x_t = torch.cat([x0[:, :1], ((1 - t) * x0 + t * noise)[:, 1:]], dim=1)
    with torch.no_grad():
        model.final_layer.linear.bias.fill_(0.25)
    x0_hat = 0.25 + (x0[:, :1] if prediction == "residual" else 0.0)
    velocity = predict_velocity(model, x_t, t, num_context=1)
    assert torch.allclose(velocity[:, 1:], (x_t[:, 1:] - x0_hat) / 0.6, atol=1e-5)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    magnitude=st.floats(1e-3, 1e3),
    num_context=st.integers(0, CONFIG.num_frames - 1),
)
def test_fresh_action_blocks_leave_output_unchanged(model, seed, magnitude, num_context):
    generator = torch.Generator().manual_seed(seed)
    x = random_video(2, CONFIG, seed=seed)
    t = torch.rand(2, generator=generator)
    actions = torch.randn(2, CONFIG.num_frames - 1, CONFIG.action_dim, generator=generator) * magnitude
    with torch.no_grad():
        without = model(x, t, None, num_context=num_context)
        with_actions = model(x, t, actions, num_context=num_context)
    assert torch.equal(with_actions, without)


def test_trained_action_blocks_change_output():
    model = pretrained_like(CONFIG)
    x, t = random_video(2, CONFIG), torch.rand(2)
    actions = torch.randn(2, CONFIG.num_frames - 1, CONFIG.action_dim)
    optimizer = torch.optim.SGD(model.action_parameters(), lr=0.1)
    (model(x, t, actions) - 1).pow(2).mean().backward()
    optimizer.step()
    assert not torch.allclose(model(x, t, actions), model(x, t, None))


def test_output_is_causal_in_frames_and_actions(model):
    """Frame i sees only frames <= i and actions < i (transition action i leads into frame i + 1)."""
    x, t = random_video(1, CONFIG), torch.rand(1)
    model = pretrained_like(CONFIG)
    with torch.no_grad():
        for param in model.action_parameters():
            param.add_(torch.randn_like(param) * 0.05)
    actions = torch.randn(1, CONFIG.num_frames - 1, CONFIG.action_dim)
    base = model(x, t, actions)
    later_frame = x.clone()
    later_frame[:, 2] = -later_frame[:, 2]
    changed = model(later_frame, t, actions)
    assert torch.equal(changed[:, :2], base[:, :2]) and not torch.allclose(changed[:, 2:], base[:, 2:])
    later_action = actions.clone()
    later_action[:, 1] += 1.0
    changed = model(x, t, later_action)
    assert torch.allclose(changed[:, :2], base[:, :2], atol=1e-6)
    assert not torch.allclose(changed[:, 2:], base[:, 2:])


def test_parameter_groups_partition_the_model(model):
    action = {id(p) for p in model.action_parameters()}
    backbone = {id(p) for p in model.backbone_parameters()}
    assert action and backbone and not action & backbone
    assert action | backbone == {id(p) for p in model.parameters()}
    assert id(model.action_conditioner.null_action) in action


def test_action_free_checkpoint_loads_with_fresh_action_blocks(tmp_path, model):
    path = tmp_path / "video_generator.safetensors"
    save_file(model.backbone_state_dict(), str(path))
    torch.manual_seed(7)
    world_model = ActionConditionedDiT(CONFIG)
    fresh_actions = {k: v.clone() for k, v in world_model.action_conditioner.state_dict().items()}
    fresh_left = world_model.load_backbone(path)
    assert fresh_left and all(k.startswith("action_conditioner.") for k in fresh_left)
    assert len(fresh_left) == len(list(world_model.action_parameters()))
    for key, value in world_model.action_conditioner.state_dict().items():
        assert torch.equal(value, fresh_actions[key])
    x, t = random_video(2, CONFIG), torch.rand(2)
    actions = torch.randn(2, CONFIG.num_frames - 1, CONFIG.action_dim)
    with torch.no_grad():
        assert torch.equal(world_model.eval()(x, t, actions, num_context=1), model(x, t, None, num_context=1))


def test_load_backbone_rejects_mismatched_checkpoints(tmp_path, model):
    state = model.backbone_state_dict()
    world_model = ActionConditionedDiT(CONFIG)
    with pytest.raises(ValueError, match="missing"):
        world_model.load_backbone({k: v for k, v in state.items() if not k.startswith("blocks.1.")})
    with pytest.raises(ValueError, match="shapes"):
        world_model.load_backbone({**state, "patch_embed.bias": torch.zeros(5)})
    with pytest.raises(ValueError, match="no checkpoint"):
        world_model.load_backbone(tmp_path / "nothing_here")


def test_hub_round_trip(tmp_path, model):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file() and (tmp_path / "config.json").is_file()
    loaded = ActionConditionedDiT.from_pretrained(tmp_path)
    assert loaded.config == CONFIG
    x, t = random_video(1, CONFIG), torch.rand(1)
    actions = torch.randn(1, CONFIG.num_frames - 1, CONFIG.action_dim)
    with torch.no_grad():
        assert torch.equal(loaded(x, t, actions), model(x, t, actions))


@pytest.mark.parametrize(
    ("x_shape", "t_shape", "actions_shape", "num_context", "match"),
    [
        ((2, 4, 3, 16, 8), (2,), None, 0, "x must be"),
        ((2, 4, 1, 16, 16), (2,), None, 0, "x must be"),
        ((2, 5, 3, 16, 16), (2,), None, 0, "num_frames"),
        ((2, 4, 3, 16, 16), (3,), None, 0, "t must be"),
        ((2, 4, 3, 16, 16), (2,), (2, 4, 6), 0, "T-1"),
        ((2, 4, 3, 16, 16), (2,), (2, 3, 5), 0, "action_dim"),
        ((2, 4, 3, 16, 16), (2,), None, 4, "num_context"),
        ((2, 4, 3, 16, 16), (2,), None, -1, "num_context"),
    ],
)
def test_bad_inputs_raise(model, x_shape, t_shape, actions_shape, num_context, match):
    actions = None if actions_shape is None else torch.zeros(actions_shape)
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(x_shape), torch.zeros(t_shape), actions, num_context=num_context)


def test_nan_inputs_raise(model):
    x = random_video(1, CONFIG)
    bad = x.clone()
    bad[0, 1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        model(bad, torch.rand(1))
    with pytest.raises(ValueError, match="finite"):
        model(x, torch.tensor([float("nan")]))
    actions = torch.zeros(1, CONFIG.num_frames - 1, CONFIG.action_dim)
    actions[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        model(x, torch.rand(1), actions)
