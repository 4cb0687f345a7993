"""The supervised server heals itself (real tritonserver): a backend process killed with SIGKILL under load,
of each kind (a DDIM loop, a leaf, a glue model), is noticed and the server replaced; readiness says so;
clients see only retries, never an error or a wrong image; nothing is left behind. A SIGSTOPped backend
times requests out clearly and is replaced, or carries on if it is resumed first."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from diffusegae.client import Client, ServerError
from diffusegae.client.batch import edit_directory
from diffusegae.client.files import TMP_SUFFIX
from diffusegae.images import load_image, save_png, to_model, to_uint8
from diffusegae.server.repository import build_repository
from diffusegae.server.supervisor import Supervisor, _alive, stubs

from .serving import assert_same_images, dataset_images, start_server

STOPPED_AFTER_S = 3.0
STEPS = 3


@pytest.fixture(scope="module")
def supervised(tmp_path_factory, checkpoint):
    base = tmp_path_factory.mktemp("supervised")
    server = start_server(build_repository(checkpoint, base / "repository"), None, base / "triton")
    supervisor = Supervisor(server, interval=0.1, stopped_after_s=STOPPED_AFTER_S).start()
    yield server, supervisor
    supervisor.stop()
    server.stop()


def _stub_of(server, model: str) -> int:
    (pid,) = [pid for pid, stub in stubs(server.pid).items() if stub.model == model]
    return pid


def _wait_for(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


class Load:
    """Clients sending edits until stopped, and a readiness poller; what each saw."""

    def __init__(self, server, pipeline, clients: int = 4) -> None:
        images = dataset_images(2, seed=21)
        self.source, self.reference = images[:1], images[1:]
        want = pipeline.edit(to_model(self.source), to_model(self.reference), ["pose"], steps=STEPS)
        self.want = to_uint8(want)
        self.server, self.ok, self.errors, self.readiness = server, 0, [], []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(clients)]
        self._threads.append(threading.Thread(target=self._poll))
        for thread in self._threads:
            thread.start()

    def _send(self) -> None:
        with Client(self.server.url, timeout=60) as client:  # the default retry policy
            while not self._stop.is_set():
                try:
                    got = client.edit(self.source, self.reference, ["pose"], steps=STEPS)
                    assert_same_images(got, self.want)
                    self.ok += 1
                except (ServerError, AssertionError) as err:
                    self.errors.append(err)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.readiness.append((time.monotonic(), self.server.is_ready()))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


@pytest.mark.parametrize("model", ["decode", "encoder", "swap"])  # a DDIM loop, a leaf, a glue model
def test_a_killed_backend_is_replaced_and_no_request_fails(supervised, pipeline, model):
    server, supervisor = supervised
    recoveries = len(supervisor.recoveries)
    load = Load(server, pipeline)
    try:
        assert _wait_for(lambda: load.ok >= 4)
        old_server, old_stubs, old_prefix = server.pid, stubs(server.pid), server.shm_prefix
        killed_at = time.monotonic()
        os.kill(_stub_of(server, model), signal.SIGKILL)
        assert _wait_for(lambda: len(supervisor.recoveries) > recoveries)
        served = load.ok
        assert _wait_for(lambda: load.ok >= served + 4)  # serving again, on the new server
    finally:
        load.stop()
    assert not load.errors, load.errors[:3]
    recovery = supervisor.recoveries[-1]
    assert f"model '{model}'" in recovery.cause and "died" in recovery.cause
    # readiness: false while the server was replaced, true again after
    after = [ready for at, ready in load.readiness if at > killed_at]
    assert False in after and after[-1] is True
    first_down = next(at for at, ready in load.readiness if at > killed_at and not ready)
    up_again = next(at for at, ready in load.readiness if at > first_down and ready)
    print(f"{model}: killed → ready again in {up_again - killed_at:.1f} s (restart {recovery.seconds:.1f} s)")
    # nothing left behind: the old server, its stubs and their shared memory are gone
    assert server.pid != old_server and not _alive(old_server)
    assert not [pid for pid in old_stubs if _alive(pid)]
    assert not list(Path("/dev/shm").glob(f"{old_prefix}*"))


def test_a_stopped_backend_times_out_clearly_and_carries_on_when_resumed(supervised, pipeline):
    server, supervisor = supervised
    recoveries = len(supervisor.recoveries)
    image = dataset_images(1, seed=22)
    pid = _stub_of(server, "decode")
    os.kill(pid, signal.SIGSTOP)
    try:
        with Client(server.url, timeout=1.0, retries=0) as client:
            start = time.monotonic()
            with pytest.raises(ServerError) as info:
                client.reconstruct(image, steps=STEPS)
            assert info.value.status == "DEADLINE_EXCEEDED" and time.monotonic() - start < 2.5
    finally:
        os.kill(pid, signal.SIGCONT)  # resumed before the supervisor's limit: it carries on as it was
    with Client(server.url, timeout=60) as client:
        assert client.reconstruct(image, steps=STEPS).shape == (1, 32, 32, 3)
    time.sleep(STOPPED_AFTER_S)
    assert len(supervisor.recoveries) == recoveries and _stub_of(server, "decode") == pid


def test_a_backend_stopped_for_good_is_replaced(supervised):
    server, supervisor = supervised
    recoveries = len(supervisor.recoveries)
    pid = _stub_of(server, "decode")
    os.kill(pid, signal.SIGSTOP)
    assert _wait_for(lambda: len(supervisor.recoveries) > recoveries)
    assert (
        "model 'decode'" in supervisor.recoveries[-1].cause and "stopped" in supervisor.recoveries[-1].cause
    )
    assert not _alive(pid)
    with Client(server.url, timeout=60) as client:
        assert client.reconstruct(dataset_images(1, seed=23), steps=STEPS).shape == (1, 32, 32, 3)


def test_the_batch_editor_survives_a_killed_backend(supervised, pipeline, tmp_path):
    server, supervisor = supervised
    recoveries = len(supervisor.recoveries)
    images = dataset_images(17, seed=24)
    sources, reference = images[:16], images[16]
    for i, image in enumerate(sources):
        save_png(image, tmp_path / "src" / f"img{i:02d}.png")
    out = tmp_path / "out"

    def kill_once_under_way() -> None:
        if _wait_for(lambda: len(list(out.glob("*.png"))) >= 3):
            os.kill(_stub_of(server, "decode"), signal.SIGKILL)

    killer = threading.Thread(target=kill_once_under_way)
    killer.start()
    with Client(server.url, timeout=60) as client:
        summary = edit_directory(client, tmp_path / "src", reference, ["pose"], out, 4, STEPS, False)
    killer.join()
    assert len(supervisor.recoveries) == recoveries + 1
    # every image written exactly once, complete, and the counts add up
    assert summary.exit_code == 0 and not summary.failed and not summary.skipped, summary.report()
    names = sorted(p.name for p in summary.done)
    assert names == sorted(p.name for p in out.glob("*.png")) == [f"img{i:02d}.png" for i in range(16)]
    assert not [p for p in out.iterdir() if p.name.endswith(TMP_SUFFIX)]
    got = np.stack([load_image(out / name) for name in names])
    assert_same_images(
        got, to_uint8(pipeline.edit(to_model(sources), to_model(reference[None]), ["pose"], STEPS))
    )
