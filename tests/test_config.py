import json

import pytest
import torch

from diffusegae import build_model, preset
from diffusegae.config import PRESETS, ModelConfig

# Official Diff-AE templates (ffhq64/128/256_autoenc): UNet + semantic encoder, no latent net.
OFFICIAL = {
    "diffae64": (90_839_235, 506),
    "diffae128": (128_545_155, 608),
    "diffae256": (168_492_291, 706),
}


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_official_parameter_and_key_counts(name):
    model = build_model(preset(name), device="meta")
    params, keys = OFFICIAL[name]
    assert model.gae is None
    assert sum(p.numel() for p in model.parameters()) == params
    assert len(model.unet.state_dict()) + len(model.encoder.state_dict()) == keys


def test_official_state_dict_names():
    model = build_model(preset("diffae64"), device="meta")
    keys = set(model.unet.state_dict()) | {f"encoder.{k}" for k in model.encoder.state_dict()}
    for key in [
        "time_embed.time_embed.0.weight",
        "input_blocks.0.0.weight",
        "input_blocks.1.0.in_layers.2.weight",
        "input_blocks.1.0.emb_layers.1.weight",
        "input_blocks.1.0.cond_emb_layers.1.weight",
        "input_blocks.1.0.out_layers.3.weight",
        "input_blocks.4.0.skip_connection.weight",
        "middle_block.1.qkv.weight",
        "output_blocks.0.0.skip_connection.weight",
        "out.2.weight",
        "encoder.out.3.weight",
        "encoder.middle_block.1.proj_out.weight",
    ]:
        assert key in keys, key
    cond = model.unet.state_dict()["input_blocks.1.0.cond_emb_layers.1.weight"]
    assert tuple(cond.shape) == (64, 512)  # Diff-AE "scale" mode: Linear(512 → C)


def test_scale_shift_mode_doubles_the_z_projection():
    model = build_model(preset("tiny32"), device="meta")
    cond = model.unet.state_dict()["input_blocks.1.0.cond_emb_layers.1.weight"]
    assert tuple(cond.shape) == (64, 512)  # DiffuseGAE Eq. 8: Linear(512 → 2C) for C = 32


def test_shipped_preset_fits_one_16_mib_fp16_file():
    n = sum(p.numel() for p in build_model(preset("synth64"), device="meta").parameters())
    assert n >= 5e6 and n * 2 <= 16 * 2**20


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match=r"tiny32.*synth64"):
        preset("nope")


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_config_json_round_trip(name):
    cfg = preset(name)
    assert ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_config_rejects_unknown_fields_and_modes():
    data = preset("tiny32").to_dict()
    data["unet"]["bogus"] = 1
    with pytest.raises(ValueError, match="bogus"):
        ModelConfig.from_dict(data)
    data = preset("tiny32").to_dict()
    data["unet"]["adagn_mode"] = "shift"
    with pytest.raises(ValueError, match="scale_shift"):
        ModelConfig.from_dict(data)


def test_gae_chunks_are_named():
    gae = preset("synth64").gae
    assert gae.attribute_names == ("identity", "background", "pose")
    assert gae.z_dis_channels == 100
    assert (gae.chunk("identity"), gae.chunk("background"), gae.chunk("pose")) == (
        slice(0, 60),
        slice(60, 80),
        slice(80, 100),
    )
    with pytest.raises(ValueError, match="identity, background, pose"):
        gae.chunk("colour")


def test_build_model_is_seeded_and_on_cpu():
    torch.manual_seed(1)
    a = build_model(preset("tiny32"))
    torch.manual_seed(1)
    b = build_model(preset("tiny32"))
    for (ka, va), (_, vb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(va, vb), ka
