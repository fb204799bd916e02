"""Every numeric config field has a checked range; the whole config (model configs too) fails at load time."""

import pytest
from cola_train.config import load_config


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.grad_clip=0", r"optim\.grad_clip must be in \(0, inf\)"),
        ("optim.grad_clip=-1", r"optim\.grad_clip must be in"),
        ("optim.lr_dit=1e38", r"optim\.lr_dit must be in \(0, 1e\+30\]"),
        ("optim.lr_lam=nan", r"optim\.lr_lam must be in"),
        ("optim.betas=[0.9, 1.5]", r"optim\.betas\[1\] must be in \[0, 1\)"),
        ("optim.weight_decay=-0.1", r"optim\.weight_decay must be in"),
        ("optim.warmup_steps=-5", r"optim\.warmup_steps must be in"),
        ("train.keep_checkpoints=0", r"train\.keep_checkpoints must be in \[1, inf\)"),
        ("data.frame_skip=0", r"data\.frame_skip must be in"),
        ("seed=-1", r"seed must be in"),
        ("warmup.adaptive_window=0", r"warmup\.adaptive_window must be in"),
        ("joint.steps=-1", r"joint\.steps must be in"),
        ("train.device='gpu'", r"train\.device must be 'auto', 'cpu', 'cuda'"),
        ("model.lam.width=3", r"LAMConfig\.width"),
        ("model.lam.widht=3", r"unknown config key model\.lam\.'widht'.*did you mean 'width'"),
    ],
)
def test_out_of_range_fields_are_errors(override: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_config(overrides=[override])


def test_in_range_edges_are_accepted() -> None:
    config = load_config(overrides=["optim.grad_clip=inf", "optim.lr_dit=1e30", "train.device='cuda:1'"])
    assert config.optim.grad_clip == float("inf")
