"""The adaptive warm-up ends only when the loss has flattened and the codebook is healthy, and says why."""

import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_train.loop import _AdaptiveWarmup
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


def _feed(losses: list[float], codes: torch.Tensor) -> tuple[int | None, list[dict]]:
    adaptive = _AdaptiveWarmup(tiny_config(warmup=WARMUP), "warmup")
    events = Events()
    session = SimpleNamespace(log=events)
    models = SimpleNamespace(lam=SimpleNamespace(config=SimpleNamespace(num_codes=8)))
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


def test_disabled_outside_adaptive_warmup() -> None:
    adaptive = _AdaptiveWarmup(tiny_config(warmup=WARMUP), "joint")
    assert not adaptive.should_stop(20, None, 2, 19)
