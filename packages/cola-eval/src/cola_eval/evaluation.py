"""The evaluation of one trained run, shared by `cola-eval report` and the reproduction.

:func:`evaluate_run` scores a run on an :class:`EvaluationData` (held-out and train clips, the metric
networks, optionally the planning pairs and readout) with a :class:`~cola_eval.report.ReportOptions`:
rollout PSNR/SSIM (+ LPIPS, FVD where their weights load), the controllability scores, adapter degradation,
codebook health, the linear probe and (``options.planning``) PushT planning. Each metric is
``{"value": number | None, "n": sample count}`` plus ``"unavailable": reason`` where it could not be computed;
nothing is estimated in place of a missing number.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from cola_train.data.pusht_layout import ACTION_NAMES, DELTA_COLUMNS

from cola_eval.bootstrap import contrast_intervals
from cola_eval.weights import WeightsUnavailable

if TYPE_CHECKING:
    from cola_eval.report import ReportOptions

logger = logging.getLogger("cola_eval")

FVD_MIN_FRAMES = 10
# The leading table of report.md / report.json: per source, these scores (metric keys "{source}/{score}").
CONTROLLABILITY_SCORES = {
    "psnr": "PSNR (dB)",
    "moving_psnr": "moving-pixel PSNR (dB)",
    "agent_error": "agent error (px)",
    "action_recovery": "action recovery (%)",
}
CONTROLLABILITY_CONTRASTS = {
    "delta_psnr": "delta-PSNR (dB)",
    "moving_delta_psnr": "moving-pixel delta-PSNR (dB)",
    "agent_error_ratio": "agent error inferred/shuffled",
}
CODEBOOK_SCORES = ("utilization", "perplexity", "entropy", "max_share", "distinct_actions")
CODEBOOK_GEOMETRY = ("latent_spread", "latent_rank", "code_spread")  # of the IDM's outputs, per token


def metric(
    value: float | None,
    n: int,
    unavailable: str | None = None,
    interval: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """A report entry: the value, its sample count, why it is missing, and where measured a 95% bootstrap
    interval over the evaluated clips (``ci95``)."""
    entry: dict[str, Any] = {"value": None if value is None else float(value), "n": int(n)}
    if unavailable is not None:
        entry["unavailable"] = unavailable
    if interval is not None:
        entry["ci95"] = [float(interval[0]), float(interval[1])]
    return entry


def device_of(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class MetricNetworks:
    """I3D and LPIPS, loaded once for all runs; each is either the network or the reason it is unavailable."""

    def __init__(self, options: ReportOptions, device: torch.device) -> None:
        from cola_eval.fvd import load_i3d
        from cola_eval.lpips import load_lpips

        self.i3d, self.i3d_reason = self._load(lambda: load_i3d(options.fvd_weights, device))
        self.lpips, self.lpips_reason = self._load(
            lambda: load_lpips(options.lpips_backbone, options.lpips_weights, device)
        )  # type: ignore[arg-type]

    @staticmethod
    def _load(loader: Any) -> tuple[Any, str | None]:
        try:
            return loader(), None
        except WeightsUnavailable as err:
            logger.warning("%s", err)
            return None, str(err)


@dataclass
class PlanningSetup:
    """What every planner of one evaluation shares: the config, the cost, its block-pose readout (trained on
    the train episodes) and the seeded start/goal pairs from the held-out episodes."""

    config: Any
    cost: str
    readout: Any
    pairs: list[Any]

    def plan(
        self, episodes: list[Any], model: Any, seed: int, cost: str | None = None, workers: int = 1
    ) -> dict[str, Any]:
        """``workers``: pairs planned at once in CPU processes (the oracle and the random policy only)."""
        from cola_eval.planning import evaluate_planning

        return evaluate_planning(
            episodes,
            model,
            cost=cost or self.cost,
            readout=self.readout,
            config=self.config,
            pairs=self.pairs,
            seed=seed,
            workers=workers,
        )


def planning_setup(held_out: Any, train: Any, options: ReportOptions, readout: Any = None) -> PlanningSetup:
    """The planning shared by every run evaluated on ``held_out``; ``readout`` skips training one. Each
    planned action lasts the clips' frame skip in env steps (one world-model transition)."""
    from cola_eval.planning import PlanningConfig, labelled_frames, make_pairs, train_readout

    skip = int(getattr(held_out, "frame_skip", 1))
    repeat = options.planning_config.get("action_repeat", skip)
    if repeat != skip:
        raise ValueError(
            f"planning_config.action_repeat is {repeat} but the world model's clips have frame skip {skip}: "
            "one planned action must last one transition; leave action_repeat unset (it follows the frame "
            "skip)."
        )
    config = PlanningConfig(**{**options.planning_config, "action_repeat": skip})
    if readout is None and options.planning_cost == "block_pose":
        readout = train_readout(
            *labelled_frames(train.episodes), steps=options.readout_steps, seed=options.seed
        )
    pairs = make_pairs(held_out.episodes, options.planning_pairs, config.goal_offset, options.seed)
    return PlanningSetup(config, options.planning_cost, readout, pairs)


@dataclass
class EvaluationData:
    """The clips a run is scored on (``options.split``) and trained on, and what all runs share."""

    held_out: Any
    train: Any
    frames: int
    networks: MetricNetworks
    planning: PlanningSetup | None = None


def clip_sets(episodes: list[Any], frames: int, frame_size: int | None, frame_skip: int, split: str) -> Any:
    """The held-out (``split``) and train clip sets of ``episodes``."""
    from cola_train.data import ClipDataset

    held_out = ClipDataset(episodes, frames, frame_skip=frame_skip, size=frame_size, split=split)
    train = ClipDataset(episodes, frames, frame_skip=frame_skip, size=frame_size, split="train")
    return held_out, train


def run_data(run: Any, options: ReportOptions, networks: MetricNetworks) -> EvaluationData:
    """The evaluation data of one run: its own dataset (or ``options.data``) at its frame size and skip."""
    from cola_train.data import load_episodes
    from cola_train.data.load import resolve_dataset

    data_cfg = run.config.get("data", {})
    # options.data, else the run's own dataset: a local path, or a Hub dataset id fetched into the Hub cache.
    source = options.data or run.dataset_path or data_cfg.get("path")
    try:
        path = resolve_dataset(source) if source else None
    except ValueError:
        path = None
    if path is None or not Path(path).exists():
        raise ValueError(
            f"the dataset of run {run.run_dir} ({data_cfg.get('path')!r}) is not available here; "
            "pass --data PATH to the dataset it was trained on"
        )
    episodes = load_episodes(path)
    if not episodes:
        raise ValueError(f"dataset {path} holds no episodes: the evaluation set is empty")
    frames = options.frames or run.clip_length or int(data_cfg.get("clip_length", 0))
    skip = int(data_cfg.get("frame_skip", 1))
    held_out, train = clip_sets(episodes, frames, data_cfg.get("frame_size"), skip, options.split)
    if len(held_out) == 0:
        raise ValueError(
            f"the {options.split} split of {path} yields no clips of {frames} frames: the "
            "evaluation set is empty"
        )
    planning = planning_setup(held_out, train, options) if options.planning else None
    return EvaluationData(held_out, train, frames, networks, planning)


@dataclass
class RunEvaluation:
    """The scores of one run. ``rollouts``, ``usage`` and the models stay in memory for the report's plots,
    videos and code atlas; everything else is what report.json and evaluation.json hold."""

    run_dir: str
    frames: int
    num_context: int
    sources: list[str]
    metrics: dict[str, dict[str, Any]]
    counts: dict[str, int]
    collapse_warnings: list[str]
    notes: list[str]
    planning: dict[str, Any] | None
    rollouts: Any = field(repr=False, default=None)
    usage: Any = field(repr=False, default=None)
    lam: Any = field(repr=False, default=None)
    wm: Any = field(repr=False, default=None)

    def values(self) -> dict[str, float | None]:
        """Metric key -> value (None where it could not be computed)."""
        return {key: entry["value"] for key, entry in self.metrics.items()}

    def unavailable(self) -> dict[str, str]:
        """Metric key -> why it has no value."""
        return {key: entry["unavailable"] for key, entry in self.metrics.items() if "unavailable" in entry}


def adapter_columns(options: ReportOptions, action_width: int) -> list[int]:
    if options.adapter_columns is not None:
        bad = [c for c in options.adapter_columns if not 0 <= c < action_width]
        if bad:
            raise ValueError(f"adapter columns {bad} are outside the dataset's {action_width} action columns")
        return list(options.adapter_columns)
    return list(DELTA_COLUMNS) if action_width == len(ACTION_NAMES) else list(range(action_width))


def evaluate_run(run: Any, data: EvaluationData, options: ReportOptions) -> RunEvaluation:
    """All metrics of one trained run (a ``cola_train.TrainedRun``) on ``data``."""
    from cola_eval.adapter import adapter_accuracy
    from cola_eval.rollout import check_compatible, evaluate_rollouts

    if run.lam is None:
        raise ValueError(
            f"run {run.run_dir} conditions its world model on real actions (model.actions = 'real'), so it "
            "has no LAM to report on; score such a ceiling with benchmarks/controllability_study.py, or "
            "report a latent-action run"
        )
    device = device_of(options.device)
    held_out, train = data.held_out, data.train
    lam, wm = run.lam.eval(), run.wm.eval()
    check_compatible(lam, wm, held_out[0]["video"].shape[1:])
    metrics: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    clips = min(len(held_out), options.max_clips)

    adapter = None
    sources = ["inferred", "random", "copy"]
    if clips >= 2:
        sources.insert(1, "shuffled")
    else:
        notes.append("rollouts: one clip only, so no 'shuffled' source (it takes another clip's actions)")
    columns = adapter_columns(options, held_out[0]["actions"].shape[-1])
    if options.adapter:
        adapter = fit_run_adapter(lam, train, options, columns)
        accuracy = adapter_accuracy(adapter, lam, [held_out[i] for i in range(clips)])
        metrics["adapter/accuracy"] = metric(accuracy, clips)
        adapter = adapter.to(device)
        sources.insert(1, "adapter")
    lam, wm = lam.to(device), wm.to(device)
    rollouts = evaluate_rollouts(
        wm,
        lam,
        held_out,
        sources=sources,
        adapter=adapter,
        num_context=options.num_context,
        steps=options.sampling_steps,
        guidance_scale=options.guidance_scale,
        batch_size=options.batch_size,
        max_clips=options.max_clips,
        seed=options.seed,
        lpips_model=data.networks.lpips,
    )
    summary = rollouts.summary()
    for source, scores in summary.items():
        metrics[f"{source}/psnr"] = metric(scores["psnr"], scores["n_frames"])
        metrics[f"{source}/ssim"] = metric(scores["ssim"], scores["n_frames"])
        metrics[f"{source}/lpips"] = (
            metric(scores["lpips"], scores["n_frames"])
            if "lpips" in scores
            else metric(None, 0, data.networks.lpips_reason)
        )
        metrics[f"{source}/fvd"] = _fvd(rollouts, source, scores["n_clips"], data, options.batch_size)
    metrics.update(_controllability_metrics(rollouts))
    if adapter is not None:
        metrics.update(_adapter_degradation(metrics))

    usage = codebook_usage_of(lam, held_out, options)
    health = usage.health()
    for key in CODEBOOK_SCORES:
        metrics[f"codebook/{key}"] = metric(health[key], health["n_transitions"])
    for key in CODEBOOK_GEOMETRY:
        metrics[f"codebook/{key}"] = metric(health[key], health["n_tokens"])
    notes += [f"codebook: {w}" for w in health["collapse_warnings"]]

    from cola_eval.controllability import has_pusht_agent_states
    from cola_eval.probe import EvenlySpaced, latent_action_features, score_probe

    # One encoding of the probe's clips serves every target.
    train_features, test_features = (
        latent_action_features(lam, EvenlySpaced(clips, options.probe_clips), options.batch_size, what=what)
        for clips, what in ((train, "probe train"), (held_out, "probe test"))
    )
    probes = {"probe": ("actions", columns)}
    if has_pusht_agent_states(held_out):
        # Under a frame skip a transition sums several actions; the agent's displacement is what moved.
        probes["probe/agent_displacement"] = ("state_change", [0, 1])
    for name, (target, target_columns) in probes.items():
        scored = score_probe(train_features, test_features, target, target_columns, options.probe_ridge)
        for view, scores in scored.items():
            metrics[f"{name}/{view}/r2"] = metric(scores["r2"], scores["n_test"])
            metrics[f"{name}/{view}/mse"] = metric(scores["mse"], scores["n_test"])

    planning = None
    if options.planning:
        planning = _world_model_planning(wm, adapter, data, options)
        metrics.update(planning_metrics("world_model", planning))
    inferred = summary["inferred"]
    return RunEvaluation(
        run_dir=str(run.run_dir),
        frames=data.frames,
        num_context=options.num_context,
        sources=sources,
        metrics=metrics,
        counts={
            "rollout_clips": inferred["n_clips"],
            "rollout_frames": inferred["n_frames"],
            "rollout_moving_frames": inferred["n_moving_frames"],
            "rollout_agent_frames": inferred["n_agent_frames"],
            "rollout_action_tokens": inferred["n_action_tokens"],
            "codebook_transitions": health["n_transitions"],
            "probe_test_transitions": int(test_features["embedding"].shape[0]),
            "planning_pairs": planning["num_pairs"] if planning else 0,
        },
        collapse_warnings=list(health["collapse_warnings"]),
        notes=notes,
        planning=planning,
        rollouts=rollouts,
        usage=usage,
        lam=lam,
        wm=wm,
    )


def fit_run_adapter(lam: Any, train: Any, options: ReportOptions, columns: list[int]) -> Any:
    """The action adapter of one run's LAM (real actions ``columns`` -> its codes); seeded, so every caller
    with the same options gets the same adapter. Call it while the LAM is on the CPU, where the labelling
    feeds it the train clips."""
    from cola_eval.adapter import train_adapter

    return train_adapter(
        lam,
        train,
        steps=options.adapter_steps,
        labelled_fraction=options.adapter_fraction,
        seed=options.seed,
        action_columns=columns,
    ).eval()


def plan_run(run: Any, data: EvaluationData, options: ReportOptions) -> dict[str, Any]:
    """PushT planning with one trained run's world model, driven through the action adapter that
    :func:`evaluate_run` fits (the same seed and options), on the data's shared pairs: a separate pass, so a
    planning result can be added to, or redone beside, an evaluation without rolling out again."""
    if run.lam is None:
        raise ValueError(
            f"run {run.run_dir} conditions its world model on real actions (model.actions = 'real'); the "
            "planner drives a latent-action world model through the action adapter"
        )
    lam = run.lam.eval()
    columns = adapter_columns(options, data.held_out[0]["actions"].shape[-1])
    adapter = fit_run_adapter(lam, data.train, options, columns).to(device_of(options.device))
    return _world_model_planning(run.wm.eval().to(device_of(options.device)), adapter, data, options)


def codebook_usage_of(lam: Any, held_out: Any, options: ReportOptions) -> Any:
    from cola_eval.codebook import codebook_usage

    return codebook_usage(lam, held_out, options.batch_size, options.max_clips)


def _fvd(rollouts: Any, source: str, n_clips: int, data: EvaluationData, batch_size: int) -> dict[str, Any]:
    from cola_eval.fvd import fvd
    from cola_eval.rollout import from_uint8

    if data.networks.i3d is None:
        return metric(None, 0, data.networks.i3d_reason)
    if data.frames < FVD_MIN_FRAMES:
        return metric(
            None, 0, f"clips of {data.frames} frames; I3D needs >= {FVD_MIN_FRAMES} (pass --frames 16)"
        )
    value = fvd(
        data.networks.i3d,
        from_uint8(rollouts.real_videos),
        from_uint8(rollouts.videos(source)),
        batch_size=batch_size,
    )
    return metric(value, n_clips)


def _adapter_degradation(metrics: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """How much worse the world model simulates driven by real actions through the adapter than by the IDM's
    own codes (the paper's FVD 74.65 -> 93.68 for CoLA vs 73.54 -> 115.45 for two-stage)."""
    out = {}
    inferred, adapted = metrics["inferred/psnr"], metrics["adapter/psnr"]
    out["adapter_degradation/psnr_db"] = metric(inferred["value"] - adapted["value"], inferred["n"])
    inferred, adapted = metrics["inferred/fvd"], metrics["adapter/fvd"]
    if inferred["value"] is None or adapted["value"] is None:
        reason = inferred.get("unavailable") or adapted.get("unavailable") or "no FVD"
        out["adapter_degradation/fvd"] = metric(None, 0, reason)
    else:
        out["adapter_degradation/fvd"] = metric(adapted["value"] - inferred["value"], inferred["n"])
    return out


def _world_model_planning(wm: Any, adapter: Any, data: EvaluationData, options: ReportOptions) -> dict:
    from cola_eval.planning import WorldModel

    if adapter is None:
        raise ValueError("planning drives the world model through the action adapter; do not disable it")
    if data.planning is None:
        raise ValueError(
            "options.planning needs the data's planning setup (cola_eval.evaluation.planning_setup)"
        )
    config = data.planning.config
    model = WorldModel(
        wm, adapter, euler_steps=config.euler_steps, seed=options.seed, guidance_scale=config.guidance_scale
    )
    return data.planning.plan(data.held_out.episodes, model, options.seed)


def planning_metrics(planner: str, result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One planner's success rates (and seconds per MPC step where it has a model to time) as metrics."""
    out = {
        f"planning/{planner}/success": metric(result["success"], result["num_pairs"]),
        f"planning/{planner}/success_strict": metric(result["success_strict"], result["num_pairs"]),
    }
    if result["seconds_per_mpc_step"] is not None:
        out[f"planning/{planner}/s_per_mpc_step"] = metric(
            result["seconds_per_mpc_step"], result["mpc_steps"]
        )
    return out


def reference_planning(data: EvaluationData, seed: int) -> dict[str, dict[str, Any]]:
    """The true simulator (oracle, scored by the data's cost) and a random policy on the data's pairs: the
    two ends of the planning scale."""
    if data.planning is None:
        raise ValueError("reference planning needs the data's planning setup")
    return {name: data.planning.plan(data.held_out.episodes, name, seed) for name in ("oracle", "random")}


def _controllability_metrics(rollouts: Any) -> dict[str, dict[str, Any]]:
    """Moving-pixel PSNR, agent position error and action recovery of every source, and the contrasts:
    delta-PSNR and moving-pixel delta-PSNR (inferred - random), agent error inferred / shuffled."""
    out: dict[str, dict[str, Any]] = {}
    table = rollouts.controllability()
    no_states = "the clips carry no PushT agent states (state columns agent_x, agent_y)"
    for source, scores in table.items():
        out[f"{source}/moving_psnr"] = (
            metric(scores.moving_psnr, scores.n_moving_frames)
            if scores.moving_psnr is not None
            else metric(None, 0, "no pixel moved in the evaluated clips")
        )
        out[f"{source}/agent_error"] = (
            metric(scores.agent_error, scores.n_agent_frames)
            if scores.agent_error is not None
            else metric(None, 0, no_states)
        )
        out[f"{source}/action_recovery"] = (
            metric(scores.action_recovery, scores.n_action_tokens)
            if scores.action_recovery is not None
            else metric(None, 0, "the copy baseline is not a world-model rollout")
        )
    inferred = table["inferred"]
    intervals = contrast_intervals(rollouts)
    out["delta_psnr"] = metric(rollouts.delta_psnr(), inferred.n_frames, interval=intervals.get("delta_psnr"))
    moving = rollouts.moving_pixel_delta_psnr()
    out["moving_delta_psnr"] = (
        metric(moving, inferred.n_moving_frames, interval=intervals.get("moving_delta_psnr"))
        if moving is not None
        else metric(None, 0, "no pixel moved in the evaluated clips")
    )
    if "shuffled" not in table:
        out["agent_error_ratio"] = metric(None, 0, "no 'shuffled' rollouts (they need >= 2 clips)")
    elif (ratio := rollouts.agent_error_ratio()) is None:
        out["agent_error_ratio"] = metric(None, 0, no_states)
    else:
        out["agent_error_ratio"] = metric(
            ratio, inferred.n_agent_frames, interval=intervals.get("agent_error_ratio")
        )
    return out


def controllability_table(metrics: dict[str, dict[str, Any]], sources: list[str]) -> dict[str, Any]:
    """The report's leading table from a run's metrics: per source its CONTROLLABILITY_SCORES, then the
    CONTROLLABILITY_CONTRASTS, each a metric() entry."""
    return {
        "sources": {
            source: {score: metrics[f"{source}/{score}"] for score in CONTROLLABILITY_SCORES}
            for source in sources
        },
        **{key: metrics[key] for key in CONTROLLABILITY_CONTRASTS},
    }
