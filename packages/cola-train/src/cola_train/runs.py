"""Loading a finished run (a local run directory or a Hub repo pushed with ``--push-to-hub``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from cola_train.run_files import read_json


@dataclass
class TrainedRun:
    """A trained run: its config, the LAM, the world model (EMA weights) and where its data was."""

    config: dict[str, Any]
    lam: nn.Module | None
    wm: nn.Module
    dataset_path: Path | None
    clip_length: int
    run_dir: Path
    lam_decoder: nn.Module | None = None
    # Runs on real actions (model.actions = "real") have this encoder and no LAM.
    real_actions: nn.Module | None = None


def load_trained(run_dir_or_hub_id: str | Path) -> TrainedRun:
    """Load RUN/models/{lam,wm[,lam_decoder]} and RUN/config.json from a run directory or a Hub repo id."""
    from cola_lam import LAMDecoder, LatentActionModel
    from cola_wm import ActionConditionedDiT

    run_dir = _locate(run_dir_or_hub_id)
    config_file = run_dir / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{run_dir} has no config.json; it is not a cola-train run directory")
    config = read_json(config_file, "the run's config")
    models = run_dir / "models"
    real = config.get("model", {}).get("actions", "latent") == "real"
    required = ("real_actions", "wm") if real else ("lam", "wm")
    missing = [name for name in required if not (models / name / "config.json").is_file()]
    if missing:
        raise ValueError(
            f"run {run_dir} has no saved {' or '.join(missing)} model under {models}; the run did not "
            "finish. Resume it with `cola-train run --config RUN/config.json --out RUN --resume`"
        )
    lam = None if real else _load_model(LatentActionModel, models / "lam")
    wm = _load_model(ActionConditionedDiT, models / "wm")
    real_actions = None
    if real:
        from cola_train.real_actions import RealActionEncoder

        real_actions = _load_model(RealActionEncoder, models / "real_actions")
    decoder = (
        _load_model(LAMDecoder, models / "lam_decoder")
        if (models / "lam_decoder" / "config.json").is_file()
        else None
    )
    data = config.get("data", {})
    path = Path(data["path"]) if data.get("path") else None
    return TrainedRun(
        config=config,
        lam=lam,
        wm=wm,
        dataset_path=path if path and path.exists() else None,
        clip_length=int(data.get("clip_length", 0)),
        run_dir=run_dir,
        lam_decoder=decoder,
        real_actions=real_actions,
    )


def _load_model(model_class: Any, directory: Path) -> nn.Module:
    """A ``save_pretrained`` folder (config.json + safetensors weights) -> the model, eval mode, CPU."""
    try:
        model = model_class.from_pretrained(directory, map_location="cpu")
    except Exception as error:
        raise ValueError(
            f"cannot load {model_class.__name__} from {directory} ({type(error).__name__}: {error}); the "
            "folder must hold the config.json and model.safetensors written by save_pretrained"
        ) from error
    return model.eval()


def _locate(run_dir_or_hub_id: str | Path) -> Path:
    path = Path(run_dir_or_hub_id)
    if path.exists():
        return path.resolve()
    return download_run(str(run_dir_or_hub_id), f"run {str(run_dir_or_hub_id)!r}")


def download_run(repo_id: str, what: str) -> Path:
    """The local snapshot of a run pushed to the Hub as ``repo_id`` (owner/name); ValueError naming ``what``
    when that is no repo id or the download fails."""
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/", "~")):
        raise ValueError(
            f"{what} does not exist and is neither an existing run directory nor a Hub repo id (owner/name); "
            "pass a cola-train run directory or the repo id of a run pushed with --push-to-hub"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=repo_id))
    except Exception as error:
        raise ValueError(
            f"{what} is not a local run directory and the Hub download failed "
            f"({type(error).__name__}: {error})"
        ) from error
