"""from_pretrained is strict and checksummed: missing or extra weights and flipped bytes are errors."""

from pathlib import Path

import pytest
import torch
from cola_lam import LAMConfig, LAMDecoder, LatentActionModel
from safetensors.torch import load_file, save_file

SMALL = {"width": 32, "depth": 1, "heads": 2, "decoder_depth": 1, "frame_size": 32, "restart_buffer_size": 64}


def _saved(tmp_path: Path, model_class: type = LatentActionModel) -> Path:
    model = model_class(LAMConfig.preset("tiny", **SMALL))
    model.save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def _edit_weights(folder: Path, edit) -> None:
    """Rewrite model.safetensors with ``edit`` applied, as a careless user would, and drop the manifest so
    only the strictness is under test."""
    state = load_file(str(folder / "model.safetensors"))
    edit(state)
    save_file(state, str(folder / "model.safetensors"))
    (folder / "checksums.json").unlink()


@pytest.mark.parametrize("model_class", [LatentActionModel, LAMDecoder])
def test_a_missing_weight_is_an_error_naming_it(tmp_path: Path, model_class: type) -> None:
    folder = _saved(tmp_path, model_class)
    removed = sorted(load_file(str(folder / "model.safetensors")))[-1]
    _edit_weights(folder, lambda state: state.pop(removed))
    with pytest.raises(ValueError, match=rf"missing keys \['{removed}'\]"):
        model_class.from_pretrained(folder)


def test_an_extra_weight_is_an_error_naming_it(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    _edit_weights(folder, lambda state: state.update({"stray.weight": torch.zeros(2)}))
    with pytest.raises(ValueError, match=r"unexpected keys \['stray.weight'\]"):
        LatentActionModel.from_pretrained(folder)


def test_flipped_bytes_are_an_error_naming_the_file(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the last tensor: the file still parses
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path} is corrupt"):
        LatentActionModel.from_pretrained(folder)


def test_a_clean_save_loads_bit_exactly(tmp_path: Path) -> None:
    folder = _saved(tmp_path)
    loaded = LatentActionModel.from_pretrained(folder)
    saved = load_file(str(folder / "model.safetensors"))
    assert all(torch.equal(loaded.state_dict()[key], value) for key, value in saved.items())
