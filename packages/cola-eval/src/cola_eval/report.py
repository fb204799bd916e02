"""`cola-eval report`: every evaluation of one or more runs as report.md + report.json, PNG plots and videos.

Each metric is stored as {"value": number | None, "n": sample count} (plus "unavailable": reason when it could
not be computed, e.g. FVD without I3D weights); nothing is estimated in place of a missing number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from cola_eval.evaluation import CONTROLLABILITY_CONTRASTS, CONTROLLABILITY_SCORES
from cola_eval.rollout import ROLLOUT_SOURCES
from cola_eval.strict_json import strict_dumps
from cola_eval.weights import WeightsSource


def _cli(help: str, **flag: Any) -> dict[str, Any]:
    """A ReportOptions field's `cola-eval report` flag: its help and, where needed, ``flag`` (the name),
    ``choices``, ``type``, ``nargs``, or ``cli=False`` for no flag."""
    return {"help": help, **flag}


@dataclass
class ReportOptions:
    """What to evaluate and how much of it; defaults suit a CPU check of a small run. Each field is a
    `cola-eval report` flag (cola_eval.cli builds them from the fields' metadata)."""

    data: str | None = field(
        default=None, metadata=_cli("dataset path (default: the run's data.path)", type=str)
    )
    split: str = field(default="test", metadata=_cli("held-out split", choices=("train", "val", "test")))
    frames: int | None = field(
        default=None, metadata=_cli("rollout clip length (default: the run's; FVD needs >= 10)", type=int)
    )
    max_clips: int = field(default=32, metadata=_cli("held-out clips to evaluate"))
    batch_size: int = field(default=8, metadata=_cli("clips per batch"))
    num_context: int = field(default=1, metadata=_cli("context frames per rollout", flag="context"))
    sampling_steps: int = field(default=10, metadata=_cli("Euler steps per window"))
    guidance_scale: float | None = field(
        default=None,
        metadata=_cli(
            "classifier-free action guidance scale (default: the world model's config.guidance_scale)",
            type=float,
        ),
    )
    seed: int = field(default=0, metadata=_cli("seed of the noise, the adapter and the planning pairs"))
    adapter: bool = field(default=True, metadata=_cli("skip the action adapter rollouts"))
    adapter_steps: int = field(default=300, metadata=_cli("training steps of the action adapter"))
    adapter_fraction: float = field(
        default=0.1, metadata=_cli("fraction of train clips labelled for the adapter")
    )
    adapter_columns: list[int] | None = field(
        default=None,
        metadata=_cli(
            "real-action columns the adapter and the linear probe read (default: 2 3 for PushT, else all)",
            type=int,
            nargs="+",
        ),
    )
    probe_ridge: float = field(default=1e-3, metadata=_cli("ridge of the linear probe"))
    probe_clips: int = field(
        default=512, metadata=_cli("clips per split the linear probe fits and scores on, spread evenly")
    )
    atlas_top: int = field(default=8, metadata=_cli("most used codes in the code atlas"))
    atlas_rare: int = field(default=2, metadata=_cli("least used codes in the code atlas"))
    atlas_contexts: int = field(default=3, metadata=_cli("start frames of the code atlas"))
    atlas_horizon: int | None = field(
        default=None,
        metadata=_cli("new frames per atlas rollout (default: two DiT windows in all)", type=int),
    )
    videos: int = field(default=4, metadata=_cli("side-by-side rollout videos per run"))
    fvd_weights: WeightsSource = field(
        default_factory=WeightsSource,
        metadata=_cli("of I3D (env COLA_I3D_WEIGHTS, _REPO, _FILENAME)", flag="i3d"),
    )
    lpips_weights: WeightsSource = field(
        default_factory=WeightsSource,
        metadata=_cli("of LPIPS (env COLA_LPIPS_WEIGHTS, _REPO, _FILENAME)", flag="lpips"),
    )
    lpips_backbone: str = field(default="alex", metadata=_cli("LPIPS backbone", choices=("alex", "vgg")))
    planning: bool = field(default=False, metadata=_cli("also run PushT visual planning (slow)"))
    planning_pairs: int = field(default=10, metadata=_cli("start/goal pairs of the planning evaluation"))
    planning_cost: str = field(
        default="block_pose", metadata=_cli("planning cost", choices=("block_pose", "pixel_mse"))
    )
    planning_config: dict[str, Any] = field(
        default_factory=dict, metadata=_cli("PlanningConfig overrides", cli=False)
    )
    readout_steps: int = field(
        default=1000, metadata=_cli("training steps of the block-pose readout (block_pose cost)")
    )
    device: str = field(default="auto", metadata=_cli("auto, cpu or cuda"))


def report_row(run: Any, data: Any, options: ReportOptions, out_dir: Path, name: str) -> dict[str, Any]:
    """One run's entry of report.json: :func:`cola_eval.evaluation.evaluate_run`'s scores, the planning
    references, and its plots and videos (written into out_dir)."""
    from cola_eval.codebook import plot_training_curves, read_training_metrics
    from cola_eval.evaluation import controllability_table, evaluate_run, planning_metrics, reference_planning

    evaluation = evaluate_run(run, data, options)
    metrics, notes = dict(evaluation.metrics), list(evaluation.notes)
    if options.planning:
        for planner, result in reference_planning(data, options.seed).items():
            metrics.update(planning_metrics(planner, result))
    files: dict[str, Any] = {}
    try:
        records = read_training_metrics(run.run_dir)
        files["training_curves"] = [str(p) for p in plot_training_curves(records, out_dir, prefix=f"{name}_")]
    except ValueError as err:
        notes.append(f"training curves: {err}")
    rollouts = evaluation.rollouts
    files["psnr_over_horizon"] = str(_plot_horizon(rollouts, out_dir / f"{name}_psnr_over_horizon.png"))
    files["rollouts"] = _write_rollout_videos(rollouts, out_dir, name, options.videos)
    atlas, atlas_files = _code_atlas(
        evaluation.lam, evaluation.wm, data.held_out, evaluation.usage, options, out_dir, name, notes
    )
    files["code_atlas"] = atlas_files
    return {
        "run": name,
        "controllability": controllability_table(metrics, evaluation.sources),
        "run_dir": evaluation.run_dir,
        "frames": evaluation.frames,
        "num_context": evaluation.num_context,
        "sources": evaluation.sources,
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
    if "ci95" in entry:
        low, high = entry["ci95"]
        text += f" [{low:.3g}, {high:.3g}]"
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
        "agent). Brackets: 95% percentile-bootstrap interval over the evaluated clips (resampled with "
        "replacement; it shows how much the figure depends on which clips were drawn, not run-to-run "
        "training variation)."
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
    from cola_eval.evaluation import MetricNetworks, device_of, run_data

    options = options or ReportOptions()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(options.seed)
    networks = MetricNetworks(options, device_of(options.device))
    rows = []
    names: set[str] = set()
    for run_id in run_ids:
        run = load_trained(run_id)
        name = Path(str(run_id)).name or "run"
        while name in names:
            name += "_"
        names.add(name)
        rows.append(report_row(run, run_data(run, options, networks), options, out_dir, name))
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
