import json

import pytest
import torch
from safetensors import safe_open

from diffusegae import build_model, load_checkpoint, preset, save_checkpoint
from diffusegae.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_latent_stats, read_config


def test_round_trip_is_exact(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path / "ck", info={"note": "test"})
    loaded = load_checkpoint(tmp_path / "ck")
    assert loaded.cfg == tiny_model.cfg
    assert not loaded.training
    for (k, a), (_, b) in zip(tiny_model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    assert json.loads((tmp_path / "ck" / CONFIG_FILE).read_text())["info"] == {"note": "test"}


def test_files_are_json_and_safetensors_only(tmp_path, tiny_model):
    save_checkpoint(
        tiny_model, tmp_path, latent_stats={"conds_mean": torch.zeros(512), "conds_std": torch.ones(512)}
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        CONFIG_FILE,
        "latent_stats.safetensors",
        WEIGHTS_FILE,
    ]
    with safe_open(str(tmp_path / WEIGHTS_FILE), "pt") as f:  # the weights carry their own config
        assert json.loads(f.metadata()["config"])["name"] == "tiny32"
    assert set(load_latent_stats(tmp_path)) == {"conds_mean", "conds_std"}


def test_fp16_checkpoint_loads_as_float32(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path, dtype=torch.float16)
    size16 = (tmp_path / WEIGHTS_FILE).stat().st_size
    loaded = load_checkpoint(tmp_path)
    assert all(p.dtype == torch.float32 for p in loaded.parameters())
    w = tiny_model.unet.out[2].weight
    torch.testing.assert_close(loaded.unet.out[2].weight, w.half().float())
    n = sum(p.numel() for p in tiny_model.parameters())
    assert size16 < n * 2 + 200_000


def test_mismatched_weights_are_refused(tmp_path, tiny_model):
    save_checkpoint(tiny_model, tmp_path)
    cfg = json.loads((tmp_path / CONFIG_FILE).read_text())
    cfg["model"]["unet"]["model_channels"] = 64
    (tmp_path / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(RuntimeError, match="size mismatch"):
        load_checkpoint(tmp_path)


def test_missing_directory_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json"):
        read_config(tmp_path)


def test_plain_diffae_checkpoint_has_no_gae(tmp_path):
    small = preset("diffae64")
    model = build_model(small, device="meta")
    assert model.gae is None and small.kind == "diffae"
