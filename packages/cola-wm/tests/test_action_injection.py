"""Per-token action injection (DINO-WM style) beside the paper's AdaLN path."""

import pytest
import torch
from cola_wm import ActionConditionedDiT
from cola_wm_test_helpers import pretrained_like, random_video, small_config


@pytest.mark.parametrize("injection", ["token", "both"])
def test_fresh_token_path_leaves_the_pretrained_model_unchanged(injection):
    config = small_config(action_injection=injection)
    model = pretrained_like(config)
    x, t = random_video(2, config), torch.rand(2)
    actions = torch.randn(2, config.num_frames - 1, config.action_dim) * 10
    with torch.no_grad():
        assert torch.equal(model(x, t, actions, num_context=1), model(x, t, None, num_context=1))


@pytest.mark.parametrize("injection", ["adaln", "token", "both"])
def test_each_injection_learns_to_change_the_output_and_stays_causal(injection):
    config = small_config(action_injection=injection)
    model = pretrained_like(config)
    x, t = random_video(1, config), torch.rand(1)
    actions = torch.randn(1, config.num_frames - 1, config.action_dim)
    optimizer = torch.optim.SGD(model.action_parameters(), lr=0.5)
    (model(x, t, actions) - 1).pow(2).mean().backward()
    optimizer.step()
    with torch.no_grad():
        base = model(x, t, actions)
        assert not torch.allclose(base, model(x, t, None))
        later = actions.clone()
        later[:, 1] += 1.0  # transition 1 leads into frame 2: frames 0 and 1 must not see it
        changed = model(x, t, later)
    assert torch.allclose(changed[:, :2], base[:, :2], atol=1e-6)
    assert not torch.allclose(changed[:, 2:], base[:, 2:])


def test_token_only_model_has_no_adaln_action_head_and_round_trips(tmp_path):
    config = small_config(action_injection="token")
    model = ActionConditionedDiT(config)
    names = set(model.state_dict())
    assert not any("to_modulation" in name for name in names)
    assert any("to_tokens" in name for name in names)
    model.save_pretrained(tmp_path / "wm")
    loaded = ActionConditionedDiT.from_pretrained(tmp_path / "wm")
    assert loaded.config.action_injection == "token"


def test_unknown_injection_is_a_clear_error():
    with pytest.raises(ValueError, match="action_injection"):
        small_config(action_injection="cross_attention")
