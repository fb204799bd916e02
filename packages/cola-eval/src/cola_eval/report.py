"""`cola-eval report`: every evaluation of one or more runs as report.md + report.json, PNG plots and videos.

Each metric is stored as {"value": number | None, "n": sample count} (plus "unavailable": reason when it could
not be computed, e.g. FVD without I3D weights); nothing is estimated in place of a missing number.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cola_eval.rollout import ROLLOUT_SOURCES
from cola_eval.strict_json import strict_dumps
from cola_eval.weights import WeightsSource, WeightsUnavailable

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


@dataclass
class ReportOptions:
    """What to evaluate and how much of it; defaults suit a CPU check of a small run."""

    data: str | None = None  # dataset path; default: the run's config data.path
    split: str = "test"
    frames: int | None = None  # clip length of the rollouts; default: the run's clip length
    max_clips: int = 32
    batch_size: int = 8
    num_context: int = 1
    sampling_steps: int = 10
    guidance_scale: float = 1.0
    seed: int = 0
    adapter: bool = True
    adapter_steps: int = 300
    adapter_fraction: float = 0.1
    # real-action columns the adapter and the probe read; default PushT's deltas (2, 3), else all
    adapter_columns: list[int] | None = None
    probe_ridge: float = 1e-3
    atlas_top: int = 8
    atlas_rare: int = 2
    atlas_contexts: int = 3
    atlas_horizon: int | None = None  # new frames per atlas rollout; default: two DiT windows in all
    videos: int = 4
    fvd_weights: WeightsSource = field(default_factory=WeightsSource)
    lpips_weights: WeightsSource = field(default_factory=WeightsSource)
    lpips_backbone: str = "alex"
    planning: bool = False
    planning_pairs: int = 10
    planning_cost: str = "block_pose"  # or "pixel_mse"
    planning_config: dict[str, Any] = field(default_factory=dict)  # PlanningConfig overrides
    readout_steps: int = 1000
    device: str = "auto"


def metric(value: float | None, n: int, unavailable: str | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"value": None if value is None else float(value), "n": int(n)}
    if unavailable is not None:
        entry["unavailable"] = unavailable
    return entry


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _datasets(run: Any, options: ReportOptions) -> tuple[Any, Any, int]:
    """The held-out (options.split) and train clip sets of the run's data, at the run's frame size."""
    from cola_train.data import ClipDataset, load_episodes
    from cola_train.data.load import resolve_dataset

    data_cfg = run.config.get("data", {})
    # --data, else the run's own dataset: a local path, or a Hub dataset id fetched into the Hub cache.
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
    size = data_cfg.get("frame_size")
    skip = int(data_cfg.get("frame_skip", 1))
    held_out = ClipDataset(episodes, frames, frame_skip=skip, size=size, split=options.split)
    train = ClipDataset(episodes, frames, frame_skip=skip, size=size, split="train")
    if len(held_out) == 0:
        raise ValueError(
            f"the {options.split} split of {path} yields no clips of {frames} frames: the "
            "evaluation set is empty"
        )
    return held_out, train, frames


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


def _adapter_columns(options: ReportOptions, action_width: int) -> list[int]:
    if options.adapter_columns is not None:
        bad = [c for c in options.adapter_columns if not 0 <= c < action_width]
        if bad:
            raise ValueError(f"adapter columns {bad} are outside the dataset's {action_width} action columns")
        return list(options.adapter_columns)
    return [2, 3] if action_width == 4 else list(range(action_width))


def evaluate_run(
    run: Any, options: ReportOptions, networks: MetricNetworks, out_dir: Path, name: str
) -> dict[str, Any]:
    """All metrics of one trained run (a cola_train.TrainedRun); writes its plots and videos into out_dir."""
    from cola_eval.codebook import codebook_usage, plot_training_curves, read_training_metrics
    from cola_eval.fvd import fvd
    from cola_eval.probe import probe_latent_actions
    from cola_eval.rollout import check_compatible, evaluate_rollouts, from_uint8

    if run.lam is None:
        raise ValueError(
            f"run {run.run_dir} conditions its world model on real actions (model.actions = 'real'), so it "
            "has no LAM to report on; score such a ceiling with benchmarks/controllability_study.py, or "
            "report a latent-action run"
        )
    device = _device(options.device)
    lam, wm = run.lam.to(device).eval(), run.wm.to(device).eval()
    held_out, train, frames = _datasets(run, options)
    check_compatible(lam, wm, held_out[0]["video"].shape[1:])
    metrics: dict[str, dict[str, Any]] = {}
    files: dict[str, Any] = {}
    notes: list[str] = []

    adapter = None
    sources = ["inferred", "random", "copy"]
    if min(len(held_out), options.max_clips) >= 2:
        sources.insert(1, "shuffled")
    else:
        notes.append("rollouts: one clip only, so no 'shuffled' source (it takes another clip's actions)")
    columns = _adapter_columns(options, held_out[0]["actions"].shape[-1])
    if options.adapter:
        from cola_eval.adapter import train_adapter

        adapter = (
            train_adapter(
                lam,
                train,
                steps=options.adapter_steps,
                labelled_fraction=options.adapter_fraction,
                seed=options.seed,
                action_columns=columns,
            )
            .to(device)
            .eval()
        )
        sources.insert(1, "adapter")
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
        lpips_model=networks.lpips,
    )
    summary = rollouts.summary()
    for source, scores in summary.items():
        metrics[f"{source}/psnr"] = metric(scores["psnr"], scores["n_frames"])
        metrics[f"{source}/ssim"] = metric(scores["ssim"], scores["n_frames"])
        metrics[f"{source}/lpips"] = (
            metric(scores["lpips"], scores["n_frames"])
            if "lpips" in scores
            else metric(None, 0, networks.lpips_reason)
        )
        if networks.i3d is None:
            metrics[f"{source}/fvd"] = metric(None, 0, networks.i3d_reason)
        elif frames < FVD_MIN_FRAMES:
            metrics[f"{source}/fvd"] = metric(
                None, 0, f"clips of {frames} frames; I3D needs >= {FVD_MIN_FRAMES} (pass --frames 16)"
            )
        else:
            value = fvd(
                networks.i3d,
                from_uint8(rollouts.real_videos),
                from_uint8(rollouts.videos(source)),
                batch_size=options.batch_size,
            )
            metrics[f"{source}/fvd"] = metric(value, scores["n_clips"])
    metrics.update(_controllability_metrics(rollouts))

    usage = codebook_usage(lam, held_out, options.batch_size, options.max_clips)
    health = usage.health()
    for key in ("utilization", "perplexity", "entropy", "max_share", "distinct_actions"):
        metrics[f"codebook/{key}"] = metric(health[key], health["n_transitions"])
    for key in ("latent_spread", "latent_rank", "code_spread"):  # geometry of the IDM's outputs, per token
        metrics[f"codebook/{key}"] = metric(health[key], health["n_tokens"])
    notes += [f"codebook: {w}" for w in health["collapse_warnings"]]

    probe = probe_latent_actions(
        lam,
        train,
        held_out,
        ridge=options.probe_ridge,
        batch_size=options.batch_size,
        max_clips=options.max_clips,
        action_columns=columns,
    )
    for view, scores in probe.items():
        metrics[f"probe/{view}/r2"] = metric(scores["r2"], scores["n_test"])
        metrics[f"probe/{view}/mse"] = metric(scores["mse"], scores["n_test"])

    if options.planning:
        if adapter is None:
            raise ValueError("planning drives the world model through the action adapter; do not disable it")
        planning = _planning_metrics(wm, adapter, held_out.episodes, train.episodes, options)
        metrics.update(planning)

    try:
        records = read_training_metrics(run.run_dir)
        files["training_curves"] = [str(p) for p in plot_training_curves(records, out_dir, prefix=f"{name}_")]
    except ValueError as err:
        notes.append(f"training curves: {err}")
    files["psnr_over_horizon"] = str(_plot_horizon(rollouts, out_dir / f"{name}_psnr_over_horizon.png"))
    files["rollouts"] = _write_rollout_videos(rollouts, out_dir, name, options.videos)
    atlas, atlas_files = _code_atlas(lam, wm, held_out, usage, options, out_dir, name, notes)
    files["code_atlas"] = atlas_files
    return {
        "run": name,
        "controllability": controllability_table(metrics, sources),
        "run_dir": str(run.run_dir),
        "frames": frames,
        "num_context": options.num_context,
        "sources": sources,
        "metrics": metrics,
        "atlas": atlas,
        "files": files,
        "notes": notes,
    }


def _code_atlas(
    lam: Any,
    wm: Any,
    held_out: Any,
    usage: Any,
    options: ReportOptions,
    out_dir: Path,
    name: str,
    notes: list[str],
) -> tuple[dict[str, Any], list[str]]:
    """The code atlas from options.atlas_contexts held-out start frames over options.atlas_horizon new frames
    (default: two DiT windows), with the real clip and its inferred actions as reference rows where a held-out
    clip is that long; its numbers for report.json and its files (grid PNG, GIF, curves PNG)."""
    from cola_eval.atlas import (
        atlas_clips,
        atlas_summary,
        code_atlas,
        default_horizon,
        plot_atlas_curves,
        write_atlas,
    )
    from cola_eval.controllability import has_pusht_agent_states

    k = options.num_context
    horizon = options.atlas_horizon or default_horizon(wm, k)
    real = atlas_clips(held_out, k + horizon, options.atlas_contexts)
    if real is None:
        notes.append(f"code atlas: no held-out clip of {k + horizon} frames, so no real / true-actions rows")
        picks = _spread(len(held_out), options.atlas_contexts)
        context = torch.stack([held_out[i]["video"][:k] for i in picks])
    else:
        context = real[:, :k]
    entries = code_atlas(
        lam,
        wm,
        context,
        usage,
        horizon=horizon,
        num_top=options.atlas_top,
        num_rare=options.atlas_rare,
        steps=options.sampling_steps,
        guidance_scale=options.guidance_scale,
        seed=options.seed,
        real=real,
        pusht=has_pusht_agent_states(held_out),
    )
    window = wm.config.num_frames
    scale = max(1, 96 // context.shape[-1])
    png, gif = write_atlas(entries, out_dir, prefix=f"{name}_", scale=scale, window=window)
    curves = plot_atlas_curves(entries, out_dir / f"{name}_code_atlas_curves.png", window=window)
    return atlas_summary(entries, window), [str(png), str(gif), str(curves)]


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
    out["delta_psnr"] = metric(rollouts.delta_psnr(), inferred.n_frames)
    moving = rollouts.moving_pixel_delta_psnr()
    out["moving_delta_psnr"] = (
        metric(moving, inferred.n_moving_frames)
        if moving is not None
        else metric(None, 0, "no pixel moved in the evaluated clips")
    )
    if "shuffled" not in table:
        out["agent_error_ratio"] = metric(None, 0, "no 'shuffled' rollouts (they need >= 2 clips)")
    elif (ratio := rollouts.agent_error_ratio()) is None:
        out["agent_error_ratio"] = metric(None, 0, no_states)
    else:
        out["agent_error_ratio"] = metric(ratio, inferred.n_agent_frames)
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


def _planning_metrics(
    wm: Any, adapter: Any, test_episodes: list, train_episodes: list, options: ReportOptions
) -> dict[str, dict[str, Any]]:
    """PushT planning with the world model (+ adapter) beside the oracle simulator and the random policy, all
    run by the same code over the same held-out start/goal pairs."""
    from cola_eval.planning import (
        PlanningConfig,
        WorldModel,
        evaluate_planning,
        labelled_frames,
        train_readout,
    )

    config = PlanningConfig(**options.planning_config)
    readout = None
    if options.planning_cost == "block_pose":
        readout = train_readout(
            *labelled_frames(train_episodes), steps=options.readout_steps, seed=options.seed
        )
    metrics = {}
    planners = {
        "world_model": WorldModel(wm, adapter, euler_steps=config.euler_steps, seed=options.seed),
        "oracle": "oracle",
        "random": "random",
    }
    for name, model in planners.items():
        result = evaluate_planning(
            test_episodes,
            model,
            cost=options.planning_cost,
            readout=readout,
            config=config,
            num_pairs=options.planning_pairs,
            seed=options.seed,
        )
        metrics[f"planning/{name}/success"] = metric(result["success"], result["num_pairs"])
        metrics[f"planning/{name}/success_strict"] = metric(result["success_strict"], result["num_pairs"])
        if result["seconds_per_mpc_step"] is not None:
            metrics[f"planning/{name}/s_per_mpc_step"] = metric(
                result["seconds_per_mpc_step"], result["mpc_steps"]
            )
    return metrics


def _spread(total: int, count: int) -> list[int]:
    """`count` indices spread evenly over range(total) (different episodes where the set allows)."""
    count = max(1, min(count, total))
    return sorted({round(i * (total - 1) / max(count - 1, 1)) for i in range(count)})


def _plot_horizon(rollouts: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    for source, scores in rollouts.scores.items():
        per_step = torch.cat(scores.psnr).mean(0)
        steps = range(rollouts.num_context, rollouts.num_context + per_step.numel())
        ax.plot(list(steps), per_step.tolist(), marker="o", label=source)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("rollout PSNR over the horizon")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_rollout_videos(rollouts: Any, out_dir: Path, name: str, count: int) -> list[str]:
    """real | predicted (one column per action source) as GIF and MP4, enlarged to >= 128 px high."""
    from cola_eval.videos import side_by_side, to_frames, upscale, write_gif, write_mp4

    written = []
    real = rollouts.real_videos
    predicted = {source: rollouts.videos(source) for source in rollouts.scores}
    scale = max(1, math.ceil(128 / real.shape[-2]))
    for i in range(min(count, real.shape[0])):
        panels = [to_frames(real[i])] + [to_frames(video[i]) for video in predicted.values()]
        frames = upscale(side_by_side(*panels), scale)
        written.append(str(write_gif(frames, out_dir / f"{name}_rollout_{i}.gif", fps=4)))
        written.append(str(write_mp4(frames, out_dir / f"{name}_rollout_{i}.mp4", fps=4)))
    return written


def _plot_comparison(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sources = [s for s in ROLLOUT_SOURCES if any(f"{s}/psnr" in r["metrics"] for r in rows)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    width = 0.8 / max(len(sources), 1)
    for panel, key in zip(axes, ("psnr", "ssim"), strict=True):
        for j, source in enumerate(sources):
            values = [r["metrics"].get(f"{source}/{key}", {}).get("value") or 0.0 for r in rows]
            panel.bar([i + j * width for i in range(len(rows))], values, width, label=source)
        panel.set_xticks(
            [i + width * (len(sources) - 1) / 2 for i in range(len(rows))],
            [r["run"] for r in rows],
            rotation=20,
            fontsize=8,
        )
        panel.set_title(f"rollout {key.upper()}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


SECTIONS = {
    "Rollouts (predicted frames vs real)": (*(f"{source}/" for source in ROLLOUT_SOURCES), "delta_psnr"),
    "Codebook health (held-out set)": ("codebook/",),
    "Linear probe (latent -> real actions, held-out episodes)": ("probe/",),
    "Visual planning (PushT)": ("planning/",),
}


def _cell(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    if entry["value"] is None:
        return "n/a"
    value = entry["value"]
    text = "inf" if math.isinf(value) else f"{value:.4g}"
    return f"{text} (n={entry['n']})"


def _only_in_controllability_table(key: str) -> bool:
    """Keys of the leading table but for full-frame PSNR and delta-PSNR, which the Rollouts section keeps."""
    if "/" in key:
        score = key.rsplit("/", 1)[-1]
        return score in CONTROLLABILITY_SCORES and score != "psnr"
    return key in CONTROLLABILITY_CONTRASTS and key != "delta_psnr"


def render_controllability(rows: list[dict[str, Any]]) -> list[str]:
    """The leading section of report.md: per run and source the controllability scores, then the contrasts."""
    lines = [
        "## Controllability (do rollouts follow their actions?)",
        "",
        "| run | source | " + " | ".join(CONTROLLABILITY_SCORES.values()) + " |",
        "|---" * (len(CONTROLLABILITY_SCORES) + 2) + "|",
    ]
    for r in rows:
        for source, scores in r["controllability"]["sources"].items():
            cells = " | ".join(_cell(scores[key]) for key in CONTROLLABILITY_SCORES)
            lines.append(f"| {r['run']} | {source} | {cells} |")
    lines += [
        "",
        "| run | " + " | ".join(CONTROLLABILITY_CONTRASTS.values()) + " |",
        "|---" * (len(CONTROLLABILITY_CONTRASTS) + 1) + "|",
    ]
    for r in rows:
        cells = " | ".join(_cell(r["controllability"][key]) for key in CONTROLLABILITY_CONTRASTS)
        lines.append(f"| {r['run']} | {cells} |")
    lines.append("")
    return lines


def render_atlas(rows: list[dict[str, Any]]) -> list[str]:
    """The code-atlas section of report.md: per run and atlas row its share, the agent's final displacement
    and distance from the start frame, the static PSNR and (true actions) the PSNR against the real clip."""
    lines = [
        "## Code atlas (one action held fixed from the same start frames, with the same noise)",
        "",
        "Rows: real = the held-out clip, true = the rollout with the IDM's actions of that clip, then "
        "the most used (top) and least used (rare) combined codes, each repeated at every transition. "
        "Agent displacement: (dx, dy) in frame px of the PushT agent at the last frame from where it is in "
        "the start frame (mean over start frames); agent distance: its length. Static PSNR: each predicted "
        "frame against the start frame over the pixels the agent covers in neither (a static-scene proxy: "
        "the block should stay intact unless the agent pushes it; capped at 60 dB). Code separation: mean "
        "distance between the final agent positions of two code rows from one start frame.",
        "",
        "| run | row | share (transitions) | agent displacement (px) | agent distance (px) "
        "| static PSNR (dB) | PSNR vs real (dB) |",
        "|---" * 7 + "|",
    ]
    for r in rows:
        atlas = r["atlas"]
        for row in atlas["rows"]:
            what = row["kind"] if row["action"] is None else f"{row['kind']} {tuple(row['action'])}"
            share = "-" if row["share"] is None else f"{row['share']:.1%} ({row['transitions']})"
            move = row["agent_displacement"]
            displacement = (
                "n/a"
                if move["value"] is None
                else "({:+.1f}, {:+.1f})".format(*move["value"]) + f" (n={move['n']})"
            )
            cells = [
                share,
                displacement,
                _cell(row["agent_distance"]),
                _cell(row["static_psnr"]),
                _cell(row.get("psnr")),
            ]
            lines.append(f"| {r['run']} | {what} | " + " | ".join(cells) + " |")
    lines.append("")
    for r in rows:
        atlas = r["atlas"]
        lines.append(
            f"- {r['run']}: {atlas['start_frames']} start frame(s), {atlas['num_context']} context + "
            f"{atlas['horizon']} predicted frames (DiT window {atlas['window']}); code separation (px): "
            f"{_cell(atlas['code_separation_px'])}"
        )
    lines.append("")
    return lines


def render_markdown(rows: list[dict[str, Any]], out_dir: Path) -> str:
    lines = ["# CoLA evaluation report", ""]
    lines.append(
        "Each cell: value (n = number of samples it averages: predicted frames for rollout scores and the "
        "agent error, predicted frames with a moving pixel for moving-pixel PSNR, latent-action tokens for "
        "action recovery, clips for FVD, transitions for codebook and probe scores, start/goal pairs for "
        "planning)."
    )
    lines.append(
        "Rollout sources: inferred = the IDM's latent actions of the true clip, adapter = the action adapter "
        "fed the real actions, shuffled = the IDM's latent actions of another held-out clip, random = "
        "uniform random codes, copy = the last context frame repeated (no world model). Moving-pixel PSNR: "
        "over the pixels where the true future differs from the last context frame. Agent error: distance "
        "in frame px between the PushT agent read off the predicted frame (by its blue) and its true "
        "position. Action recovery: % of tokens the IDM names the same on the predicted clip as on the true "
        "one. delta_psnr = PSNR(inferred) - PSNR(random); moving_delta_psnr the same over moving pixels; "
        "agent_error_ratio = agent error(inferred) / agent error(shuffled) (< 1: the actions steer the "
        "agent)."
    )
    lines.append("")
    lines += render_controllability(rows)
    for title, prefixes in SECTIONS.items():
        keys = list(
            dict.fromkeys(
                k
                for r in rows
                for k in r["metrics"]
                if k.startswith(prefixes) and not _only_in_controllability_table(k)
            )
        )
        if not keys:
            continue
        lines += [f"## {title}", "", "| run | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for r in rows:
            lines.append(f"| {r['run']} | " + " | ".join(_cell(r["metrics"].get(k)) for k in keys) + " |")
        lines.append("")
    lines += render_atlas(rows)
    unavailable = {
        f"{r['run']}: {k}": e["unavailable"]
        for r in rows
        for k, e in r["metrics"].items()
        if "unavailable" in e
    }
    if unavailable:
        lines += ["## Unavailable metrics", ""]
        reasons: dict[str, list[str]] = {}
        for where, reason in unavailable.items():
            reasons.setdefault(reason, []).append(where)
        for reason, wheres in reasons.items():
            lines.append(f"- {', '.join(wheres)}: {reason}")
        lines.append("")
    lines += ["## Files", ""]
    for r in rows:
        lines.append(
            f"### {r['run']} ({r['run_dir']}; {r['frames']}-frame clips, {r['num_context']} context)"
        )
        lines.append("")
        for kind, paths in r["files"].items():
            paths = paths if isinstance(paths, list) else [paths]
            links = ", ".join(f"[{Path(p).name}]({Path(p).relative_to(out_dir)})" for p in paths)
            lines.append(f"- {kind}: {links}")
        if r["files"].get("rollouts"):
            lines.append(f"- rollout videos show, left to right: real | {' | '.join(r['sources'])}")
        for note in r["notes"]:
            lines.append(f"- note: {note}")
        lines.append("")
    if (out_dir / "rollout_comparison.png").exists():
        lines += ["![rollout comparison](rollout_comparison.png)", ""]
    return "\n".join(lines)


def write_report(
    run_ids: list[str], out_dir: str | Path, options: ReportOptions | None = None
) -> dict[str, Any]:
    """Evaluate every run (directory or Hub id); write report.md, report.json, plots and videos to out_dir."""
    from cola_train import load_trained

    if not run_ids:
        raise ValueError("no runs given; pass one or more run directories or Hub model ids")
    options = options or ReportOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    networks = MetricNetworks(options, _device(options.device))
    rows = []
    names: set[str] = set()
    for run_id in run_ids:
        run = load_trained(run_id)
        name = Path(str(run_id)).name or "run"
        while name in names:
            name += "_"
        names.add(name)
        rows.append(evaluate_run(run, options, networks, out_dir, name))
    _plot_comparison(rows, out_dir / "rollout_comparison.png")
    report = {
        "controllability": {r["run"]: r["controllability"] for r in rows},
        "options": _jsonable(asdict(options)),
        "runs": rows,
    }
    (out_dir / "report.json").write_text(strict_dumps(report))
    (out_dir / "report.md").write_text(render_markdown(rows, out_dir))
    return report


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value
