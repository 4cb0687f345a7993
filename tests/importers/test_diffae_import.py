"""Official Diff-AE checkpoints: import, then parity with outputs of phizaz/diffae's own code.

reference.safetensors holds what the official model and sampler computed (see reference.py); here the same
weights go through a Lightning last.ckpt, `diffusegae import-diffae` and our pipeline.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusegae import diffae_import
from diffusegae.checkpoint import load_directions, load_latent_stats, read_config
from diffusegae.cli import main
from diffusegae.config import preset
from diffusegae.diffae_import import DiffAEImportError, import_diffae, infer_config
from diffusegae.engines.base import NoGAEError
from diffusegae.engines.pipeline import load_pipeline
from diffusegae.models import build_model
from tests.importers import reference as ref

SINGLE_CALL_TOL = 1e-4  # eps, z_sem, the moved code
SAMPLED_TOL = 1e-3  # x_T and decoded images after S = 10 DDIM steps


@pytest.fixture(scope="module")
def official():
    outputs, _ = ref.load_reference()
    return outputs


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("diffae")
    ckpt = ref.lightning_checkpoint(root / "last.ckpt")
    cls = ref.classifier_checkpoint(root / "cls.ckpt")
    out = root / "imported"
    assert main(["import-diffae", str(ckpt), "--out", str(out), "--classifier", str(cls)]) == 0
    return out


@pytest.fixture(scope="module")
def pipe(imported):
    return load_pipeline(imported, engine="torch")


def max_err(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


def test_encode_and_eps_match_official(pipe, official):
    x = ref.inputs()
    assert max_err(pipe.encode(x["x0"]), official["z_sem"]) <= SINGLE_CALL_TOL
    assert max_err(pipe.engine.eps(x["x_t"], x["t"], x["z"]), official["eps"]) <= SINGLE_CALL_TOL


def test_invert_and_decode_match_official(pipe, official):
    x0 = ref.inputs()["x0"]
    z = pipe.encode(x0)
    x_T = pipe.invert(x0, z, steps=ref.STEPS)
    assert max_err(x_T, official["x_T"]) <= SAMPLED_TOL
    assert max_err(pipe.decode(x_T, z, steps=ref.STEPS), official["decoded"]) <= SAMPLED_TOL


def test_manipulate_matches_official(pipe, official):
    z = pipe.encode(ref.inputs()["x0"])
    moved = pipe.manipulate(z, ref.DIRECTION, ref.AMP)
    assert max_err(moved, official["z_manipulated"]) <= SINGLE_CALL_TOL
    by_name = pipe.manipulate(z, diffae_import.CELEBA_ATTRIBUTES[ref.DIRECTION], ref.AMP)
    np.testing.assert_array_equal(by_name, moved)
    out = pipe.decode(official["x_T"], moved, steps=ref.STEPS)
    assert max_err(out, official["manipulated"]) <= SAMPLED_TOL


def test_interpolate_matches_official(pipe, official):
    x0 = ref.inputs()["x0"]
    got = pipe.interpolate(x0[:1], x0[1:2], ref.ALPHA, steps=ref.STEPS)
    assert max_err(got, official["interpolated"]) <= SAMPLED_TOL


def test_onnxruntime_engine_matches_official(imported, official):
    ort = load_pipeline(imported, engine="onnxruntime", threads=1)
    x = ref.inputs()
    assert max_err(ort.encode(x["x0"]), official["z_sem"]) <= SINGLE_CALL_TOL
    assert max_err(ort.engine.eps(x["x_t"], x["t"], x["z"]), official["eps"]) <= SINGLE_CALL_TOL


def test_imported_checkpoint_is_plain_diffae_with_stats_and_directions(imported, pipe):
    cfg = read_config(imported)
    assert cfg.kind == "diffae" and cfg.gae is None
    assert cfg.image_size == ref.OFFICIAL_CONFIG["image_size"]  # from x_T
    assert cfg.unet.channel_mult == ref.OFFICIAL_CONFIG["channel_mult"]
    assert cfg.unet.num_res_blocks == ref.OFFICIAL_CONFIG["num_res_blocks"]
    assert cfg.unet.attention_resolutions == ref.OFFICIAL_CONFIG["attention_resolutions"]
    assert cfg.encoder.channel_mult == ref.OFFICIAL_CONFIG["enc_channel_mult"]
    assert cfg.encoder.num_res_blocks == ref.OFFICIAL_CONFIG["enc_num_res_block"]
    stats = load_latent_stats(imported)
    np.testing.assert_array_equal(stats["conds_mean"].numpy(), ref.classifier()["conds_mean"][0])
    directions = load_directions(imported)
    assert directions.names == diffae_import.CELEBA_ATTRIBUTES
    np.testing.assert_array_equal(directions.weight, ref.classifier()["classifier.weight"])
    with pytest.raises(NoGAEError, match="plain Diff-AE"):
        pipe.edit(ref.inputs()["x0"], ref.inputs()["x0"], swap=["background"])


def test_interpolate_on_plain_diffae_lerps_codes_and_slerps_noise(pipe):
    x0 = ref.inputs()["x0"]
    a, b = x0[:1], x0[1:2]
    # a and b run as one batch here, alone in reconstruct: sampled tolerance
    for alpha, end in ((0.0, a), (1.0, b)):
        want = pipe.reconstruct(end, steps=ref.STEPS)
        assert max_err(pipe.interpolate(a, b, alpha, steps=ref.STEPS), want) <= SAMPLED_TOL


def test_model_weights_are_selectable(tmp_path, official):
    ckpt = ref.lightning_checkpoint(tmp_path / "last.ckpt")
    out = import_diffae(ckpt, tmp_path / "raw", weights="model")
    x = ref.inputs()
    raw = load_pipeline(out).engine.eps(x["x_t"], x["t"], x["z"])
    assert max_err(raw, official["eps"]) > 1e-2  # the halved copy, not the EMA weights
    assert load_directions(out) is None


def test_image_size_without_hints_follows_the_templates(tmp_path):
    # No x_T and no hyper-parameters: the templates' attention at 16×16 sets the size (here 32, as the
    # reference puts attention one level down); --image-size or the hyper-parameters override it.
    ckpt = ref.lightning_checkpoint(tmp_path / "bare.ckpt", x_t=False)
    assert read_config(import_diffae(ckpt, tmp_path / "a")).image_size == 32
    assert read_config(import_diffae(ckpt, tmp_path / "b", image_size=16)).image_size == 16
    hp = ref.lightning_checkpoint(tmp_path / "hp.ckpt", x_t=False, hyper_parameters={"img_size": 16})
    assert read_config(import_diffae(hp, tmp_path / "c")).image_size == 16


def test_the_official_schedule_is_carried_and_others_refused_by_name(tmp_path):
    default = read_config(import_diffae(ref.lightning_checkpoint(tmp_path / "a.ckpt"), tmp_path / "a"))
    assert (default.diffusion.num_timesteps, default.diffusion.beta_start, default.diffusion.beta_end) == (
        1000,
        1e-4,
        0.02,
    )
    # Diff-AE's "linear" for T steps is Ho et al.'s stretched by 1000/T (get_named_beta_schedule)
    hp = {"beta_scheduler": "linear", "T": 500, "model_mean_type": "ModelMeanType.eps"}
    half = read_config(
        import_diffae(ref.lightning_checkpoint(tmp_path / "b.ckpt", hyper_parameters=hp), tmp_path / "b")
    )
    assert half.diffusion.num_timesteps == 500
    assert half.diffusion.beta_start == pytest.approx(2e-4) and half.diffusion.beta_end == pytest.approx(0.04)
    cosine = ref.lightning_checkpoint(tmp_path / "c.ckpt", hyper_parameters={"beta_scheduler": "cosine"})
    with pytest.raises(DiffAEImportError, match="the 'cosine' beta schedule; diffusegae implements"):
        import_diffae(cosine, tmp_path / "c")
    x0_model = ref.lightning_checkpoint(tmp_path / "d.ckpt", hyper_parameters={"model_mean_type": "start_x"})
    with pytest.raises(DiffAEImportError, match="predicts 'start_x'"):
        import_diffae(x0_model, tmp_path / "d")
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()


@pytest.mark.parametrize("name", ["diffae64", "diffae128", "diffae256"])
def test_templates_are_inferred_from_their_keys(name):
    cfg = preset(name)
    shapes = {
        k.removeprefix("unet."): torch.empty(v.shape, device="meta")
        for k, v in build_model(cfg, device="meta").state_dict().items()
    }
    inferred = infer_config(shapes, name=name)  # image size from the 16×16 attention convention
    assert inferred.unet == cfg.unet.__class__(**{**cfg.unet.__dict__, "dropout": inferred.unet.dropout})
    assert inferred.encoder == cfg.encoder and inferred.image_size == cfg.image_size


def test_preset_mismatch_names_the_differences(tmp_path):
    ckpt = ref.lightning_checkpoint(tmp_path / "last.ckpt")
    with pytest.raises(DiffAEImportError, match="does not match preset 'diffae64': missing encoder"):
        import_diffae(ckpt, tmp_path / "out", preset_name="diffae64")
    assert not (tmp_path / "out").exists()


class Payload:
    def __reduce__(self):  # what an attacker's pickle would do on load
        return (print, ("pwned",))


def test_refuses_pickled_objects_and_wrong_files(tmp_path, capsys):
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "callback": Payload()}, evil)
    with pytest.raises(DiffAEImportError, match=r"weights_only=True.*it pickles builtins\.print"):
        import_diffae(evil, tmp_path / "out")
    assert "pwned" not in capsys.readouterr().out
    not_diffae = tmp_path / "unet.ckpt"
    torch.save({"state_dict": {"model.input_blocks.0.0.weight": torch.zeros(1)}}, not_diffae)
    with pytest.raises(DiffAEImportError, match="no 'ema_model"):
        import_diffae(not_diffae, tmp_path / "out")
    assert main(["import-diffae", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_manipulate_needs_directions(tmp_path):
    ckpt = ref.lightning_checkpoint(tmp_path / "last.ckpt")
    pipe = load_pipeline(import_diffae(ckpt, tmp_path / "out"))
    with pytest.raises(ValueError, match="--classifier"):
        pipe.manipulate(np.zeros((1, 512), np.float32), 0, 0.3)
