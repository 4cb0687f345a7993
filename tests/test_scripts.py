"""scripts/gpu_train.sh, the GPU training runbook, tried on CPU with a tiny preset: a new run, then a fresh
machine restoring from what the first call returned."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

from diffusegae.checkpoint import load_checkpoint
from diffusegae.eval.conditioning import conditioning_timesteps

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_train.sh"


def _run(work: Path, ck: Path, out: Path, *args: str) -> str:
    env = {
        **os.environ,
        "PY": sys.executable,
        "DEVICE": "cpu",
        "PRESET": "tiny32",
        "CK": str(ck),
        "OUT": str(out),
    }
    done = subprocess.run(
        ["bash", str(SCRIPT), *args, "--batch-size", "2", "--threads", "1", "--log-every", "1"],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_returns_fp16_weights_and_resumes_on_a_fresh_machine(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    first = tmp_path / "out1"
    _run(work, tmp_path / "ck", first, "1", "1")
    assert {p.name for p in first.iterdir()} == {
        "config.json",
        "model.safetensors",
        "train_log.jsonl",
        "train.log",
        "conditioning.json",
    }
    conditioning = json.loads((first / "conditioning.json").read_text())
    assert conditioning["images"] == 32
    assert [r["t"] for r in conditioning["rows"]] == conditioning_timesteps(1000)
    dtypes = {str(t.dtype) for t in load_file(first / "model.safetensors").values()}
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
    assert load_checkpoint(first).unet is not None  # fp16 files load as float32 models

    # A fresh machine: the checkpoint folder is gone, and what the first call returned is carried in.
    shutil.copytree(first, work / ".gpu_train")
    second = tmp_path / "out2"
    stdout = _run(work, tmp_path / "ck2", second, "2", "1", "--stats-images", "32")
    assert "restored" in stdout
    stages = [json.loads(line)["stage"] for line in (second / "train_log.jsonl").read_text().splitlines()]
    assert stages[0] == 1 and stages[-1] == 2  # the first call's log came along, then stage 2 went on


RECIPE = Path(__file__).resolve().parents[1] / "scripts" / "train_tiny32.sh"


def test_the_shipped_recipe_runs_every_stage_and_a_rerun_skips_them(tmp_path: Path) -> None:
    """The recipe with tiny step counts: all four stages, recorded; run again, nothing is retrained."""
    env = {
        **os.environ,
        "PY": sys.executable,
        "THREADS": "1",
        "STEPS1": "2",
        "STEPS2": "2",
        "STEPS3": "1",
        "STEPS4": "2",
        "EXTRA": "--batch-size 2 --stats-images 16 --log-every 1 --quiet",
    }
    ck = tmp_path / "ck"

    def run() -> str:
        done = subprocess.run(
            ["bash", str(RECIPE), str(ck)], env=env, capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run()
    stages = json.loads((ck / "config.json").read_text())["info"]["train"]
    assert [stages[f"stage{n}"]["steps"] for n in (1, 2, 3, 4)] == [2, 2, 1, 2]
    assert stages["stage1"]["objective"]["weighting"] == "v"  # tiny32 predicts v: its own MSE
    assert stages["stage4"]["lambda_sc"] == 4.0 and stages["stage4"]["trains"] == ["gae"]
    again = run()
    for n, steps in ((1, 2), (2, 2), (3, 1), (4, 2)):
        assert f"stage {n}: {steps} of {steps} steps done, skipped" in again, again
    assert json.loads((ck / "config.json").read_text())["info"]["train"] == stages
