"""The shipped checkpoint is trained, loads by default, and `diffusegae eval` reproduces its model card."""

import json

import numpy as np
import pytest

from diffusegae import load_pipeline
from diffusegae.data import AttributeDataset
from diffusegae.eval.oracle import OracleSettings
from diffusegae.eval.report import JSON_FILE
from diffusegae.eval.suite import EvalSettings, evaluate
from diffusegae.images import to_model
from diffusegae.paths import SHIPPED_CHECKPOINT

pytestmark = pytest.mark.skipif(
    not (SHIPPED_CHECKPOINT / "model.safetensors").is_file(), reason="no shipped checkpoint in this tree"
)


def _psnr(a, b):
    mse = np.mean(((a + 1) / 2 - (b + 1) / 2) ** 2, axis=(1, 2, 3))
    return 10 * np.log10(1 / mse)


def test_default_pipeline_is_the_shipped_diffusegae():
    pipe = load_pipeline()
    assert pipe.config.name == "tiny32" and pipe.config.kind == "diffusegae"


def test_held_out_reconstruction_matches_the_model_card():
    pipe = load_pipeline()
    ds = AttributeDataset(resolution=pipe.config.image_size, seed=0)
    x0 = to_model(ds.batch(ds.split("test")[:8], seeds=list(range(8))))
    psnr = _psnr(pipe.reconstruct(x0, steps=20), x0)
    # 30.5 ± 0.3 dB on these 8 (MODEL_CARD.md: 30.6 on 32 held-out images); random weights give < 10
    assert psnr.mean() > 27.0, psnr


def test_gae_round_trip_is_close():
    pipe = load_pipeline()
    ds = AttributeDataset(resolution=pipe.config.image_size, seed=0)
    z = pipe.encode(to_model(ds.batch(ds.split("test")[:8], seeds=list(range(8)))))
    back = pipe.entangle(pipe.disentangle(z))
    # 0.045 on these 8 images with the stage-4 GAE (its L_sc trades a little round-trip precision for chunks
    # that do not leak); a freshly initialised GAE gives 1.45
    assert np.linalg.norm(back - z) / np.linalg.norm(z) < 0.08


@pytest.fixture(scope="module")
def card_eval():
    """The full evaluation the model card quotes (eval.json beside it)."""
    return json.loads((SHIPPED_CHECKPOINT / JSON_FILE).read_text())


@pytest.fixture(scope="module")
def small_eval(tmp_path_factory):
    """`diffusegae eval` on the shipped checkpoint with small samples (8 images, S = 20, a short oracle)."""
    settings = EvalSettings(
        images=8,
        steps=(20,),
        # as the card: a linear probe on the 4×4 head's 512-d z_sem needs all 1,200 training images to fit
        # pose (with 320 it read 0.68 against the card's 0.96)
        probe_images=1500,
        edit_images=8,
        oracle=OracleSettings(steps=150, eval_images=200),
    )
    return evaluate(SHIPPED_CHECKPOINT, settings, tmp_path_factory.mktemp("oracle"))


def test_the_model_card_quotes_its_eval(card_eval):
    card = (SHIPPED_CHECKPOINT / "MODEL_CARD.md").read_text()
    rows = {(r["steps"], r["x_T"]): r for r in card_eval["reconstruction"]["rows"]}
    quoted = [f"{rows[20, 'inferred']['psnr']['mean']:.2f}", f"{rows[100, 'inferred']['ssim']['mean']:.3f}"]
    quoted += [f"{r['took']:.2f}" for r in card_eval["edits"]["edit"]["swap"].values()]
    quoted += [f"{r['z_sem_share']:.2f}" for r in card_eval["conditioning"]["rows"]]
    assert all(number in card for number in quoted), [n for n in quoted if n not in card]


def test_a_small_eval_reproduces_the_model_card(small_eval, card_eval):
    """Each number of the small run lies within its sampling error of the full run's."""
    small_rec = {(r["steps"], r["x_T"]): r for r in small_eval["reconstruction"]["rows"]}
    card_rec = {(r["steps"], r["x_T"]): r for r in card_eval["reconstruction"]["rows"]}
    for mode in ("inferred", "random"):
        assert small_rec[20, mode]["psnr"]["mean"] == pytest.approx(
            card_rec[20, mode]["psnr"]["mean"], abs=3.0
        )

    for small, card in zip(
        small_eval["conditioning"]["rows"], card_eval["conditioning"]["rows"], strict=True
    ):
        assert small["t"] == card["t"] and small["z_sem_share"] == pytest.approx(card["z_sem_share"], abs=0.2)

    for features, row in card_eval["probes"]["rows"].items():
        for attribute, accuracy in row.items():
            assert small_eval["probes"]["rows"][features][attribute] == pytest.approx(accuracy, abs=0.15)

    assert min(small_eval["oracle"]["heldout_accuracy"].values()) >= 0.95
    for name, card in card_eval["edits"]["edit"]["swap"].items():
        small = small_eval["edits"]["edit"]["swap"][name]
        for key in ("took", "kept", "took_true_code"):  # 8 pairs: a binomial sd of up to 0.18
            assert small[key] == pytest.approx(card[key], abs=0.4), (name, key)
        assert small["code_error"] == pytest.approx(card["code_error"], abs=0.25), name
