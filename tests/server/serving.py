"""What the server and client tests share: a served tiny32 checkpoint and one running server.

The server runs once per test session, whichever test module asks first, and is stopped by PID at the
session's end; tests compare it with the in-process pipeline on the same checkpoint.
"""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from diffusegae import save_checkpoint
from diffusegae.client import Client
from diffusegae.data import AttributeDataset
from diffusegae.engines import Pipeline
from diffusegae.server.launcher import TritonServer, free_port

_servers: dict[Path, TritonServer] = {}


def served_checkpoint(tmp_path_factory: pytest.TempPathFactory, model) -> Path:
    """The test model saved once per session (its ONNX cache is then shared by every user)."""
    path = tmp_path_factory.getbasetemp() / "served-tiny32"
    if not (path / "config.json").is_file():
        save_checkpoint(model, path)
    return path


def start_server(repository: Path, checkpoint: Path | None, work_dir: Path) -> TritonServer:
    """A server on free loopback ports (the launcher binds 127.0.0.1 by default)."""
    server = TritonServer(
        repository,
        checkpoint,
        grpc_port=free_port(),
        http_port=free_port(),
        metrics_port=free_port(),
        work_dir=work_dir,
        startup_timeout=240,
    )
    return server.start()


def session_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, checkpoint: Path
) -> TritonServer:
    """The session's server over `checkpoint`; the first caller's session-scoped request stops it."""
    server = _servers.get(checkpoint)
    if server is None:
        base = tmp_path_factory.getbasetemp()
        server = start_server(base / "repository", checkpoint, base / "triton")
        _servers[checkpoint] = server

        def stop() -> None:
            del _servers[checkpoint]
            # A clean exit within the exit timeout also means no request was left in flight (an ensemble
            # whose step failed beside a running one would hold shutdown until the timeout: exit code 1).
            assert server.stop() == 0, server.log_tail()

        request.addfinalizer(stop)
    return server


def dataset_images(count: int, seed: int = 0) -> np.ndarray:
    """uint8 [count,32,32,3] test images with different attribute values."""
    ds = AttributeDataset(resolution=32, seed=0)
    rng = np.random.default_rng(seed)
    values = [tuple(int(rng.integers(n)) for n in ds.num_values) for _ in range(count)]
    return ds.batch(values, seeds=[seed * 100 + i for i in range(count)])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of two uint8 images."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def assert_same_images(got: np.ndarray, want: np.ndarray) -> None:
    """Exact uint8 equality, or at worst PSNR ≥ 45 dB (a batch composition may change a rounding)."""
    assert got.dtype == np.uint8 and got.shape == want.shape, (got.dtype, got.shape, want.shape)
    if not np.array_equal(got, want):
        assert psnr(got, want) >= 45.0, f"PSNR {psnr(got, want):.1f} dB"


# ---- fixtures, imported by the conftests of tests/server and tests/client ----


@pytest.fixture(scope="module", autouse=True)
def ort_cache(tmp_path_factory):
    """onnxruntime writes a cache under $XDG_CACHE_HOME when first imported: keep it in tmp."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        yield


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory, tiny_model):
    return served_checkpoint(tmp_path_factory, tiny_model)


@pytest.fixture(scope="session")
def server(request, tmp_path_factory, checkpoint):
    return session_server(request, tmp_path_factory, checkpoint)


@pytest.fixture(scope="module")
def client(server):
    with Client(server.url, timeout=120) as c:
        yield c


@pytest.fixture(scope="session")
def pipeline(checkpoint):
    """The in-process pipeline the server must match: same checkpoint, same engine, one thread."""
    from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine

    return Pipeline(load_onnxruntime_engine(checkpoint, threads=1))


def cache_counts(server) -> dict[str, float]:
    """The served x_T cache's hit and miss counters, from the metrics endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.ports['metrics']}/metrics").read().decode()
    found = re.findall(r'diffusegae_xt_cache_(hits|misses)_total\{model="invert"\} (\S+)', text)
    return {name: float(value) for name, value in found}
