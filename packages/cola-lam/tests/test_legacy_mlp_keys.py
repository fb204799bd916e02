"""LAM weights saved before the IDM / LAMDecoder and the DiT shared one MLP class (whose layers were then
``fc`` / ``proj``, now ``fc1`` / ``fc2``) still load, strictly, to the same model."""

from pathlib import Path

import pytest
import torch
from cola_lam import LAMConfig, LAMDecoder, LatentActionModel
from cola_lam.blocks import MLP, upgrade_legacy_mlp_keys
from cola_lam.hub_io import write_manifest
from safetensors.torch import load_file, save_file

SMALL = {"width": 32, "depth": 1, "heads": 2, "decoder_depth": 1, "frame_size": 32, "restart_buffer_size": 64}


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with its MLP keys named as before the MLPs were shared."""
    return {
        key.replace(".mlp.fc1.", ".mlp.fc.").replace(".mlp.fc2.", ".mlp.proj."): value
        for key, value in state.items()
    }


def _video() -> torch.Tensor:
    return torch.rand(2, 3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _model(seed: int) -> LatentActionModel:
    torch.manual_seed(seed)
    return LatentActionModel(LAMConfig.preset("tiny", **SMALL)).eval()


def test_the_mlp_layers_are_fc1_and_fc2() -> None:
    mlp = MLP(8, 2.0)
    assert list(mlp.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_a_state_dict_with_the_old_keys_loads_strictly_to_the_same_model() -> None:
    source = _model(0)
    legacy = _legacy(source.state_dict())
    assert any(".mlp.fc." in key for key in legacy) and any(".mlp.proj." in key for key in legacy)
    target = _model(1)
    target.load_state_dict(legacy)  # strict
    assert all(torch.equal(target.state_dict()[k], v) for k, v in source.state_dict().items())
    with torch.no_grad():
        a, b = source(_video()), target(_video())
    assert torch.equal(a.quantized, b.quantized) and torch.equal(a.indices, b.indices)


def test_upgrade_renames_only_mlp_keys_and_keeps_new_ones() -> None:
    model = _model(0)
    state = model.state_dict()
    assert upgrade_legacy_mlp_keys(model, _legacy(state)).keys() == state.keys()
    assert upgrade_legacy_mlp_keys(model, state) == state
    # Attention's own ``proj`` is no MLP layer and keeps its name.
    assert "idm.blocks.0.spatial_attn.proj.weight" in upgrade_legacy_mlp_keys(model, _legacy(state))


@pytest.mark.parametrize("model_class", [LatentActionModel, LAMDecoder])
def test_a_saved_folder_with_the_old_keys_loads_through_from_pretrained(
    tmp_path: Path, model_class: type
) -> None:
    torch.manual_seed(0)
    model = model_class(LAMConfig.preset("tiny", **SMALL)).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    path = folder / "model.safetensors"
    save_file(_legacy(load_file(str(path))), str(path))
    write_manifest(folder, ["model.safetensors"])  # as a file saved with the old keys would have
    assert any(".mlp.proj." in key for key in load_file(str(path)))
    loaded = model_class.from_pretrained(folder)
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
