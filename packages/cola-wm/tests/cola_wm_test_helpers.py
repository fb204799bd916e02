"""Small configurations and models shared by the tests."""

import torch
from cola_wm import ActionConditionedDiT, DiTConfig


def small_config(**overrides) -> DiTConfig:
    fields = dict(
        frame_size=16,
        channels=3,
        patch_size=4,
        num_frames=4,
        width=32,
        depth=2,
        heads=2,
        action_dim=6,
        action_width=16,
        action_depth=1,
        action_heads=2,
    )
    fields.update(overrides)
    return DiTConfig(**fields)


def pretrained_like(config: DiTConfig, seed: int = 0) -> ActionConditionedDiT:
    """A model whose backbone is perturbed away from AdaLN-Zero's identity start, standing in for a trained
    video generator; the action conditioner keeps its fresh (zero-output) initialisation."""
    torch.manual_seed(seed)
    model = ActionConditionedDiT(config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in model.backbone_parameters():
            param.add_(torch.randn(param.shape, generator=generator) * 0.05)
    return model.eval()


def random_video(batch: int, config: DiTConfig, frames: int | None = None, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, frames or config.num_frames, config.channels, config.frame_size, config.frame_size)
    return torch.rand(shape, generator=generator) * 2 - 1
