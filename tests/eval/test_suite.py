"""The quick evaluation end to end on tiny32 with random weights, through the CLI entry points."""

import argparse
import dataclasses
import json

import numpy as np
import pytest

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.data import AttributeDataset
from diffusegae.eval.cli import add_eval_arguments, main, run_eval, settings_from_args
from diffusegae.eval.conditioning import conditioning_timesteps
from diffusegae.eval.edits import sample_groups
from diffusegae.eval.progress import main as progress_main
from diffusegae.eval.report import to_markdown
from diffusegae.eval.suite import evaluate, quick_settings

from ..conftest import randomize

ATTRS = ("identity", "background", "pose")


@pytest.fixture(scope="module")
def quick_checkpoint(tmp_path_factory, tiny_model):
    ck = tmp_path_factory.mktemp("ck")
    save_checkpoint(tiny_model, ck)
    return ck


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory, quick_checkpoint):
    out = tmp_path_factory.mktemp("out")
    assert main(["--checkpoint", str(quick_checkpoint), "--out", str(out), "--quick"]) == 0
    return out


def test_the_progress_probe_gives_the_evals_numbers(quick_run, quick_checkpoint, tmp_path, capsys):
    results = json.loads((quick_run / "eval.json").read_text())
    probe = tmp_path / "conditioning.json"
    assert progress_main(["--checkpoint", str(quick_checkpoint), "--images", "16", "--json", str(probe)]) == 0
    assert json.loads(probe.read_text()) == results["conditioning"]
    assert "| 950 |" in capsys.readouterr().out


def in_unit(x: float) -> bool:
    return 0.0 <= x <= 1.0


def test_quick_eval_writes_every_table(quick_run, capsys):
    results = json.loads((quick_run / "eval.json").read_text())  # strict JSON: no NaN / Infinity
    assert {"settings", "environment", "reconstruction", "probes", "oracle", "edits", "timings_s"} <= set(
        results
    )
    s = results["settings"]
    assert s["images"] == 16 and s["steps"] == [5] and s["engine"] == "torch" and s["quick"] is True
    assert results["environment"]["device"] and results["environment"]["torch_threads"] >= 1

    rows = results["reconstruction"]["rows"]
    assert [(r["steps"], r["x_T"]) for r in rows] == [(5, "inferred"), (5, "random")]
    for r in rows:
        assert r["mse"]["mean"] >= 0 and r["psnr"]["mean"] > 0 and -1 <= r["ssim"]["mean"] <= 1
        assert r["mse"]["n"] == 16

    conditioning = results["conditioning"]
    assert conditioning["images"] == 16
    assert [r["t"] for r in conditioning["rows"]] == conditioning_timesteps(1000)
    for r in conditioning["rows"]:
        assert r["loss_own"] > 0 and r["loss_other"] > 0 and r["z_sem_share"] < 1 and 0 < r["signal"] < 1

    probes = results["probes"]
    assert set(probes["rows"]) == {"z_sem", *ATTRS}
    assert all(in_unit(a) for row in probes["rows"].values() for a in row.values())
    assert probes["chance"] == {"identity": 1 / 6, "background": 1 / 20, "pose": 1 / 10}

    assert all(in_unit(a) for a in results["oracle"]["heldout_accuracy"].values())
    assert (quick_run / "oracle_32.safetensors").is_file() and (quick_run / "oracle_32.json").is_file()

    edit, recombine = results["edits"]["edit"], results["edits"]["recombine"]
    assert set(edit["swap"]) == set(ATTRS) and edit["images"] == 8 and edit["steps"] == 5
    for r in edit["swap"].values():
        assert all(in_unit(r[k]) for k in ("took", "kept", "all_correct", "unchanged", "took_true_code"))
        assert r["code_error"] >= 0
    assert all(in_unit(a) for a in [*recombine["accuracy"].values(), recombine["all_correct"]])
    inter = results["edits"]["interpolate"]
    assert set(inter["attribute"]) == set(ATTRS) and inter["alpha"] == 0.5 and inter["images"] == 8
    assert all(in_unit(r[k]) for r in inter["attribute"].values() for k in ("kept", "at_a", "at_b"))
    ceiling = results["edits"]["reconstruction"]
    assert ceiling["steps"] == 5 and ceiling["images"] == 16
    for mode in ("inferred", "random"):
        assert all(in_unit(a) for a in [*ceiling[mode]["accuracy"].values(), ceiling[mode]["all_correct"]])

    markdown = (quick_run / "eval.md").read_text()
    for heading in (
        "Reconstruction",
        "Use of z_sem",
        "Linear probes",
        "oracle",
        "Edit accuracy",
        "Recombine",
        "ceiling",
    ):
        assert heading in markdown
    assert markdown == to_markdown(results)


def test_plain_diffae_skips_the_gae_parts(tmp_path):
    torch_model = randomize(build_model(dataclasses.replace(preset("tiny32"), name="tiny32-ae", gae=None)))
    save_checkpoint(torch_model.eval(), tmp_path)
    settings = quick_settings(images=4, probe_images=40)
    results = evaluate(tmp_path, settings, tmp_path)
    assert results["kind"] == "diffae" and results["oracle"] is None and results["edits"] is None
    assert set(results["probes"]["rows"]) == {"z_sem"}
    assert any("plain Diff-AE" in n for n in results["notes"])
    assert "Edit accuracy" not in to_markdown(results)


def test_cli_settings():
    parser = argparse.ArgumentParser()
    add_eval_arguments(parser)
    args = parser.parse_args(
        ["--checkpoint", "ck", "--steps", "10,50", "--images", "8", "--oracle-steps", "7"]
    )
    s = settings_from_args(args)
    assert s.steps == (10, 50) and s.images == 8 and s.oracle.steps == 7 and not s.quick
    quick = settings_from_args(parser.parse_args(["--checkpoint", "ck", "--quick", "--seed", "3"]))
    assert quick.quick and quick.steps == (5,) and quick.seed == 3
    with pytest.raises(SystemExit):
        parser.parse_args(["--checkpoint", "ck", "--steps", "ten"])
    with pytest.raises(ValueError, match="probe-images"):
        settings_from_args(parser.parse_args(["--checkpoint", "ck", "--probe-images", "4"]))
    with pytest.raises(FileNotFoundError):
        run_eval(parser.parse_args(["--checkpoint", "/nonexistent/ck", "--quick"]))


def test_edit_groups_differ_in_every_attribute():
    ds = AttributeDataset(16, 0)
    groups = sample_groups(ds, 10, 3, seed=0)
    test = {tuple(v) for v in ds.split("test")}
    for a in range(3):
        for b in range(a + 1, 3):
            assert (groups[a][0] != groups[b][0]).all()
    assert all(tuple(v) in test for group in groups for v in group.values.tolist())
    assert all(group.images.shape == (10, 16, 16, 3) for group in groups)
    # each image is the dataset's rendering of its values with its own nuisance seed
    np.testing.assert_array_equal(ds.batch(groups[2].values, groups[2].seeds), groups[2].images)
    np.testing.assert_array_equal(sample_groups(ds, 10, 3, seed=0)[1].values, groups[1].values)
