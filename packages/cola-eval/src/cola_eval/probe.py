"""Linear probes: how linearly the real actions can be read off the latent actions.

A ridge regression (closed form, float64) from latent-action features to the real action of each transition,
fitted on train-episode clips and scored on held-out ones. Two feature views: the quantized embeddings
(tokens_per_action x code_dim, flattened) and the one-hot codes (tokens_per_action x num_codes). Two targets:
the real action that starts each transition (``"actions"``) or the change of the state across it
(``"state_change"``: for PushT, columns 0 and 1 are the agent's displacement, which under a frame skip sums
several actions).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cola_eval.batches import clip_batches

PROBE_TARGETS = ("actions", "state_change")


@dataclass
class LinearProbe:
    weight: torch.Tensor  # [D, A]
    bias: torch.Tensor  # [A]

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        return features.double() @ self.weight + self.bias


def fit_linear_probe(features: torch.Tensor, targets: torch.Tensor, ridge: float = 1e-3) -> LinearProbe:
    """Least squares (ridge >= 0 on the weights, never on the bias) from features [N, D] to targets [N, A]."""
    if features.dim() != 2 or targets.dim() != 2 or features.shape[0] != targets.shape[0]:
        raise ValueError(
            f"fit_linear_probe: expected features [N, D] and targets [N, A], got "
            f"{tuple(features.shape)} and {tuple(targets.shape)}"
        )
    if features.shape[0] < 2:
        raise ValueError(f"fit_linear_probe: need at least 2 samples, got {features.shape[0]}")
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    x, y = features.double(), targets.double()
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc, yc = x - x_mean, y - y_mean
    gram = xc.T @ xc + ridge * torch.eye(x.shape[1], dtype=x.dtype)
    # lstsq handles a singular Gram matrix (ridge 0 with collinear features, e.g. one-hot codes).
    weight = torch.linalg.lstsq(gram, xc.T @ yc).solution
    return LinearProbe(weight=weight, bias=y_mean - x_mean @ weight)


def regression_scores(pred: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """MSE and R^2 averaged uniformly over target dimensions (a constant dimension scores 1 if predicted
    exactly, else 0, as scikit-learn's r2_score does)."""
    pred, targets = pred.double(), targets.double()
    ss_res = (targets - pred).pow(2).sum(0)
    ss_tot = (targets - targets.mean(0)).pow(2).sum(0)
    r2 = torch.where(
        ss_tot > 0, 1 - ss_res / ss_tot.clamp_min(1e-300), torch.where(ss_res <= 1e-12, 1.0, 0.0).double()
    )
    return {"r2": float(r2.mean()), "mse": float((targets - pred).pow(2).mean())}


class EvenlySpaced(Sequence):
    """``count`` items of ``dataset`` spread evenly over it (all of them when it has no more), so a probe
    fitted on a few hundred clips sees every episode instead of the first few."""

    def __init__(self, dataset: Sequence[Any], count: int) -> None:
        if count < 1:
            raise ValueError(f"EvenlySpaced needs count >= 1 (the probe's --probe-clips), got {count}")
        self.dataset, self.count = dataset, min(count, len(dataset))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        if not 0 <= index < self.count:
            raise IndexError(f"item {index} out of range for {self.count} items")
        return self.dataset[index * len(self.dataset) // self.count]


@torch.no_grad()
def latent_action_features(
    lam: Any,
    dataset: Sequence[dict[str, Any]],
    batch_size: int = 16,
    max_clips: int | None = None,
    what: str = "probe",
) -> dict[str, torch.Tensor]:
    """Per transition: embeddings [N, tokens*code_dim], one-hot codes [N, tokens*num_codes], real actions
    [N, A] and, where the clips carry states, the state change [N, S]."""
    device = next(lam.parameters()).device
    num_codes = lam.config.num_codes
    columns: dict[str, list[torch.Tensor]] = {key: [] for key in ("embedding", "one_hot", *PROBE_TARGETS)}
    for batch in clip_batches(dataset, batch_size, max_clips, what):
        out = lam.encode(batch["video"].to(device))
        columns["embedding"].append(out.quantized.flatten(2).flatten(0, 1).cpu())
        columns["one_hot"].append(F.one_hot(out.indices, num_codes).flatten(2).flatten(0, 1).double().cpu())
        # Transition i is caused by action i.
        columns["actions"].append(batch["actions"][:, :-1].flatten(0, 1))
        if "states" in batch:
            states = batch["states"].float()
            columns["state_change"].append((states[:, 1:] - states[:, :-1]).flatten(0, 1))
    return {key: torch.cat(values) for key, values in columns.items() if values}


def probe_latent_actions(
    lam: Any,
    train_set: Sequence[dict[str, Any]],
    test_set: Sequence[dict[str, Any]],
    ridge: float = 1e-3,
    batch_size: int = 16,
    max_clips: int | None = None,
    action_columns: Sequence[int] | None = None,
    target: str = "actions",
) -> dict[str, dict[str, float]]:
    """Fit on train episodes, score on held-out ones, for both feature views; entries carry their counts.
    The LAM's features of both sets, then :func:`score_probe` (call those two yourself to probe several
    targets on one encoding)."""
    if target not in PROBE_TARGETS:
        raise ValueError(f"probe target must be one of {PROBE_TARGETS}, got {target!r}")
    train = latent_action_features(lam, train_set, batch_size, max_clips, "probe train")
    test = latent_action_features(lam, test_set, batch_size, max_clips, "probe test")
    return score_probe(train, test, target, action_columns, ridge)


def score_probe(
    train: dict[str, torch.Tensor],
    test: dict[str, torch.Tensor],
    target: str = "actions",
    action_columns: Sequence[int] | None = None,
    ridge: float = 1e-3,
) -> dict[str, dict[str, float]]:
    """A ridge probe fitted on ``train`` and scored on ``test`` (both from :func:`latent_action_features`),
    for both feature views; entries carry their counts.

    ``target``: ``"actions"`` (the real action starting each transition) or ``"state_change"`` (the state
    after the transition minus the state before it). ``action_columns`` picks the columns of the target to
    predict (all by default). A latent action names a change between two frames, so for PushT the relative
    action columns (delta_x, delta_y: 2, 3) or the agent's displacement (state change 0, 1) are the ones it
    can explain; the absolute target position also depends on where the agent already is."""
    if target not in PROBE_TARGETS:
        raise ValueError(f"probe target must be one of {PROBE_TARGETS}, got {target!r}")
    if target not in train or target not in test:
        raise ValueError(f"probe target {target!r} needs clips with 'states'; these clips have none")
    width = train[target].shape[-1]
    columns = list(range(width)) if action_columns is None else [int(c) for c in action_columns]
    bad = [c for c in columns if not 0 <= c < width]
    if bad or not columns:
        raise ValueError(
            f"probe action_columns {columns} must be a non-empty list of columns in [0, {width}) "
            f"(the dataset's {'real actions' if target == 'actions' else 'states'})"
        )
    train_targets, test_targets = train[target][:, columns], test[target][:, columns]
    results = {}
    for view in ("embedding", "one_hot"):
        probe = fit_linear_probe(train[view], train_targets, ridge)
        scores = regression_scores(probe.predict(test[view]), test_targets)
        results[view] = {
            **scores,
            "n_train": int(train_targets.shape[0]),
            "n_test": int(test_targets.shape[0]),
        }
    return results
