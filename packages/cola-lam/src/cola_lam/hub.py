"""``from_pretrained(..., subfolder=NAME)`` for the Hub mixin, which has no such argument: a cola-train run
pushed with ``--push-to-hub`` keeps each model in its own folder (``models/lam``, ``models/wm``, ...).

cola_wm uses it too (cola-wm depends on cola-lam).
"""

from pathlib import Path
from typing import Any

from huggingface_hub import PyTorchModelHubMixin, snapshot_download

_HUB_OPTIONS = ("revision", "cache_dir", "force_download", "local_files_only", "token")


def subfolder_path(repo_or_dir: str | Path, subfolder: str, **hub_options: Any) -> Path:
    """The local folder ``subfolder`` of a directory or Hub repo (only that folder is downloaded); a pushed
    run's ``models/{subfolder}`` is found too, so ``subfolder="wm"`` works on a run repo."""
    candidates = (subfolder.strip("/"), f"models/{subfolder.strip('/')}")
    if Path(repo_or_dir).is_dir():
        root = Path(repo_or_dir)
    else:
        patterns = [f"{folder}/*" for folder in candidates]
        root = Path(snapshot_download(str(repo_or_dir), allow_patterns=patterns, **hub_options))
    for folder in candidates:
        if (root / folder / "config.json").is_file():
            return root / folder
    raise ValueError(
        f"{repo_or_dir} has no model folder {candidates[0]!r} or {candidates[1]!r} with a config.json"
    )


class SubfolderHubMixin(PyTorchModelHubMixin):
    """PyTorchModelHubMixin whose ``from_pretrained`` also takes ``subfolder=``."""

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, *, subfolder: str | None = None, **kwargs: Any
    ) -> Any:
        source = pretrained_model_name_or_path
        if subfolder is not None:
            options = {k: kwargs[k] for k in _HUB_OPTIONS if kwargs.get(k) is not None}
            source = subfolder_path(source, subfolder, **options)
        return super().from_pretrained(source, **kwargs)
