import numpy as np
import pytest

from diffusegae import save_checkpoint
from diffusegae.cli import main
from diffusegae.images import load_image


def test_demo_writes_a_labelled_grid(tmp_path, tiny_model, capsys):
    save_checkpoint(tiny_model, tmp_path / "ck")
    out = tmp_path / "demo.png"
    args = ["demo", "--in-process", "--checkpoint", str(tmp_path / "ck"), "--out", str(out), "--steps", "2"]
    assert main([*args, "--count", "2"]) == 0
    grid = load_image(out)
    # 8 rows (source, reference, reconstruct, 3 swaps, recombine, interpolate) of 32 px tiles shown at 3×
    assert grid.shape[0] >= 8 * 96 and grid.dtype == np.uint8
    assert "6 ops" in capsys.readouterr().out


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["demo", "--in-process", "--checkpoint", str(tmp_path / "none")]) == 2
    assert "config.json is missing" in capsys.readouterr().err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        main(["frobnicate"])


def test_export_writes_onnx_files(tmp_path, tiny_model, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    save_checkpoint(tiny_model, tmp_path / "ck")
    assert main(["export", "--checkpoint", str(tmp_path / "ck"), "--out", str(tmp_path / "onnx")]) == 0
    printed = capsys.readouterr().out
    for name in ["encoder", "gae_encode", "gae_decode", "unet"]:
        assert (tmp_path / "onnx" / f"{name}.onnx").is_file() and name in printed
    assert main(["export", "--checkpoint", str(tmp_path / "ck"), "--precision", "int4"]) == 2
    assert "int4" in capsys.readouterr().err
