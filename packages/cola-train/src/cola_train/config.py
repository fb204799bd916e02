"""Run configuration: dataclasses, presets, TOML/YAML files and ``key.sub=value`` overrides.

A run is described by one :class:`RunConfig`. Files under ``configs/`` and ``--set`` overrides are applied on
top of the defaults; any key that does not exist is rejected with the closest valid name, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from cola_lam.config import LAMConfig
from cola_wm.config import DiTConfig

from cola_train.data.pusht_layout import DELTA_COLUMNS

STAGE_NAMES = ("pretrain", "warmup", "joint", "lam_recon", "wm_finetune")


@dataclass
class DataConfig:
    """Where the clips come from and their shape. ``path`` is any dataset ``cola_train.data.load_episodes``
    reads.
    """

    path: str = "data/pusht"
    clip_length: int = 8
    frame_skip: int = 1
    frame_size: int = 64
    split: str = "train"


ACTION_KINDS = ("latent", "real")


@dataclass
class ModelConfig:
    """The two model configs, each a preset (``lam_preset``, ``wm_preset``) with its fields overridden.

    A config file's or ``--set``'s ``[model.lam]`` / ``[model.wm]`` keys override the preset's fields; the
    rest follow the run: both frame sizes from ``data.frame_size``, the world model's channels from the LAM,
    its ``action_dim`` from the actions, its window (``num_frames``) at least one clip.

    ``actions``: what conditions the world model. ``"latent"`` (CoLA): the LAM's codes. ``"real"``: the
    ground-truth-action ceiling, the dataset's own actions (columns ``real_action_columns`` of every
    environment step a transition spans, standardised; see :mod:`cola_train.real_actions`) in place of the
    LAM, which then neither trains nor is saved. The default columns are PushT's commanded deltas.
    """

    lam_preset: str = "tiny"
    wm_preset: str = "tiny"
    lam: LAMConfig = field(default_factory=LAMConfig)
    wm: DiTConfig = field(default_factory=DiTConfig)
    actions: str = "latent"
    real_action_columns: list[int] = field(default_factory=lambda: list(DELTA_COLUMNS))


@dataclass
class TrainConfig:
    """How each step is computed.

    The global batch of ``batch_size`` clips is split into shards of ``micro_batch_size`` clips (0: the whole
    batch per process); every shard's noise comes from its own generator, so results do not depend on how many
    processes share the shards. ``motion_weight``: the flow loss weights the pixels that move between the
    context frame and each target frame ``1 + motion_weight`` times (``cola_wm.flow_matching_loss``).
    ``time_shift`` moves the sampled flow times toward noise (``cola_wm.shift_time``; 1: no shift).
    ``threads``: torch threads on a CPU run; 0 adapts the count to the machine's load as the run goes
    (:mod:`cola_train.threads`), N >= 1 fixes it. It changes the speed, not what is computed beyond the last
    digits, so a run resumes under another count.
    """

    batch_size: int = 8
    micro_batch_size: int = 0
    num_context: int = 1
    time_sampling: str = "logit_normal"
    crop_scale_min: float = 0.7
    motion_weight: float = 0.0
    time_shift: float = 1.0
    log_every: int = 10
    checkpoint_every: int = 200
    keep_checkpoints: int = 2
    bf16: bool = True
    device: str = "auto"
    strategy: str = "ddp"
    progress: bool = True
    threads: int = 0


@dataclass
class OptimConfig:
    """AdamW, one learning rate per parameter group; linear warm-up then cosine decay within each stage."""

    lr_lam: float = 7.5e-5
    lr_action: float = 7.5e-5
    lr_dit: float = 7.5e-5
    lr_decoder: float = 7.5e-5
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    warmup_steps: int = 2000
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.9999


@dataclass
class StageConfig:
    """One stage's length and the ablation switches that apply to it.

    ``freeze_lam``: the LAM neither trains nor updates its buffers (joint ablation). ``freeze_wm``: the DiT
    backbone stays fixed while the action blocks keep training (joint ablation). ``stop_gradient``: the world
    model's loss does not reach the LAM, which then only sees its VQ loss.
    """

    steps: int = 0
    freeze_lam: bool = False
    freeze_wm: bool = False
    stop_gradient: bool = False


@dataclass
class WarmupConfig(StageConfig):
    """The warm-up, with an optional early end once the codebook is healthy and the loss has flattened.

    Every ``adaptive_window`` steps past ``adaptive_min_steps`` the mean loss of the last window is compared
    with the one before; the stage ends when the relative improvement is below ``adaptive_min_improvement``
    and the codebook over the last window shows no collapse sign.
    """

    adaptive: bool = False
    adaptive_min_steps: int = 500
    adaptive_window: int = 200
    adaptive_min_improvement: float = 0.01


@dataclass
class RunConfig:
    """A whole run. ``init_from`` starts its models from another run's final weights instead of a fresh
    initialisation: a run directory, one of its checkpoint files, or the Hub repo id of a pushed run (see
    :mod:`cola_train.init_from`); the stages listed here then run from their first step.
    """

    seed: int = 0
    init_from: str | None = None
    stages: list[str] = field(default_factory=lambda: ["pretrain", "warmup", "joint"])
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    pretrain: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    warmup: WarmupConfig = field(default_factory=lambda: WarmupConfig(steps=500))
    joint: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    lam_recon: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    wm_finetune: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))

    def __post_init__(self) -> None:
        validate(self)

    def stage(self, name: str) -> StageConfig:
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build a config from (possibly partial) nested values on top of the defaults; unknown keys are
        errors.
        """
        return _build(cls, values, prefix="", defaults=dataclasses.asdict(cls()))

    @classmethod
    def preset(cls, name: str) -> RunConfig:
        return cls.from_dict(preset_values(name))


def validate(config: RunConfig) -> None:
    """Every field of ``config`` in range and consistent, the model configs included, so a bad value fails
    before anything is collected or written."""
    from cola_train.config_ranges import check_ranges

    for name in config.stages:
        if name not in STAGE_NAMES:
            raise ValueError(
                f"unknown stage {name!r} in stages{_suggest(name, STAGE_NAMES)}; "
                f"valid stages: {', '.join(STAGE_NAMES)}"
            )
    if len(set(config.stages)) != len(config.stages):
        raise ValueError(f"stages lists a stage twice: {config.stages}; each stage runs once per run")
    if config.init_from is not None and not (isinstance(config.init_from, str) and config.init_from.strip()):
        raise ValueError(
            f"init_from must be a run directory, checkpoint file or Hub repo id, got {config.init_from!r}"
        )
    if not config.stages:
        raise ValueError("stages is empty; list at least one of " + ", ".join(STAGE_NAMES))
    check_ranges(config.to_dict(), STAGE_NAMES)
    train = config.train
    if train.micro_batch_size and train.batch_size % train.micro_batch_size:
        raise ValueError(
            f"train.micro_batch_size ({train.micro_batch_size}) must divide train.batch_size "
            f"({train.batch_size}); 0 means one shard per process"
        )
    if train.time_sampling not in ("logit_normal", "uniform"):
        raise ValueError(
            f"train.time_sampling must be 'logit_normal' or 'uniform', got {train.time_sampling!r}"
        )
    if config.model.actions not in ACTION_KINDS:
        raise ValueError(
            f"model.actions must be one of {ACTION_KINDS} (latent: the LAM's codes; real: the dataset's "
            f"actions, the ceiling), got {config.model.actions!r}"
        )
    if config.model.actions == "real":
        from cola_train.real_actions import RealActionConfig

        RealActionConfig(list(config.model.real_action_columns), config.data.frame_skip)
        if "lam_recon" in config.stages:
            raise ValueError(
                "model.actions = 'real' has no LAM to reconstruct with; drop lam_recon from stages"
            )
    if train.strategy not in ("ddp", "fsdp"):
        raise ValueError(f"train.strategy must be 'ddp' or 'fsdp', got {train.strategy!r}")
    if not train.num_context < config.data.clip_length:
        raise ValueError(
            f"train.num_context ({train.num_context}) must be in [1, data.clip_length - 1] "
            f"(clip_length {config.data.clip_length})"
        )
    model_configs(config)


def model_configs(config: RunConfig) -> tuple[LAMConfig, DiTConfig]:
    """The ``(LAMConfig, DiTConfig)`` a run of ``config`` builds, checked against the run's data and
    actions."""
    lam, wm, data = config.model.lam, config.model.wm, config.data
    action_dim = _action_dim(config.model, lam, data)
    for section, value, expected, source in (
        ("lam.frame_size", lam.frame_size, data.frame_size, "data.frame_size"),
        ("wm.frame_size", wm.frame_size, data.frame_size, "data.frame_size"),
        ("wm.channels", wm.channels, lam.channels, "model.lam.channels"),
    ):
        if value != expected:
            raise ValueError(f"model.{section} ({value}) must equal {source} ({expected})")
    if wm.action_dim != action_dim:
        source = (
            f"real actions ({len(config.model.real_action_columns)} columns x frame_skip {data.frame_skip})"
            if config.model.actions == "real"
            else f"the LAM's action_dim (tokens_per_action x code_dim = {lam.action_dim})"
        )
        raise ValueError(f"model.wm.action_dim ({wm.action_dim}) must equal {source}: {action_dim}")
    if wm.num_frames < data.clip_length:
        raise ValueError(
            f"model.wm.num_frames ({wm.num_frames}) must hold a clip of data.clip_length "
            f"({data.clip_length}) frames"
        )
    return lam, wm


def _action_dim(model: ModelConfig, lam: LAMConfig, data: DataConfig) -> int:
    if model.actions == "real":
        from cola_train.real_actions import RealActionConfig

        return RealActionConfig(list(model.real_action_columns), data.frame_skip).action_dim
    return lam.action_dim


# The model configs under [model]: each a preset whose fields the section's keys override.
MODEL_PARTS: dict[str, type] = {"lam": LAMConfig, "wm": DiTConfig}


def _build_model(values: Any, data: DataConfig, defaults: dict[str, Any]) -> ModelConfig:
    """``[model]`` on top of the defaults: the presets, their overrides and the fields following the run."""
    if not isinstance(values, dict):
        raise ValueError(f"config section model must be a table, got {values!r}")
    parts = {name: values.get(name, {}) for name in MODEL_PARTS}
    for name, part in parts.items():
        if not isinstance(part, dict):
            raise ValueError(f"config section model.{name} must be a table, got {part!r}")
        _check_keys(f"model.{name}", part, MODEL_PARTS[name])
    rest = {key: value for key, value in values.items() if key not in MODEL_PARTS}
    model = _build(ModelConfig, rest, "model.", defaults)
    lam_overrides = _coerce_fields("model.lam", parts["lam"], LAMConfig)
    lam = LAMConfig.preset(model.lam_preset, **{"frame_size": data.frame_size, **lam_overrides})
    follows_run = {
        "frame_size": data.frame_size,
        "channels": lam.channels,
        "action_dim": _action_dim(model, lam, data),
        "num_frames": max(DiTConfig.preset(model.wm_preset).num_frames, data.clip_length),
    }
    wm_overrides = _coerce_fields("model.wm", parts["wm"], DiTConfig)
    wm = DiTConfig.preset(model.wm_preset, **{**follows_run, **wm_overrides})
    return dataclasses.replace(model, lam=lam, wm=wm)


def _coerce_fields(section: str, values: dict[str, Any], config_class: type) -> dict[str, Any]:
    return {
        key: _coerce(value, _field_type(config_class, key), f"{section}.{key}")
        for key, value in values.items()
    }


def _check_keys(section: str, values: dict[str, Any], config_class: type) -> None:
    valid = {f.name for f in dataclasses.fields(config_class)}
    for key in values:
        if key not in valid:
            raise ValueError(
                f"unknown config key {section}.{key!r}{_suggest(key, valid)}; "
                f"valid keys: {', '.join(sorted(valid))}"
            )


def _suggest(name: str, choices: Any) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def build_section(cls: type, values: Any, prefix: str = "") -> Any:
    """A ``cls`` dataclass from (possibly partial) nested ``values`` on top of its defaults, checked as a
    RunConfig is: unknown keys are errors naming the closest valid one, values must have the fields' types."""
    return _build(cls, values, prefix, dataclasses.asdict(cls()))


def _build(cls: type, values: Any, prefix: str, defaults: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"config section {prefix.rstrip('.') or '<root>'} must be a table, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in values:
        if key not in fields:
            raise ValueError(
                f"unknown config key {prefix + key!r}{_suggest(key, fields)}; "
                f"valid keys here: {', '.join(sorted(fields))}"
            )
    kwargs: dict[str, Any] = {}
    for key in fields:
        kind = _field_type(cls, key)
        if kind is ModelConfig:
            kwargs[key] = _build_model(values.get(key, {}), kwargs["data"], defaults[key])
        elif dataclasses.is_dataclass(kind):
            kwargs[key] = _build(kind, values.get(key, {}), prefix + key + ".", defaults[key])
        elif key in values:
            kwargs[key] = _coerce(values[key], kind, prefix + key)
        else:
            kwargs[key] = copy.deepcopy(defaults[key])
    return cls(**kwargs)


def _field_type(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls)[name]


def _coerce(value: Any, kind: Any, key: str) -> Any:
    import typing

    origin = typing.get_origin(kind) or kind
    if origin is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    expected = {int: int, float: float, str: str, bool: bool, list: list, dict: dict}.get(origin)
    if expected is None:
        return value
    ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
    if not ok:
        raise ValueError(
            f"config key {key!r} expects {expected.__name__}, got {value!r} ({type(value).__name__})"
        )
    return value


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, preset: str | None = None
) -> RunConfig:
    """A config from a preset (default: the built-in defaults), then a TOML/YAML file, then ``key=value``
    overrides.
    """
    values = preset_values(preset) if preset else {}
    if path is not None:
        _merge(values, read_config_file(path))
    for override in overrides or []:
        key, value = parse_override(override)
        _set_path(values, key, value)
    return RunConfig.from_dict(values)


# The run presets: each is the shipped config file configs/<name>.toml.
PRESETS = ("quickstart", "paper")


def preset_values(name: str) -> dict[str, Any]:
    """The settings of the run preset ``name``, read from its shipped TOML file."""
    if name not in PRESETS:
        raise ValueError(
            f"unknown run preset {name!r}{_suggest(name, PRESETS)}; choose one of {sorted(PRESETS)}"
        )
    path = _shipped_config(f"{name}.toml")
    if path is None:
        raise ValueError(f"the preset {name!r} has no shipped file configs/{name}.toml; reinstall cola-train")
    return read_config_file(path)


def shipped_configs() -> list[str]:
    """The config files shipped inside cola_train (configs/ of the repository links to them)."""
    return sorted(f.name for f in resources.files("cola_train").joinpath("configs").iterdir() if f.is_file())


def _shipped_config(name: str) -> Path | None:
    """The shipped config `name`, `name.toml` or `name.yaml`, so `--config two-stage.yaml` (or
    `configs/two-stage.yaml`) works from an installed wheel, where there is no configs/ folder."""
    folder = resources.files("cola_train").joinpath("configs")
    for candidate in (name, f"{name}.toml", f"{name}.yaml"):
        if folder.joinpath(candidate).is_file():
            return Path(str(folder.joinpath(candidate)))
    return None


def read_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        shipped = _shipped_config(path.name)
        if shipped is None:
            raise ValueError(
                f"config file {path} does not exist; pass a TOML or YAML file or the name of a shipped one "
                f"({', '.join(shipped_configs())})"
            )
        path = shipped
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            values = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text) or {}
        elif path.suffix == ".json":
            values = json.loads(text)
        else:
            raise ValueError(f"config file {path} must end in .toml, .yaml, .yml or .json")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"config file {path} is not valid: {error}") from error
    except Exception as error:
        if type(error).__module__.startswith("yaml"):
            raise ValueError(f"config file {path} is not valid YAML: {error}") from error
        raise
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must hold a table of settings, got {type(values).__name__}")
    return values


def parse_override(text: str) -> tuple[str, Any]:
    """``"optim.lr_dit=1e-4"`` -> ``("optim.lr_dit", 1e-4)``; values parse as TOML, else stay strings."""
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like key.sub=value (e.g. optim.lr_dit=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ValueError(f"override {text!r} has no key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def _set_path(values: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node: Any = values
    cls: Any = RunConfig
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if cls is not None:
            fields = {f.name for f in dataclasses.fields(cls)}
            if part not in fields:
                where = ".".join(parts[:depth]) or "<root>"
                raise ValueError(
                    f"unknown config key {dotted!r}: {where} has no {part!r}"
                    f"{_suggest(part, fields)}; valid keys there: {', '.join(sorted(fields))}"
                )
            kind = _field_type(cls, part)
            cls = kind if dataclasses.is_dataclass(kind) and kind not in MODEL_PARTS.values() else None
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot set {dotted!r}: {'.'.join(parts[: depth + 1])} is not a table")


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


# Keys that change how fast a run goes, not what it computes: a run resumes under other values (a user whose
# machine got busy restarts with --threads 1).
SPEED_KEYS = frozenset({"train.threads"})


def config_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable ``key: saved -> current`` lines for every key whose value differs (but the
    :data:`SPEED_KEYS`)."""
    old, new = flatten(saved), flatten(current)
    return [
        f"{key}: {old.get(key, '<unset>')!r} -> {new.get(key, '<unset>')!r}"
        for key in sorted(set(old) | set(new))
        if key not in SPEED_KEYS and old.get(key, "<unset>") != new.get(key, "<unset>")
    ]
