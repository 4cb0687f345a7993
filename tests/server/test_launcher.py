"""The launcher: `serve` runs, forwards Ctrl-C and cleans up; a failed start shows the server's log.

Served here: a plain Diff-AE checkpoint (no GAE models) whose loop models reach `unet` over BLS (the path
native leaves take in the NGC container); its ops must match the in-process pipeline.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffusegae import build_model, preset, save_checkpoint
from diffusegae.client import Client, ServerError
from diffusegae.engines import Pipeline
from diffusegae.engines.onnxruntime_engine import load_onnxruntime_engine
from diffusegae.images import to_model, to_uint8
from diffusegae.server.cli import add_serve_arguments, run_serve
from diffusegae.server.launcher import ServerStartError, TritonServer, container_command, free_port
from diffusegae.server.repository import build_repository

from ..conftest import randomize
from .serving import assert_same_images, dataset_images

SERVE = (
    "import argparse, sys\n"
    "from diffusegae.server.cli import add_serve_arguments, run_serve\n"
    "parser = argparse.ArgumentParser()\n"
    "add_serve_arguments(parser)\n"
    "sys.exit(run_serve(parser.parse_args(sys.argv[1:])))\n"
)


@pytest.fixture(scope="module")
def diffae_checkpoint(tmp_path_factory):
    config = dataclasses.replace(preset("tiny32"), name="tiny32-diffae", gae=None)
    return save_checkpoint(randomize(build_model(config), seed=1).eval(), tmp_path_factory.mktemp("diffae"))


def _port_is_free(port: int) -> bool:
    """Nothing listens there: a new server could bind it (closed connections may linger in TIME_WAIT)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # a zombie is gone but for its entry


def test_serve_answers_then_stops_cleanly_on_ctrl_c(diffae_checkpoint, tmp_path):
    repo = build_repository(diffae_checkpoint, tmp_path / "repo", loop_engine="bls")
    ports = {"grpc": free_port(), "http": free_port(), "metrics": free_port()}
    args = ["--repository", str(repo)]  # built already: serve it as it is
    args += [f"--{name}-port={port}" for name, port in ports.items()]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    serve = subprocess.Popen([sys.executable, "-c", SERVE, *args], stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = serve.stdout.readline()  # printed once the server is ready
        assert line.startswith("tritonserver "), line
        pid = int(line.split()[1])
        cmdline = Path(f"/proc/{pid}/cmdline").read_text().split("\0")
        assert "--grpc-address=127.0.0.1" in cmdline and "--model-control-mode=none" in cmdline
        prefixes = [_shm_prefix(pid)]

        images = dataset_images(2, seed=6)
        pipe = Pipeline(load_onnxruntime_engine(diffae_checkpoint, threads=1))
        with Client(f"127.0.0.1:{ports['grpc']}") as client:
            assert_same_images(
                client.reconstruct(images, steps=2), to_uint8(pipe.reconstruct(to_model(images), steps=2))
            )
            want = pipe.interpolate(to_model(images[:1]), to_model(images[1:]), 0.4, steps=2)
            assert_same_images(client.interpolate(images[:1], images[1:], 0.4, steps=2), to_uint8(want))
            with pytest.raises(ServerError, match="unexpected inference input 'attributes'"):
                client.interpolate(images[:1], images[1:], 0.4, attributes=["pose"], steps=2)

            # the server itself dies: serve's supervisor starts another on the same ports, and the
            # client's default retries wait for it
            os.kill(pid, signal.SIGKILL)
            assert_same_images(
                client.reconstruct(images, steps=2), to_uint8(pipe.reconstruct(to_model(images), steps=2))
            )
        (restarted,) = [p for p in _servers_of(serve.pid) if p != pid]
        prefixes.append(_shm_prefix(restarted))

        serve.send_signal(signal.SIGINT)  # what Ctrl-C in a terminal does: a stop, not a crash
        assert serve.wait(60) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        serve.stdout.close()
    assert not _alive(pid) and not _alive(restarted)
    assert all(_port_is_free(port) for port in ports.values())
    assert not [path for prefix in prefixes for path in Path("/dev/shm").glob(f"{prefix}*")]


def _servers_of(parent: int) -> list[int]:
    """The live tritonserver processes whose parent is `parent`."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            tritonserver = stat[stat.index("(") + 1 : stat.rindex(")")] == "tritonserver"
            if tritonserver and int(fields[1]) == parent and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _shm_prefix(server_pid: int) -> str:
    cmdline = Path(f"/proc/{server_pid}/cmdline").read_text().split("\0")
    (prefix,) = [a.split("shm-region-prefix-name=")[1] for a in cmdline if "shm-region-prefix-name" in a]
    return prefix


LAUNCH_AND_HANG = (
    "import sys, time\n"
    "from diffusegae.server.launcher import TritonServer\n"
    "repo, grpc, http, metrics = sys.argv[1], *map(int, sys.argv[2:])\n"
    "server = TritonServer(repo, grpc_port=grpc, http_port=http, metrics_port=metrics).start()\n"
    "print(server.pid, server.shm_prefix, server.work_dir, flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_killed_launcher_leaves_no_server_behind(diffae_checkpoint, tmp_path):
    repo = build_repository(diffae_checkpoint, tmp_path / "repo", loop_engine="bls")
    ports = [free_port() for _ in range(3)]
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCH_AND_HANG, str(repo), *map(str, ports)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        pid, prefix, work_dir = launcher.stdout.readline().split()
        pid = int(pid)
        assert _alive(pid) and list(Path("/dev/shm").glob(f"{prefix}*"))
        launcher.kill()  # SIGKILL: no handler, no finally, no atexit runs in the launcher
        launcher.wait()
        deadline = time.monotonic() + 60
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        launcher.stdout.close()
    orphaned = _alive(pid)
    if orphaned:  # the test started it, so the test stops it
        os.kill(pid, signal.SIGKILL)
    assert not orphaned, "tritonserver outlived its launcher"
    assert all(_port_is_free(port) for port in ports)
    assert not list(Path("/dev/shm").glob(f"{prefix}*")) and not Path(work_dir).exists()


def test_a_server_that_cannot_start_says_why(tmp_path):
    broken = tmp_path / "repo" / "broken"
    broken.mkdir(parents=True)
    (broken / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nmax_batch_size: banana\n')
    server = TritonServer(
        tmp_path / "repo", grpc_port=free_port(), http_port=free_port(), metrics_port=free_port()
    )
    started = time.monotonic()
    with pytest.raises(ServerStartError, match=r"(?s)exited with code 1 before it was ready.*broken"):
        server.start()
    assert time.monotonic() - started < 60
    assert server.process.poll() is not None
    assert server._watchdog is not None and server._watchdog.poll() == 0  # started, then reaped by stop()


def test_an_empty_repository_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass a checkpoint"):
        TritonServer(tmp_path).start()


def test_container_command_serves_the_same_repository(diffae_checkpoint, tmp_path):
    repo = build_repository(diffae_checkpoint, tmp_path / "repo")
    command = container_command(repo, ports={"grpc": 9001})
    assert command.startswith("docker run --rm --gpus=all")
    assert "nvcr.io/nvidia/tritonserver:24.10-py3" in command
    assert f"-v{repo.resolve()}:{repo.resolve()}" in command
    assert f"-v{diffae_checkpoint.resolve()}:{diffae_checkpoint.resolve()}" in command
    assert "-p9001:8001" in command and f"--model-repository={repo.resolve()}" in command


def test_serve_container_flag_prints_the_command(diffae_checkpoint, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser)
    args = parser.parse_args(
        ["--repository", str(tmp_path / "r"), "--checkpoint", str(diffae_checkpoint), "--container"]
    )
    assert run_serve(args) == 0
    assert "tritonserver --model-repository=" in capsys.readouterr().out
