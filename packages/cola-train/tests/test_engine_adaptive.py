"""The adaptive warm-up ends only when the loss has flattened and the codebook is healthy (its index counts
and its geometry), and says why."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from cola_lam import VectorQuantizer

sys.path.insert(0, str(Path(__file__).parent))
from cola_train.adaptive_warmup import AdaptiveWarmup
from cola_train.distributed import DistContext
from engine_helpers import tiny_config

WARMUP = {
    "steps": 100,
    "adaptive": True,
    "adaptive_min_steps": 20,
    "adaptive_window": 10,
    "adaptive_min_improvement": 0.05,
}


class Events:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def event(self, record: dict, message: str, level: int = 0) -> None:
        self.records.append({**record, "message": message})


def _quantizer(latents: torch.Tensor) -> VectorQuantizer:
    """A quantizer after one training step on ``latents``: codes k-means-placed on them, buffer filled."""
    quantizer = VectorQuantizer(num_codes=8, code_dim=latents.shape[1], restart_buffer_size=latents.shape[0])
    quantizer.train()(latents)
    return quantizer


SPREAD = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))


def _feed(
    losses: list[float], codes: torch.Tensor, latents: torch.Tensor = SPREAD
) -> tuple[int | None, list[dict]]:
    adaptive = AdaptiveWarmup(tiny_config(warmup=WARMUP), "warmup")
    events = Events()
    lam = SimpleNamespace(config=SimpleNamespace(num_codes=8), quantizer=_quantizer(latents))
    models = SimpleNamespace(lam=lam)
    session = SimpleNamespace(log=events, models=models, context=DistContext(0, 1, 0, torch.device("cpu")))
    for step, loss in enumerate(losses):
        adaptive.add(loss, codes, models)
        if adaptive.should_stop(step + 1, session, 1, step):
            return step + 1, events.records
    return None, events.records


def test_stops_when_flat_and_healthy() -> None:
    stopped, events = _feed([1.0] * 60, torch.arange(8).repeat(4))
    assert stopped == 20
    assert events[-1]["stop"] and "codebook is healthy" in events[-1]["message"]


def test_continues_while_the_loss_falls() -> None:
    stopped, events = _feed([1.0 / (1 + 0.2 * i) for i in range(40)], torch.arange(8).repeat(4))
    assert stopped is None and len(events) == 3 and not any(e["stop"] for e in events)


def test_continues_while_the_codebook_is_collapsed() -> None:
    stopped, events = _feed([1.0] * 40, torch.zeros(32, dtype=torch.long))
    assert stopped is None
    assert "max_share" in events[-1]["message"]


def test_continues_while_the_idm_outputs_are_collapsed() -> None:
    # Every code in use, but every input gives the same vector (+ 3e-4 noise): only the geometry sees it.
    collapsed = torch.ones(4) / 2 + 3e-4 * torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    stopped, events = _feed([1.0] * 40, torch.arange(8).repeat(4), latents=collapsed)
    assert stopped is None and not any(e["stop"] for e in events)
    assert events[-1]["latent_spread"] < 0.01 and events[-1]["code_spread"] < 0.01
    assert "latent_spread" in events[-1]["message"] and "code_spread" in events[-1]["message"]
    _, healthy = _feed([1.0] * 40, torch.arange(8).repeat(4))
    assert healthy[-1]["stop"] and healthy[-1]["latent_spread"] > 0.5 and healthy[-1]["code_spread"] > 0.1


def test_disabled_outside_adaptive_warmup() -> None:
    adaptive = AdaptiveWarmup(tiny_config(warmup=WARMUP), "joint")
    assert not adaptive.should_stop(20, None, 2, 19)
