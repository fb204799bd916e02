"""The README's "API in ten lines" runs as written, read from README.md so the test fails when either drifts.

The example's last line loads a pushed run's world model from the Hub; here "ORG/NAME" is a local folder
laid out as a pushed run (models/wm), so the test runs offline.
"""

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).parents[3] / "README.md"


def _api_example() -> str:
    if not README.is_file():
        pytest.skip("README.md is not beside this package (installed alone)")
    section = README.read_text().split("## API in ten lines", 1)
    assert len(section) == 2, "README.md has no '## API in ten lines' section"
    block = re.search(r"```python\n(.*?)```", section[1], re.S)
    assert block is not None, "the API section has no python code block"
    return block.group(1)


def test_readme_api_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cola_wm import ActionConditionedDiT, DiTConfig

    code = _api_example()
    assert len(code.strip().splitlines()) <= 12 and '"ORG/NAME"' in code
    pushed = tmp_path / "pushed-run"
    ActionConditionedDiT(DiTConfig.preset("tiny")).save_pretrained(pushed / "models" / "wm")
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    namespace: dict = {}
    exec(compile(code.replace('"ORG/NAME"', repr(str(pushed))), str(README), "exec"), namespace)
    assert namespace["rollout"].shape == namespace["video"].shape
    assert torch.isfinite(namespace["loss"]) and (tmp_path / "lam" / "config.json").is_file()
