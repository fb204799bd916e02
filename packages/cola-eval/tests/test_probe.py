import pytest
import torch
from cola_eval.probe import fit_linear_probe, regression_scores


def test_probe_recovers_a_planted_linear_map():
    g = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(6, 3, generator=g), torch.randn(3, generator=g)
    x_train, x_test = torch.randn(500, 6, generator=g), torch.randn(200, 6, generator=g)
    probe = fit_linear_probe(x_train, x_train @ weight + bias, ridge=0.0)
    assert torch.allclose(probe.weight.float(), weight, atol=1e-5)
    assert torch.allclose(probe.bias.float(), bias, atol=1e-5)
    scores = regression_scores(probe.predict(x_test), x_test @ weight + bias)
    assert scores["r2"] == pytest.approx(1.0, abs=1e-8)
    assert scores["mse"] == pytest.approx(0.0, abs=1e-8)


def test_probe_on_noisy_targets_scores_below_one_and_one_hot_features_work():
    g = torch.Generator().manual_seed(1)
    codes = torch.randint(0, 5, (400,), generator=g)
    table = torch.randn(5, 2, generator=g)
    targets = table[codes] + 0.3 * torch.randn(400, 2, generator=g)
    one_hot = torch.nn.functional.one_hot(codes, 5).double()
    probe = fit_linear_probe(one_hot[:300], targets[:300], ridge=0.0)  # collinear with the bias: lstsq copes
    scores = regression_scores(probe.predict(one_hot[300:]), targets[300:])
    assert 0.5 < scores["r2"] < 1.0


def test_probe_rejects_bad_shapes():
    with pytest.raises(ValueError, match="features"):
        fit_linear_probe(torch.zeros(5, 2), torch.zeros(4, 1))
    with pytest.raises(ValueError, match="ridge"):
        fit_linear_probe(torch.zeros(5, 2), torch.zeros(5, 1), ridge=-1)


def _lam():
    from cola_lam import LAMConfig, LatentActionModel

    torch.manual_seed(0)
    config = LAMConfig(frame_size=16, patch_size=8, width=32, depth=1, heads=2, num_codes=8, code_dim=8)
    return LatentActionModel(config).eval()


def _clips_with_states(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "video": torch.rand(4, 3, 16, 16, generator=g) * 2 - 1,
            "actions": torch.rand(4, 4, generator=g),
            "states": torch.rand(4, 5, generator=g) * 512,
        }
        for _ in range(n)
    ]


def test_evenly_spaced_spreads_over_the_whole_set_and_keeps_small_sets_whole():
    from cola_eval.probe import EvenlySpaced

    items = list(range(100))
    spread = EvenlySpaced(items, 4)
    assert [spread[i] for i in range(len(spread))] == [0, 25, 50, 75]
    assert list(EvenlySpaced(items[:3], 10)) == [0, 1, 2]
    with pytest.raises(IndexError):
        spread[4]
    with pytest.raises(ValueError, match="probe-clips"):
        EvenlySpaced(items, 0)


def test_the_state_change_target_is_the_state_after_minus_the_state_before():
    from cola_eval.probe import latent_action_features, probe_latent_actions

    clips = _clips_with_states(3, seed=0)
    features = latent_action_features(_lam(), clips, batch_size=2)
    expected = torch.cat([clip["states"][1:] - clip["states"][:-1] for clip in clips])
    assert torch.allclose(features["state_change"], expected)
    held_out = _clips_with_states(2, seed=1)
    result = probe_latent_actions(
        _lam(), clips, held_out, batch_size=2, target="state_change", action_columns=[0, 1]
    )
    assert result["embedding"]["n_test"] == 2 * 3


def test_the_state_change_target_needs_states_and_a_known_target():
    from cola_eval.probe import probe_latent_actions

    clips = _clips_with_states(2, seed=0)
    no_states = [{key: value for key, value in clip.items() if key != "states"} for clip in clips]
    with pytest.raises(ValueError, match="needs clips with 'states'"):
        probe_latent_actions(_lam(), no_states, no_states, target="state_change")
    with pytest.raises(ValueError, match="probe target"):
        probe_latent_actions(_lam(), no_states, no_states, target="positions")
