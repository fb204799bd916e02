"""The experiment's plan: its config (configs/reproduce-<size>.toml, read by cola_train's config loader), the
runs of one seed, and branching a run from another run's final weights.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Any

from cola_eval.report import ReportOptions

SIZES = ("smoke", "cpu", "gpu")
PLANNING_RUNS = ("methods", "all", "none")


def size_config(size: str) -> Path:
    """The shipped experiment config of ``size`` (the repository's configs/reproduce-<size>.toml links to
    it)."""
    return Path(str(resources.files("cola_eval.reproduction").joinpath("configs", f"reproduce-{size}.toml")))


@dataclass
class Schedule:
    """``[experiment]``: the seeds, the step budget every method gets after pretraining, the warm-up shares,
    how long one call may run, which evaluated runs also plan (``planning_runs``: "methods", the four
    methods; "all"; "none") and whether the gradient-path ablations run (``gradient_ablations``; a later
    call on the same results folder may switch them on, see :func:`gradient_ablation_branches`)."""

    seeds: list[int] = field(default_factory=lambda: [0])
    budget: int = 384
    cola_warmup_fraction: float = 0.125
    warmup_fractions: list[float] = field(default_factory=lambda: [0.0, 0.125, 0.25, 0.5])
    adaptive_max_fraction: float = 0.5
    chunk_minutes: float = 0.0
    planning_runs: str = "methods"
    gradient_ablations: bool = False


@dataclass
class Collection:
    """``[data]``: the PushT episodes collected once into OUT/data/pusht; ``use_videos`` false stores their
    frames as PNG images in the parquet rows (lossless, no PyAV needed: ``--no-videos``)."""

    episodes: int = 64
    episode_length: int = 120
    collect_seed: int = 0
    use_videos: bool = True


@dataclass
class ExperimentFile:
    """An experiment config's sections: ``[run]`` holds cola_train RunConfig values shared by every run,
    ``[eval]`` the cola_eval ReportOptions every run is evaluated with."""

    experiment: Schedule = field(default_factory=Schedule)
    data: Collection = field(default_factory=Collection)
    run: dict[str, Any] = field(default_factory=dict)
    eval: ReportOptions = field(default_factory=ReportOptions)


@dataclass
class Experiment(Schedule):
    """One size of the experiment: its schedule, collection, shared run values and evaluation options."""

    size: str = "cpu"
    data: Collection = field(default_factory=Collection)
    run: dict[str, Any] = field(default_factory=dict)
    eval: ReportOptions = field(default_factory=ReportOptions)
    source: str = ""

    @classmethod
    def load(cls, path: Path, size: str) -> Experiment:
        """Read ``path`` with cola_train's config loader: unknown keys are errors naming the closest valid
        one, and ``[run]`` must make a valid RunConfig."""
        from cola_train import RunConfig
        from cola_train.config import build_section, read_config_file

        if not path.is_file():
            raise ValueError(f"experiment config {path} does not exist; sizes are {', '.join(SIZES)}")
        sections = build_section(ExperimentFile, read_config_file(path))
        RunConfig.from_dict(copy.deepcopy(sections.run))
        loaded = cls(
            **dataclasses.asdict(sections.experiment),
            size=size,
            data=sections.data,
            run=sections.run,
            eval=sections.eval,
            source=str(path),
        )
        loaded.validate()
        return loaded

    def validate(self) -> None:
        if self.budget < 2 or not self.seeds:
            raise ValueError(f"budget must be >= 2 and seeds non-empty, got {self.budget} and {self.seeds}")
        if 0.0 not in self.warmup_fractions:
            raise ValueError("warmup_fractions must hold 0.0: it is the 'joint, no warm-up' method")
        if self.cola_warmup_fraction not in self.warmup_fractions:
            raise ValueError(
                f"cola_warmup_fraction {self.cola_warmup_fraction} must be one of warmup_fractions "
                f"{self.warmup_fractions} (the ablation shares CoLA's run)"
            )
        for fraction in [*self.warmup_fractions, self.adaptive_max_fraction]:
            if not 0.0 <= fraction < 1.0:
                raise ValueError(f"warm-up fractions must be in [0, 1), got {fraction}")
        if self.planning_runs not in PLANNING_RUNS:
            raise ValueError(
                f"experiment.planning_runs must be one of {PLANNING_RUNS}, got {self.planning_runs!r}"
            )

    def planning_config(self) -> Any:
        from cola_eval.planning import PlanningConfig

        return PlanningConfig(**self.eval.planning_config)


# ----------------------------------------------------------------------------------------------------
# The runs of one seed


@dataclass(frozen=True)
class Branch:
    """One cola-train run: its stages (the parent's stages first) and their step counts."""

    name: str
    stages: tuple[str, ...]
    steps: dict[str, int]
    parent: str | None
    label: str
    adaptive: bool = False
    joint_switches: tuple[str, ...] = ()  # StageConfig switches set in the joint stage (the ablations)


def warmup_steps(experiment: Experiment, fraction: float) -> int:
    return round(fraction * experiment.budget)


def fraction_name(fraction: float) -> str:
    if fraction == 0:
        return "0"
    ratio = Fraction(fraction).limit_denominator(64)
    return f"{ratio.numerator}of{ratio.denominator}"


def warmup_run_name(fraction: float) -> str:
    return f"warmup-{fraction_name(fraction)}"


def branches(experiment: Experiment) -> list[Branch]:
    """Every run of one seed in training order; the adaptive joint run is added once its warm-up has ended."""
    budget = experiment.budget
    pretrain = experiment.run.get("pretrain", {}).get("steps", 1000)
    runs = [Branch("pretrain", ("pretrain",), {"pretrain": pretrain}, None, "pretrained world model")]
    half = budget // 2
    runs.append(
        Branch(
            "two-stage",
            ("pretrain", "lam_recon", "wm_finetune"),
            {"lam_recon": half, "wm_finetune": budget - half},
            "pretrain",
            "two-stage",
        )
    )
    for fraction in sorted(set(experiment.warmup_fractions)):
        steps = warmup_steps(experiment, fraction)
        if steps == 0:
            runs.append(
                Branch(
                    warmup_run_name(0.0),
                    ("pretrain", "joint"),
                    {"joint": budget},
                    "pretrain",
                    "joint, no warm-up",
                )
            )
        else:
            runs.append(
                Branch(
                    warmup_run_name(fraction),
                    ("pretrain", "warmup", "joint"),
                    {"warmup": steps, "joint": budget - steps},
                    "pretrain",
                    f"warm-up {fraction_name(fraction).replace('of', '/')}, then joint",
                )
            )
    cap = warmup_steps(experiment, experiment.adaptive_max_fraction)
    runs.append(
        Branch(
            "adaptive-warmup",
            ("pretrain", "warmup"),
            {"warmup": cap},
            "pretrain",
            "adaptive warm-up (first half of cola-adaptive)",
            adaptive=True,
        )
    )
    if experiment.gradient_ablations:
        runs += gradient_ablation_branches(experiment)
    return runs


# run name -> (the joint stage's StageConfig switch, table row label)
GRADIENT_ABLATIONS = {
    "joint-frozen-lam": ("freeze_lam", "LAM frozen in joint"),
    "joint-frozen-wm": ("freeze_wm", "world model frozen in joint"),
    "joint-stop-gradient": ("stop_gradient", "gradient into the LAM stopped"),
}
COLA_BOTH_DIRECTIONS = "CoLA (joint, both directions)"


def gradient_ablation_branches(experiment: Experiment) -> list[Branch]:
    """CoLA with one gradient path of its joint stage cut: the LAM frozen, the world model's DiT backbone
    frozen (its action blocks still train), or the world model's gradient into the LAM stopped.

    Each branches from the seed's pretrained world model and repeats CoLA's warm-up (same steps, same seed,
    so the same data order and weights as CoLA's own warm-up) before its joint stage: CoLA's run trains
    warm-up and joint in one run and keeps no warm-up-only weights to branch from. Only the joint stage's
    switch differs from CoLA, with the same step budget; the warm-up costs a few extra steps per branch.
    """
    steps = warmup_steps(experiment, experiment.cola_warmup_fraction)
    stages = ("pretrain", "warmup", "joint") if steps else ("pretrain", "joint")
    counts = {"warmup": steps, "joint": experiment.budget - steps} if steps else {"joint": experiment.budget}
    return [
        Branch(name, stages, counts, "pretrain", label, joint_switches=(switch,))
        for name, (switch, label) in GRADIENT_ABLATIONS.items()
    ]


def gradient_ablation_rows(experiment: Experiment) -> dict[str, str]:
    """Table row label -> run name of the gradient-path ablation table: CoLA first, the ablations after."""
    rows = {COLA_BOTH_DIRECTIONS: warmup_run_name(experiment.cola_warmup_fraction)}
    return rows | {label: name for name, (_, label) in GRADIENT_ABLATIONS.items()}


def adaptive_joint_branch(experiment: Experiment, warmup_used: int) -> Branch:
    """The joint stage after the adaptive warm-up: it gets the steps the warm-up left of the budget."""
    cap = warmup_steps(experiment, experiment.adaptive_max_fraction)
    return Branch(
        "cola-adaptive",
        ("pretrain", "warmup", "joint"),
        {"warmup": cap, "joint": experiment.budget - warmup_used},
        "adaptive-warmup",
        "CoLA, adaptive warm-up",
        adaptive=True,
    )


def methods(experiment: Experiment) -> dict[str, str]:
    """Table row label -> run name (the issue's four methods)."""
    cola = fraction_name(experiment.cola_warmup_fraction).replace("of", "/")
    return {
        "two-stage": "two-stage",
        "joint, no warm-up": warmup_run_name(0.0),
        f"CoLA (warm-up {cola})": warmup_run_name(experiment.cola_warmup_fraction),
        "CoLA, adaptive warm-up": "cola-adaptive",
    }


def run_config(experiment: Experiment, branch: Branch, seed: int, data_path: Path) -> Any:
    """The cola_train RunConfig of one branch: the shared [run] values, this seed, its stages and steps."""
    from cola_train import RunConfig

    values = copy.deepcopy(experiment.run)
    values["seed"] = seed
    values["stages"] = list(branch.stages)
    values.setdefault("data", {})["path"] = str(data_path.resolve())
    for stage, steps in branch.steps.items():
        values.setdefault(stage, {})["steps"] = steps
    if branch.adaptive:
        values.setdefault("warmup", {})["adaptive"] = True
    for switch in branch.joint_switches:
        values.setdefault("joint", {})[switch] = True
    return RunConfig.from_dict(values)


# ----------------------------------------------------------------------------------------------------
# Branching: a run that starts from another run's final weights


def seed_branch(parent_dir: Path, parent_stages: Sequence[str], config: Any) -> Any:
    """``config`` as a branch of the finished run ``parent_dir``, whose weights went through
    ``parent_stages`` (its own and its parents'): only the stages after those, started from the parent's
    final weights (cola-train's ``init_from``; fresh optimizer and step count). A fresh LAM decoder
    (two-stage) comes from the engine's own seeded ``build_models``."""
    parent_stages = list(parent_stages)
    if not (parent_dir / "models" / "wm").is_dir():
        raise ValueError(f"cannot branch from {parent_dir}: its run has not finished its stages")
    if list(config.stages[: len(parent_stages)]) != parent_stages:
        raise ValueError(f"branch stages {config.stages} do not continue the parent's {parent_stages}")
    return dataclasses.replace(
        config, stages=list(config.stages[len(parent_stages) :]), init_from=str(parent_dir.resolve())
    )


def finished_stage_steps(run_dir: Path) -> dict[str, int]:
    """Steps each stage of a finished run actually ran (adaptive warm-ups may end early).

    Read from the run's final checkpoint (stage done, its step count) and the engine's stage_end events; the
    checkpoint is the authority for the last stage, since a run killed right after it was written and then
    resumed logs no second stage_end.
    """
    from cola_train.checkpoint import latest_checkpoint
    from safetensors import safe_open

    steps = {}
    events = run_dir / "events.jsonl"
    if events.exists():
        for line in events.read_text().splitlines():
            record = json.loads(line)
            if record.get("event") == "stage_end":
                steps[record["stage"]] = int(record["steps"])
    last = latest_checkpoint(run_dir / "checkpoints")
    if last is not None:
        with safe_open(str(last), framework="pt") as file:
            state = json.loads(file.metadata()["state"])
        if state["stage_done"]:
            steps[state["stage"]] = int(state["step"])
    return steps
