"""train(): each stage runs and saves; runs resume; checkpoints load; nothing is pickled."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from diffusegae.checkpoint import load_checkpoint, read_info
from diffusegae.train import add_arguments, run, train
from diffusegae.train.state import LOG_FILE, STATE_DIR, STATE_FILE, optimizer_tensors, restore_optimizer

FAST = {"batch_size": 4, "log_every": 1, "quiet": True}


@pytest.fixture(scope="module")
def stage1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny32 checkpoint after 3 stage-1 steps (tests copy it before training on)."""
    directory = tmp_path_factory.mktemp("ck") / "tiny"
    train(directory, preset="tiny32", stage=1, steps=3, **FAST)
    return directory


def copy(src: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(src, tmp_path / "ck"))


def raw_weights(directory: Path) -> dict[str, torch.Tensor]:
    record = json.loads((directory / STATE_DIR / STATE_FILE).read_text())
    return load_file(directory / STATE_DIR / record["files"]["raw"])


def log_lines(directory: Path) -> list[dict]:
    return [json.loads(line) for line in (directory / LOG_FILE).read_text().splitlines()]


def test_stage1_runs_logs_and_records_its_summary(stage1: Path) -> None:
    lines = log_lines(stage1)
    assert [r["step"] for r in lines] == [1, 2, 3]
    for r in lines:
        assert r["stage"] == 1 and r["lr"] == 1e-4 and r["images_per_s"] > 0 and "wall_s" in r
        assert 0.0 < r["losses"]["simple"] < 10.0
    summary = read_info(stage1)["train"]["stage1"]
    assert summary["steps"] == 3 and summary["batch_size"] == 4 and summary["lr"] == 1e-4
    assert summary["optimizer"] == "adamw" and summary["device"] and summary["wall_s"] > 0
    assert set(summary["losses"]) == {"loss", "simple"}
    assert not (stage1 / "train.lock.json").exists()


def test_checkpoint_loads_and_holds_the_ema_weights(stage1: Path) -> None:
    model = load_checkpoint(stage1)
    raw = raw_weights(stage1)
    ema = model.state_dict()
    name = "unet.out.2.weight"  # zero-initialised: raw moved away from 0, EMA followed part of the way
    assert raw[name].abs().sum() > 0 and not torch.equal(raw[name], ema[name])
    x = torch.zeros(1, 3, 32, 32)
    assert model.encoder(x).shape == (1, 512)


def test_resume_continues_the_step_counter(stage1: Path, tmp_path: Path) -> None:
    directory = copy(stage1, tmp_path)
    before = raw_weights(directory)
    summary = train(directory, stage=1, steps=2, **FAST)
    assert summary["steps"] == 5 and summary["images"] == 20
    record = json.loads((directory / STATE_DIR / STATE_FILE).read_text())
    assert record["step"] == 5 and record["ema_updates"] == 5
    after = raw_weights(directory)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert [r["step"] for r in log_lines(directory)] == [1, 2, 3, 4, 5]
    moments = load_file(directory / STATE_DIR / record["files"]["optimizer"])
    assert moments["unet.out.2.weight:step"].item() == 5.0
    assert sorted(p.name for p in (directory / STATE_DIR).iterdir()) == sorted(
        [STATE_FILE, *record["files"].values()]
    )  # the files of the 3-step save are gone
    # Data, t and ε are functions of (seed, stage, step) and Adam's moments are restored, so 3 + 2 steps
    # reach exactly the weights of 5 steps in one go.
    straight = tmp_path / "straight"
    train(straight, preset="tiny32", stage=1, steps=5, **FAST)
    assert all(torch.equal(after[k], v) for k, v in raw_weights(straight).items())


def test_stage2_sets_latent_stats_and_trains_only_the_gae(stage1: Path, tmp_path: Path) -> None:
    directory = copy(stage1, tmp_path)
    start = load_checkpoint(directory).state_dict()
    summary = train(directory, stage=2, steps=2, lr=1e-3, stats_images=16, **FAST)
    assert summary["steps"] == 2 and summary["lr"] == 1e-3 and summary["lambda_ss"] == 1.0
    assert summary["lambda_ur"] == 0.5 and summary["images_per_step"] == 16
    assert "lambda_sc" not in summary and summary["losses"]["sc"] > 0  # reported, not weighted, by default
    assert all(torch.isfinite(torch.tensor(summary["losses"][k])) for k in ("loss", "r", "ss", "ur"))
    model = load_checkpoint(directory)
    assert not torch.equal(model.gae.z_mean, torch.zeros(512))
    assert not torch.equal(model.gae.z_std, torch.ones(512)) and bool((model.gae.z_std > 0).all())
    end = model.state_dict()
    assert all(torch.equal(start[k], end[k]) for k in start if k.startswith(("unet.", "encoder.")))
    assert any(not torch.equal(start[k], end[k]) for k in start if k.startswith("gae.encoder."))
    info = read_info(directory)["train"]
    assert info["stage1"]["steps"] == 3 and info["stage2"]["stats_images"] == 16


def test_stage4_refits_the_gae_on_the_tuned_encoder_and_keeps_the_earlier_records(
    stage1: Path, tmp_path: Path
) -> None:
    directory = copy(stage1, tmp_path)
    train(directory, stage=2, steps=1, stats_images=16, **FAST)
    train(directory, stage=3, steps=1, **FAST)
    tuned = load_checkpoint(directory)
    before_stats = tuned.gae.z_mean.clone()
    start = tuned.state_dict()
    summary = train(directory, stage=4, steps=2, stats_images=16, seed=1, lambda_sc=1.0, **FAST)
    assert summary["steps"] == 2 and summary["trains"] == ["gae"] and summary["lambda_sc"] == 1.0
    assert summary["stats_images"] == 16 and "objective" not in summary
    end = load_checkpoint(directory)
    assert not torch.equal(end.gae.z_mean, before_stats)  # fresh statistics, of the tuned encoder
    assert all(
        torch.equal(start[k], v) for k, v in end.state_dict().items() if k.startswith(("unet.", "encoder."))
    )
    assert any(
        not torch.equal(start[k], v) for k, v in end.state_dict().items() if k.startswith("gae.encoder.")
    )
    info = read_info(directory)["train"]
    assert info["stage2"]["steps"] == 1 and info["stage3"]["steps"] == 1 and info["stage4"]["steps"] == 2


def test_stage3_trains_everything(stage1: Path, tmp_path: Path) -> None:
    directory = copy(stage1, tmp_path)
    start = load_checkpoint(directory).state_dict()
    summary = train(directory, stage=3, steps=1, stats_images=8, lambda_sc=0.25, **FAST)  # sets statistics
    assert summary["steps"] == 1 and summary["gamma"] == 1.0 and summary["lambda_ss"] == 0.5
    terms = summary["losses"]
    assert summary["lambda_sc"] == 0.25
    weighted = terms["r"] + 0.5 * terms["ss"] + 0.5 * terms["ur"] + 0.25 * terms["sc"]
    assert terms["dis"] == pytest.approx(weighted)
    assert all(torch.isfinite(torch.tensor(v)) for v in summary["losses"].values())
    assert {"simple", "dis", "r", "ss", "ur"} <= set(summary["losses"])
    raw = raw_weights(directory)
    for prefix in ("unet.", "encoder.", "gae.decoder."):
        assert any(not torch.equal(start[k], raw[k]) for k in start if k.startswith(prefix)), prefix
    assert log_lines(directory)[-1]["stage"] == 3
    assert not torch.equal(raw["gae.z_std"], torch.ones(512))


def test_command_line_maps_onto_train_and_the_time_limit_stops_after_one_step(
    stage1: Path, tmp_path: Path
) -> None:
    directory = copy(stage1, tmp_path)
    parser = add_arguments(argparse.ArgumentParser())
    args = parser.parse_args(
        [
            "--checkpoint",
            str(directory),
            "--steps",
            "100",
            "--batch-size",
            "2",
            "--lr",
            "3e-4",
            "--quiet",
            "--save-every-s",
            "300",
            "--time-limit-s",
            "0",
        ]
    )
    summary = run(args)
    assert summary["steps"] == 4 and summary["batch_size"] == 2 and summary["lr"] == 3e-4
    assert read_info(directory)["train"]["stage1"]["steps"] == 4  # saved on stopping


def test_data_workers_change_nothing_but_speed(stage1: Path, tmp_path: Path) -> None:
    inline, pooled = copy(stage1, tmp_path / "a"), copy(stage1, tmp_path / "b")
    train(inline, stage=1, steps=2, data_workers=0, **FAST)
    train(pooled, stage=1, steps=2, data_workers=1, **FAST)
    assert [r["losses"] for r in log_lines(pooled)] == [r["losses"] for r in log_lines(inline)]
    raw_inline, raw_pooled = raw_weights(inline), raw_weights(pooled)
    assert all(torch.equal(raw_pooled[k], v) for k, v in raw_inline.items())


def test_bad_requests_say_what_to_do(stage1: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="preset"):
        train(tmp_path / "new", steps=1)
    with pytest.raises(ValueError, match="differs from preset"):
        train(stage1, preset="synth64", steps=0)
    with pytest.raises(ValueError, match="unknown stage"):
        train(stage1, stage=5, steps=0)
    with pytest.raises(ValueError, match="CUDA"):
        train(stage1, amp=True, device="cpu", steps=0)


def test_only_json_and_safetensors_are_written(stage1: Path, tmp_path: Path) -> None:
    directory = copy(stage1, tmp_path)
    train(directory, stage=2, steps=1, stats_images=8, **FAST)
    suffixes = {p.suffix for p in directory.rglob("*") if p.is_file()}
    assert suffixes <= {".json", ".jsonl", ".safetensors"}, suffixes


def test_optimizer_state_round_trips_exactly() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    names = [n for n, _ in layer.named_parameters()]
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        layer(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    saved = optimizer_tensors(opt, names)
    fresh = torch.optim.Adam(layer.parameters(), lr=0.1)
    restore_optimizer(fresh, names, saved)
    again = optimizer_tensors(fresh, names)
    assert saved.keys() == again.keys() and all(torch.equal(saved[k], again[k]) for k in saved)
