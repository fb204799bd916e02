import math

import pytest
import torch
from cola_lam import CodebookStats, codebook_stats, collapse_warnings


def test_uniform_usage():
    stats = codebook_stats(torch.arange(32).repeat(5), num_codes=32)
    assert stats.utilization == 1.0
    assert stats.entropy == pytest.approx(math.log(32))
    assert stats.perplexity == pytest.approx(32)
    assert stats.max_share == pytest.approx(1 / 32)
    assert collapse_warnings(stats) == []


def test_single_code_is_collapse():
    stats = codebook_stats(torch.full((7, 3), 4), num_codes=32)
    assert stats.max_share == 1.0
    assert stats.utilization == 1 / 32
    assert stats.entropy == 0.0
    assert stats.perplexity == 1.0
    warnings = collapse_warnings(stats)
    assert len(warnings) == 3
    assert any("utilization" in w for w in warnings)
    assert any("max_share" in w for w in warnings)
    assert any("entropy" in w for w in warnings)


def test_known_skewed_distribution():
    # three codes with shares 1/2, 1/4, 1/4 out of 8
    stats = codebook_stats(torch.tensor([0, 0, 1, 2]), num_codes=8)
    expected_entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert stats.utilization == pytest.approx(3 / 8)
    assert stats.entropy == pytest.approx(expected_entropy)
    assert stats.perplexity == pytest.approx(math.exp(expected_entropy))
    assert stats.max_share == pytest.approx(0.5)
    assert collapse_warnings(stats) == []


def test_each_warning_alone():
    assert len(collapse_warnings(CodebookStats(0.1, 8.0, 2.0, 0.2))) == 1
    assert len(collapse_warnings(CodebookStats(0.5, 8.0, 2.0, 0.6))) == 1
    assert len(collapse_warnings(CodebookStats(0.5, 2.0, 0.9, 0.2))) == 1


def test_from_counts_matches_indices():
    indices = torch.randint(0, 16, (500,))
    assert CodebookStats.from_counts(torch.bincount(indices, minlength=16)) == codebook_stats(indices, 16)


@pytest.mark.parametrize(
    ("indices", "num_codes", "message"),
    [
        (torch.tensor([0, 1, 32]), 32, r"\[0, 32\)"),
        (torch.tensor([-1, 0]), 32, r"\[0, 32\)"),
        (torch.tensor([0.0, 1.0]), 32, "integer"),
        (torch.tensor([], dtype=torch.long), 32, "empty"),
        (torch.tensor([0]), 0, "num_codes"),
    ],
)
def test_bad_input_raises(indices, num_codes, message):
    with pytest.raises(ValueError, match=message):
        codebook_stats(indices, num_codes)
