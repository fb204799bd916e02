"""A run pushed with --push-to-hub loads back from its repo id: `load_trained("ORG/NAME")` and each model's
`from_pretrained("ORG/NAME", subfolder=...)`, tested offline against a Hub cache laid out as `hf download`
leaves it (blobs named by hash, snapshot files linking to them, refs/main naming the commit)."""

import hashlib
import shutil
import sys
from pathlib import Path

import huggingface_hub
import huggingface_hub.constants
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from cola_lam import LAMDecoder, LatentActionModel
from cola_train import load_trained, pipeline
from cola_wm import ActionConditionedDiT
from engine_helpers import MovingSquares, tiny_config

REPO = "me/cola-pusht"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run directory, Hub cache) of a tiny run pushed to REPO; the cache holds just what was uploaded."""
    root = tmp_path_factory.mktemp("hub")
    uploads = []

    class FakeApi:
        def create_repo(self, repo_id: str, exist_ok: bool) -> None:
            pass

        def upload_folder(self, folder_path: str, repo_id: str, ignore_patterns: list[str]) -> None:
            uploads.append((Path(folder_path), repo_id, ignore_patterns))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub, "HfApi", FakeApi)
        config = tiny_config(stages=["pretrain", "lam_recon"], pretrain={"steps": 1}, lam_recon={"steps": 1})
        run_dir = pipeline.train(config, root / "run", data=MovingSquares(), push_to_hub=REPO)
    [(folder, repo_id, ignore)] = uploads
    assert repo_id == REPO and ignore == ["checkpoints/*", "tensorboard/*"]
    repo = root / "cache" / f"models--{REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    (repo / "blobs").mkdir()
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if not file.is_file() or relative.parts[0] in ("checkpoints", "tensorboard"):
            continue
        blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, blob)
        link = repo / "snapshots" / COMMIT / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(*[".."] * len(relative.parts)) / ".." / "blobs" / blob.name)
    return run_dir, root / "cache"


@pytest.fixture
def offline(pushed: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(pushed[1]))
    return pushed[0]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_trained_takes_the_repo_id(offline: Path) -> None:
    local, hub = load_trained(offline), load_trained(REPO)
    assert hub.config == local.config and hub.run_dir != local.run_dir
    assert _same_weights(hub.wm, local.wm) and _same_weights(hub.lam, local.lam)
    assert _same_weights(hub.lam_decoder, local.lam_decoder)


def test_each_model_loads_from_the_repo_with_subfolder(offline: Path) -> None:
    local = load_trained(offline)
    assert _same_weights(ActionConditionedDiT.from_pretrained(REPO, subfolder="wm"), local.wm)
    assert _same_weights(ActionConditionedDiT.from_pretrained(REPO, subfolder="models/wm"), local.wm)
    assert _same_weights(LatentActionModel.from_pretrained(REPO, subfolder="lam"), local.lam)
    assert _same_weights(LAMDecoder.from_pretrained(REPO, subfolder="lam_decoder"), local.lam_decoder)
    # A local run directory takes subfolder= too.
    assert _same_weights(ActionConditionedDiT.from_pretrained(offline, subfolder="wm"), local.wm)
    with pytest.raises(ValueError, match="no model folder 'policy'"):
        ActionConditionedDiT.from_pretrained(REPO, subfolder="policy")


def test_push_writes_model_cards(offline: Path) -> None:
    card = (offline / "README.md").read_text()
    for expected in (
        "library_name: cola-train",
        "license: mit",
        "arxiv:2510.26433",
        "https://arxiv.org/abs/2510.26433",
    ):
        assert expected in card
    assert f'load_trained("{REPO}")' in card and 'subfolder="wm"' in card
    assert "| pretrain | 1 |" in card and "| lam_recon | 1 |" in card  # measured: steps, final loss, metrics
    assert '"stages": [\n    "pretrain",\n    "lam_recon"\n  ]' in card  # the training config
    wm_card = (offline / "models" / "wm" / "README.md").read_text()
    assert "library_name: cola-wm" in wm_card and "license: mit" in wm_card and "arxiv:2510.26433" in wm_card
