"""A whole run: build the models, load the clips, run the configured stages, save and optionally push models.

The stage functions (:func:`pretrain`, :func:`warmup`, :func:`joint`, :func:`lam_recon`, :func:`wm_finetune`)
run one stage on models and data a caller already holds; :func:`train` runs a configured list of stages in a
run directory with checkpoints, resume and the final ``save_pretrained``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch

from cola_train.checkpoint import latest_checkpoint, load_checkpoint
from cola_train.codebook_placement import fit_real_actions, place_codebook
from cola_train.config import RunConfig, config_differences, model_configs
from cola_train.distributed import DistContext, barrier, full_state_dict, init_distributed
from cola_train.fingerprint import data_fingerprint
from cola_train.init_from import SourceWeights, read_source
from cola_train.loop import StageOutcome, run_stage
from cola_train.model import CoLA
from cola_train.run_files import (
    RunStorageError,
    clean_temporaries,
    read_json,
    storage_error_message,
    write_json_atomic,
)
from cola_train.run_lock import RunLock
from cola_train.session import Session
from cola_train.stage_checkpoint import restore_models

logger = logging.getLogger("cola_train")

DATA_FILE = "data.json"


def build_models(
    config: RunConfig, with_decoder: bool | None = None, init_from: str | Path | None = None
) -> CoLA:
    """LAM and world model (plus the LAMDecoder when a stage needs it) sized by ``config`` (see
    :func:`model_configs`).

    Initialisation is seeded with ``config.seed``. With ``init_from`` (a run directory, one of its checkpoint
    files, or a Hub repo id of a pushed run) the models then take that run's weights: the LAM, the world
    model and, when both have one, the LAM decoder (see :mod:`cola_train.init_from`).
    """
    from cola_lam import LAMDecoder, LatentActionModel
    from cola_wm import ActionConditionedDiT

    lam_config, wm_config = model_configs(config)
    if with_decoder is None:
        with_decoder = "lam_recon" in config.stages
    torch.manual_seed(config.seed)
    lam = LatentActionModel(lam_config)
    wm = ActionConditionedDiT(wm_config)
    decoder = LAMDecoder(lam_config) if with_decoder else None
    real_actions = None
    if config.model.actions == "real":
        from cola_train.real_actions import RealActionConfig, RealActionEncoder

        real_actions = RealActionEncoder(
            RealActionConfig(list(config.model.real_action_columns), config.data.frame_skip)
        )
    models = CoLA(
        lam,
        wm,
        decoder,
        real_actions=real_actions,
        num_context=config.train.num_context,
        time_sampling=config.train.time_sampling,
        time_shift=config.train.time_shift,
        motion_weight=config.train.motion_weight,
        crop_scale_min=config.train.crop_scale_min,
    )
    if init_from is not None:
        read_source(init_from).load_into(models)
    return models


def load_dataset(config: RunConfig) -> Any:
    """The training clips of ``config.data`` (a ``cola_train.data.ClipDataset``)."""
    from cola_train.data import ClipDataset, load_episodes
    from cola_train.data.load import resolve_dataset

    try:
        path = resolve_dataset(config.data.path)
    except ValueError as error:
        raise ValueError(f"{error}; or collect one with `cola-train collect pusht --out DIR`") from error
    if not path.exists():
        raise ValueError(
            f"dataset path {path} does not exist; set data.path to a LeRobot, HDF5 or mp4 dataset, "
            "or collect one with `cola-train collect pusht --out DIR`"
        )
    episodes = load_episodes(path)
    if not episodes:
        raise ValueError(
            f"dataset {path} holds no episodes; collect or point data.path at a non-empty dataset"
        )
    split = config.data.split or None
    dataset = ClipDataset(
        episodes,
        config.data.clip_length,
        frame_skip=config.data.frame_skip,
        size=config.data.frame_size,
        split=split,
    )
    if len(dataset) == 0:
        raise ValueError(
            f"dataset {path} yields no clip of {config.data.clip_length} frames (frame_skip "
            f"{config.data.frame_skip}) in split {split!r}; use shorter clips or more episodes"
        )
    return dataset


def _session(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None) -> Session:
    context = init_distributed(config.train.device)
    models.to(context.device)
    return Session(config=config, models=models, dataset=data, context=context, run_dir=run_dir)


def run_stages(
    config: RunConfig, models: CoLA, data: Any, names: list[str], run_dir: Path | None = None
) -> list[StageOutcome]:
    """Run ``names`` in order on ``models`` (trained in place) with the clips ``data``.

    Without ``run_dir`` nothing is written; with it, metrics and checkpoints go there (under the run
    directory's lock, as :func:`train`). ``models.wm`` keeps the raw weights; use :func:`train` for a run that
    also keeps and saves the EMA weights.
    """
    config = dataclasses.replace(config, stages=list(names))
    session = _session(config, models, data, Path(run_dir) if run_dir else None)
    if session.run_dir is not None:
        session.run_dir.mkdir(parents=True, exist_ok=True)
    locked = session.run_dir is not None and session.context.is_main
    with RunLock(session.run_dir) if locked else contextlib.nullcontext():
        try:
            place_codebook(session, list(names))
            fit_real_actions(session)
            return [run_stage(session, name) for name in names]
        finally:
            session.close()


def pretrain(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None = None) -> StageOutcome:
    """Action-free flow matching of the DiT backbone (a stand-in for a pretrained video model)."""
    return run_stages(config, models, data, ["pretrain"], run_dir)[0]


def warmup(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None = None) -> StageOutcome:
    """DiT backbone frozen; IDM, VQ and the action blocks learn through the flow-matching loss (+ VQ loss)."""
    return run_stages(config, models, data, ["warmup"], run_dir)[0]


def joint(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None = None) -> StageOutcome:
    """Everything trains end to end; the flow-matching loss reaches the LAM (unless the ablations say
    otherwise).
    """
    return run_stages(config, models, data, ["joint"], run_dir)[0]


def lam_recon(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None = None) -> StageOutcome:
    """Two-stage baseline, stage 1: IDM + VQ + LAMDecoder trained to reconstruct the next frame."""
    return run_stages(config, models, data, ["lam_recon"], run_dir)[0]


def wm_finetune(config: RunConfig, models: CoLA, data: Any, run_dir: Path | None = None) -> StageOutcome:
    """Two-stage baseline, stage 2: the LAM frozen, the DiT (with action blocks) trained on its codes."""
    return run_stages(config, models, data, ["wm_finetune"], run_dir)[0]


def train(
    config: RunConfig, out: str | Path, resume: bool = False, data: Any = None, push_to_hub: str | None = None
) -> Path:
    """Run every stage of ``config`` in run directory ``out``; return it.

    ``resume`` continues from the newest checkpoint in ``out`` (the config must be the same). ``data``
    replaces loading ``config.data.path`` (any sequence of dicts with a ``video [T, C, H, W]`` entry).
    With ``config.init_from`` a new run starts from that run's weights (logged as an ``init_from`` event); a
    resumed run continues from its own checkpoint and does not read the source again.

    The main process holds a lock on ``out`` for the whole run (a second process on it gets a ValueError),
    and writes ``config.json`` only once the data and models are ready, so a failed start leaves nothing a
    later run would take for a started one.
    """
    run_dir = Path(out).resolve()
    if data is None and Path(config.data.path).exists():
        # A local dataset is recorded by its absolute path; a Hub dataset id stays as it is.
        config = dataclasses.replace(
            config, data=dataclasses.replace(config.data, path=str(Path(config.data.path).resolve()))
        )
    if config.init_from is not None and Path(config.init_from).expanduser().exists():
        config = dataclasses.replace(config, init_from=str(Path(config.init_from).expanduser().resolve()))
    context = init_distributed(config.train.device)
    # Checked before the lock creates the folder, so a bad --out or source leaves no half-made run behind.
    _check_run_dir(run_dir, config.to_dict(), resume)
    source = _read_source(config, run_dir, resume)
    with RunLock(run_dir) if context.is_main else contextlib.nullcontext():
        return _train_locked(config, run_dir, resume, data, push_to_hub, context, source)


def _read_source(config: RunConfig, run_dir: Path, resume: bool) -> SourceWeights | None:
    """The checked ``init_from`` weights of a run that starts now (a resumed run has its own)."""
    if not config.init_from or (resume and latest_checkpoint(run_dir / "checkpoints") is not None):
        return None
    source = read_source(config.init_from)
    source.check_compatible(*model_configs(config))
    return source


def _train_locked(
    config: RunConfig,
    run_dir: Path,
    resume: bool,
    data: Any,
    push_to_hub: str | None,
    context: DistContext,
    source: SourceWeights | None,
) -> Path:
    resolved = config.to_dict()
    checkpoint_file = latest_checkpoint(run_dir / "checkpoints") if resume else None
    # Again under the lock: another process may have started a run here since the first check.
    _check_run_dir(run_dir, resolved, resume)
    # Every rank checks before the main rank writes: a rank that looked after the write would take this
    # fresh run for an old one and stop.
    barrier(context)
    fingerprint = data_fingerprint(Path(config.data.path)) if data is None and context.is_main else None
    if data is None:
        data = load_dataset(config)
    models = build_models(config)
    session = _session(config, models, data, run_dir)
    if context.is_main and resume:
        clean_temporaries(run_dir)
        session.log.repair()
    first = 0
    if checkpoint_file is not None:
        checkpoint = load_checkpoint(checkpoint_file)
        differences = config_differences(_with_defaults(checkpoint.state["config"]), resolved)
        if differences:
            raise ValueError(_mismatch_message(run_dir, differences))
        restore_models(session, checkpoint)
        first = config.stages.index(checkpoint.state["stage"]) + (1 if checkpoint.state["stage_done"] else 0)
        if context.is_main:
            session.log.truncate_from(
                config.stages.index(checkpoint.state["stage"]), checkpoint.state["step"]
            )
        logger.info(
            "resuming %s from %s (stage %s, step %d)",
            run_dir,
            checkpoint_file,
            checkpoint.state["stage"],
            checkpoint.state["step"],
        )
    else:
        if context.is_main:
            session.log.truncate_from(0, 0)
        if source is not None:
            _initialise(session, source)
    if context.is_main:
        _record_run_files(session, resolved, fingerprint)
    barrier(context)
    try:
        place_codebook(session, config.stages[first:])
        fit_real_actions(session)
        for name in config.stages[first:]:
            outcome = run_stage(session, name)
            session.log.event(
                {
                    "event": "stage_end",
                    "stage": name,
                    "steps": outcome.steps,
                    "final_loss": outcome.final_loss,
                    "ended_early": outcome.ended_early,
                },
                f"stage {name} finished after {outcome.steps} steps (loss {outcome.final_loss})",
            )
        save_models(session, run_dir / "models")
    except OSError as error:
        kept = latest_checkpoint(run_dir / "checkpoints")
        raise RunStorageError(storage_error_message(run_dir, error, kept)) from error
    finally:
        session.close()
    if context.is_main and push_to_hub:
        push_run(run_dir, push_to_hub)
    barrier(context)
    return run_dir


def _check_run_dir(run_dir: Path, resolved: dict[str, Any], resume: bool) -> None:
    config_file = run_dir / "config.json"
    if config_file.exists():
        if not resume:
            raise ValueError(
                f"run directory {run_dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        saved = read_json(config_file, "the run's config")
        differences = config_differences(_with_defaults(saved), resolved)
        if differences:
            raise ValueError(_mismatch_message(run_dir, differences))


def _record_run_files(session: Session, resolved: dict[str, Any], fingerprint: str | None) -> None:
    """Write config.json (then data.json) as the run starts; on resume, warn when the data changed."""
    run_dir = session.run_dir
    data_file = run_dir / DATA_FILE
    fresh = not (run_dir / "config.json").exists()
    if fresh:
        write_json_atomic(run_dir / "config.json", resolved)
    if fingerprint is None:
        return
    if fresh or not data_file.exists():
        write_json_atomic(data_file, {"path": resolved["data"]["path"], "fingerprint": fingerprint})
        return
    saved = read_json(data_file, "the fingerprint of the run's data").get("fingerprint")
    if saved != fingerprint:
        session.log.event(
            {"event": "data_changed", "path": resolved["data"]["path"], "was": saved, "now": fingerprint},
            f"the data at {resolved['data']['path']} changed since this run started (fingerprint "
            f"{str(saved)[:12]} -> {fingerprint[:12]}); the run continues on the data there now",
            level=logging.WARNING,
        )


def _initialise(session: Session, source: SourceWeights) -> None:
    """Load the source's LAM, world model, EMA and (when this run has one) LAM decoder into the session."""
    loaded = source.load_into(session.models)
    session.ema.load_state_dict(source.ema, source.ema_updates)
    session.log.event(
        source.record(loaded), f"initialised {', '.join(loaded)} from {source.location} ({source.kind})"
    )


def _with_defaults(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved config with keys added to RunConfig since it was written set to their defaults."""
    try:
        return RunConfig.from_dict(saved).to_dict()
    except ValueError:
        return saved  # a key this version no longer knows: the comparison names it


def _mismatch_message(run_dir: Path, differences: list[str]) -> str:
    return (
        f"cannot resume {run_dir}: its config differs from this one in {len(differences)} key(s):\n  "
        + "\n  ".join(differences)
        + "\nresume with the same config, or start a new run in another --out directory"
    )


def save_models(session: Session, directory: Path) -> None:
    """``save_pretrained`` the LAM, the EMA world model and (if any) the LAM decoder under ``directory``; a
    run on real actions saves its action encoder (``real_actions``) in place of the LAM, which it never
    trained.

    Every rank must call it (gathering FSDP shards is collective); rank 0 writes fresh unsharded copies.
    """
    models = session.models
    states = {"wm": session.ema.state_dict()}
    if models.real_actions is None:
        states["lam"] = full_state_dict(models.lam)
    else:
        states["real_actions"] = full_state_dict(models.real_actions)
    if models.decoder is not None:
        states["lam_decoder"] = full_state_dict(models.decoder)
    if not session.context.is_main:
        return
    sources = {
        "lam": models.lam,
        "wm": models.wm,
        "lam_decoder": models.decoder,
        "real_actions": models.real_actions,
    }
    for name, state in states.items():
        source = sources[name]
        model = type(source)(source.config)
        model.load_state_dict(state)
        model.save_pretrained(directory / name)


def push_run(run_dir: Path, repo_id: str) -> str:
    """Upload the run (config, metrics, events, models; not the training checkpoints) to the Hub repo, with a
    model card (README.md, also left in the run directory) that says how to load it and what it measured."""
    from huggingface_hub import HfApi

    from cola_train.model_card import model_card

    (run_dir / "README.md").write_text(model_card(run_dir, repo_id))
    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    api.upload_folder(
        folder_path=str(run_dir), repo_id=repo_id, ignore_patterns=["checkpoints/*", "tensorboard/*"]
    )
    logger.info("pushed %s to https://huggingface.co/%s", run_dir, repo_id)
    return repo_id
