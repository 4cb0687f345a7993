"""Keep a running TritonServer whole: notice a dead or wedged backend process and replace the server.

Triton 2.51 does not restart a python-backend stub that died (SIGKILL, the OOM killer, a segfault in a
native library): every later request to its model fails with INTERNAL "Stub process '<model>_0_0' is not
healthy", and /v2/health/ready goes on saying ready. A Supervisor thread looks at the server's process tree
every `interval` seconds (a read of /proc, no request) and acts on the first of:
- tritonserver itself exited;
- a stub it saw when the server became ready is gone or a zombie;
- a stub has been stopped (state T: SIGSTOP, a debugger) for `stopped_after_s`; a request it holds would
  otherwise wait forever.
It then restarts the whole server on the same ports (TritonServer.restart: SIGKILL to the server and its
stubs, their shared-memory regions removed, a fresh process with a fresh shm prefix), and logs the cause
once. A restart rather than a model reload because it is one path for every failure, including the
server's own: the ensembles refer to the loop and glue models, model control stays off, and on the
project's CPU a restart takes a few seconds (tests/server/test_supervisor.py prints it). While it runs the
ports are closed, so readiness fails and clients get UNAVAILABLE, which their default retry policy
(client.errors.Retry) waits out; the client also reads Triton's "Stub process ... is not healthy" as
UNAVAILABLE, since a replaced server answers the same request correctly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from diffusegae.server.launcher import TritonServer

STUB = "triton_python_backend_stub"


@dataclass(frozen=True)
class Stub:
    """One python-backend stub process of a server: its PID, the model it runs, its state letter."""

    pid: int
    model: str
    state: str  # /proc/PID/stat's state: R, S, D, T (stopped), Z (zombie), ...


def stubs(
    server_pid: int | None = None, proc: Path = Path("/proc"), shm_prefix: str | None = None
) -> dict[int, Stub]:
    """The stub processes whose parent is `server_pid`, or whose shm region starts with `shm_prefix` (read
    from /proc). The prefix finds a server's stubs after the server died: orphans, adopted by init."""
    out = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = [
                part.decode(errors="replace") for part in (entry / "cmdline").read_bytes().split(b"\0")
            ]
        except OSError:  # it ended while we looked
            continue
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if not cmdline[0].endswith(STUB):
            continue
        # argv: the stub, <repository>/<model>/<version>/model.py, the shm region name, ...
        child = server_pid is not None and int(ppid) == server_pid
        ours = shm_prefix is not None and len(cmdline) > 2 and cmdline[2].startswith(shm_prefix)
        if child or ours:
            model = Path(cmdline[1]).parent.parent.name if len(cmdline) > 1 else "?"
            out[int(entry.name)] = Stub(int(entry.name), model, state)
    return out


@dataclass(frozen=True)
class Recovery:
    """One restart: when it began (time.time()), why, and how long until the server was ready again."""

    at: float
    cause: str
    seconds: float


class Supervisor:
    """Watches one TritonServer from a background thread and restarts it when a part of it is dead."""

    def __init__(self, server: TritonServer, interval: float = 0.25, stopped_after_s: float = 5.0) -> None:
        self.server, self.interval, self.stopped_after_s = server, interval, stopped_after_s
        self.recoveries: list[Recovery] = []
        self._baseline: dict[int, Stub] = {}
        self._stopped_since: dict[int, float] = {}
        self._halt = threading.Event()
        self._thread: threading.Thread | None = None
        self.busy = threading.Lock()  # held while a restart runs (stop() waits for it)

    def start(self) -> Supervisor:
        self._baseline = stubs(self.server.pid)
        self._thread = threading.Thread(target=self._run, name="diffusegae-supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the server is stopped, so that its exit is not taken for a crash)."""
        self._halt.set()
        if self._thread is not None:
            self._thread.join()

    def check(self) -> str | None:
        """What is wrong with the server now, or None."""
        process = self.server.process
        if process is None:  # a restart that failed half-way
            return "tritonserver is not running"
        code = process.poll()
        if code is not None:
            return f"tritonserver exited with code {code}"
        now = stubs(self.server.pid)
        for pid, stub in self._baseline.items():
            if pid not in now or now[pid].state == "Z":
                return f"the backend process of model '{stub.model}' (PID {pid}) died"
        clock = time.monotonic()
        for pid, stub in now.items():
            if stub.state not in "tT":
                self._stopped_since.pop(pid, None)
                continue
            since = self._stopped_since.setdefault(pid, clock)
            if clock - since >= self.stopped_after_s:
                return (
                    f"the backend process of model '{stub.model}' (PID {pid}) has been stopped for "
                    f"{clock - since:.0f} s"
                )
        return None

    def _run(self) -> None:
        while not self._halt.wait(self.interval):
            cause = self.check()
            if cause is None:
                continue
            with self.busy:
                if self._halt.is_set():
                    return
                self._recover(cause)

    def _recover(self, cause: str) -> None:
        started, at = time.monotonic(), time.time()
        log(f"{cause}; restarting tritonserver on {self.server.url}")
        try:
            self.server.restart()
        except Exception as err:  # the next check sees the server still down and tries again
            log(f"restart failed: {err}")
            return
        self._baseline, self._stopped_since = stubs(self.server.pid), {}
        recovery = Recovery(at, cause, time.monotonic() - started)
        self.recoveries.append(recovery)
        log(f"tritonserver {self.server.pid} ready again after {recovery.seconds:.1f} s")


def log(line: str) -> None:
    print(f"diffusegae supervisor: {line}", file=sys.stderr, flush=True)


def kill_stubs(found: dict[int, Stub], timeout: float = 10.0) -> None:
    """SIGKILL stub processes (a stopped one too) and wait until they are gone."""
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in found) and time.monotonic() < deadline:
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """Running or stopped; a zombie (dead, not yet reaped by whoever adopted it) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"
