"""The watchdog stops a server whose launcher is gone, and leaves alone one that was stopped properly."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from diffusegae.server.watchdog import main, watch

IGNORES_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)"
)


class Launcher:
    """Stands in for the launcher: a 'server' child, its pidfd, and the write end of the watchdog's pipe."""

    def __init__(self, tmp_path: Path, command: list[str]) -> None:
        self.server = subprocess.Popen(command, stdout=subprocess.PIPE, start_new_session=True)
        self.server.stdout.readline()  # started (and, for the python one, its handler set)
        self.pidfd = os.pidfd_open(self.server.pid)
        read_end, self.write_end = os.pipe()
        self.stdin = os.fdopen(read_end, "rb")
        self.prefix = f"diffusegae_test_{uuid.uuid4().hex[:8]}_"
        self.region = Path("/dev/shm") / f"{self.prefix}region"
        self.region.write_bytes(b"x")
        self.work_dir = tmp_path / "work"
        self.work_dir.mkdir()
        self.result: list[bool] = []

    def start_watch(self, grace_s: float = 5.0) -> threading.Thread:
        def run() -> None:
            self.result.append(watch(self.pidfd, self.prefix, grace_s, self.work_dir, self.stdin))

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def close(self) -> None:
        if self.server.poll() is None:
            self.server.kill()
        self.server.wait()
        self.server.stdout.close()
        self.stdin.close()
        os.close(self.pidfd)
        self.region.unlink(missing_ok=True)


@pytest.fixture
def launcher(tmp_path):
    made = []

    def make(command: list[str]) -> Launcher:
        made.append(Launcher(tmp_path, command))
        return made[-1]

    yield make
    for item in made:
        item.close()


def test_the_launcher_dying_stops_the_server_and_cleans_up(launcher):
    lau = launcher(["sh", "-c", "echo up; exec sleep 60"])
    thread = lau.start_watch()
    thread.join(0.5)
    assert thread.is_alive() and lau.server.poll() is None  # the pipe is open: it waits
    os.close(lau.write_end)  # what the kernel does when the launcher dies
    thread.join(20)
    assert lau.result == [True]
    assert lau.server.wait(5) == -15  # SIGTERM
    assert not lau.region.exists() and not lau.work_dir.exists()


def test_a_server_that_ignores_sigterm_is_killed_after_the_grace_time(launcher):
    lau = launcher([sys.executable, "-c", IGNORES_SIGTERM])
    thread = lau.start_watch(grace_s=0.5)
    os.close(lau.write_end)
    thread.join(20)
    assert lau.result == [True] and lau.server.wait(5) == -9


def test_after_a_normal_stop_it_does_nothing(launcher):
    lau = launcher(["sh", "-c", "echo up; exec sleep 60"])
    lau.server.terminate()  # the launcher's own stop() ...
    lau.server.wait(5)
    os.close(lau.write_end)  # ... then it closes the pipe
    thread = lau.start_watch()
    thread.join(20)
    assert lau.result == [False]
    assert lau.region.exists() and lau.work_dir.exists()  # the launcher's to clean, not the watchdog's


def test_bad_arguments_print_the_usage(capsys):
    assert main(["1"]) == 2
    assert "SERVER_PID PIDFD SHM_PREFIX GRACE_S" in capsys.readouterr().err
