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
