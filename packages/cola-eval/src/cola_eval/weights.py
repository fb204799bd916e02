"""Finding and loading the pretrained weights of metric networks (I3D for FVD, the LPIPS backbone).

They come, in this order, from a local safetensors file, a Hugging Face Hub repo, or the cache that
`cola-eval weights fetch` fills (cola_eval.weights_fetch; directory `weights_dir()`). When none has them the
metric is reported as unavailable with the reason, never estimated.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

WEIGHTS_DIR_ENV = "COLA_WEIGHTS_DIR"


def weights_dir() -> Path:
    """Where fetched metric weights live: $COLA_WEIGHTS_DIR, else $XDG_CACHE_HOME/cola/weights (default
    ~/.cache/cola/weights)."""
    if os.environ.get(WEIGHTS_DIR_ENV):
        return Path(os.environ[WEIGHTS_DIR_ENV]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "cola" / "weights"


class WeightsUnavailable(RuntimeError):
    """No weights could be had for a pretrained metric network; the message says why and what to do."""


@dataclass(frozen=True)
class WeightsSource:
    """Where a metric network's weights come from: a local file, or a Hub repo + filename.

    Unset fields fall back to environment variables `{env_prefix}_WEIGHTS`, `{env_prefix}_REPO`,
    `{env_prefix}_FILENAME` (e.g. COLA_I3D_WEIGHTS), so the CLI and scripts share one configuration.
    """

    local_path: str | Path | None = None
    repo_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    cache_dir: str | Path | None = None

    def resolved(self, env_prefix: str, default_filename: str) -> WeightsSource:
        return WeightsSource(
            local_path=self.local_path or os.environ.get(f"{env_prefix}_WEIGHTS") or None,
            repo_id=self.repo_id or os.environ.get(f"{env_prefix}_REPO") or None,
            filename=self.filename or os.environ.get(f"{env_prefix}_FILENAME") or default_filename,
            revision=self.revision,
            cache_dir=self.cache_dir,
        )


def resolve_weights_file(source: WeightsSource, what: str, env_prefix: str, default_filename: str) -> Path:
    """The local path of the weights file: the configured file, a download from the configured Hub repo, or
    else the fetched file of that name in weights_dir()."""
    source = source.resolved(env_prefix, default_filename)
    if source.local_path is not None:
        path = Path(source.local_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(
                f"{what} weights file {path} does not exist; pass an existing .safetensors file"
            )
        return path
    if source.repo_id is None:
        fetched = weights_dir() / source.filename
        if fetched.is_file():
            return fetched
        raise WeightsUnavailable(
            f"no {what} weights configured or fetched: run `cola-eval weights fetch` (needs the package "
            f"index; caches {fetched}), or pass a local .safetensors file or a Hugging Face Hub repo id "
            f"(env {env_prefix}_WEIGHTS=FILE or {env_prefix}_REPO=REPO_ID [{env_prefix}_FILENAME=NAME])"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                source.repo_id, source.filename, revision=source.revision, cache_dir=source.cache_dir
            )
        )
    except Exception as err:  # offline, missing repo/file, HTTP errors: all mean "no weights here"
        raise WeightsUnavailable(
            f"could not get {what} weights {source.filename!r} from Hub repo {source.repo_id!r}: "
            f"{type(err).__name__}: {err}"
        ) from err


def load_weights(
    module: nn.Module, path: Path, what: str, rename: Callable[[str], str | None] = lambda key: key
) -> nn.Module:
    """Load a safetensors state dict into `module` strictly; `rename` maps file keys to module keys
    (None drops the key)."""
    if path.suffix != ".safetensors":
        raise ValueError(
            f"{what} weights must be a .safetensors file (pickle checkpoints are not loaded), got {path}"
        )
    try:
        raw = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{what} weights file {path} is not a readable safetensors file: {err}") from err
    state: dict[str, torch.Tensor] = {}
    for key, value in raw.items():
        new_key = rename(key.removeprefix("module."))
        if new_key is not None:
            state[new_key] = value
    expected = module.state_dict()
    for key in expected:
        # Older BatchNorm checkpoints predate this counter; it does not affect eval-mode outputs.
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = expected[key]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or wrong_shape:
        raise ValueError(
            f"{what} weights file {path} does not match the network: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
            f"wrong shapes {wrong_shape[:3]}"
        )
    module.load_state_dict(state)
    return module
