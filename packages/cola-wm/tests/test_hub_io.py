"""from_pretrained of the world model is strict and checksummed (the issue's final_layer.linear.bias case)."""

from pathlib import Path

import pytest
from cola_wm import ActionConditionedDiT, DiTConfig
from safetensors.torch import load_file, save_file


def _saved(tmp_path: Path) -> Path:
    config = DiTConfig.preset("tiny", width=32, depth=1, heads=2, action_heads=2, time_embed_dim=32)
    ActionConditionedDiT(config).save_pretrained(tmp_path / "wm")
    return tmp_path / "wm"


def test_a_removed_bias_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    del state["final_layer.linear.bias"]
    save_file(state, str(folder / "model.safetensors"))
    (folder / "checksums.json").unlink()
    with pytest.raises(ValueError, match=r"missing keys \['final_layer.linear.bias'\]"):
        ActionConditionedDiT.from_pretrained(folder)


def test_flipped_bytes_are_an_error_naming_the_file(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-4] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} is corrupt"):
        ActionConditionedDiT.from_pretrained(folder)
