"""Stop a tritonserver whose launcher died without stopping it (SIGKILL, a crash, the OOM killer).

    python -m diffusegae.server.watchdog SERVER_PID PIDFD SHM_PREFIX GRACE_S [WORK_DIR]  < pipe

The launcher starts this process with a pipe on its stdin and keeps the pipe's only write end. However the
launcher ends, the kernel then closes that end and the watchdog reads EOF. If the server still runs, it
gets what `TritonServer.stop()` would have given it: SIGTERM, SIGKILL after GRACE_S, its python backend's
shared-memory regions removed and its work directory (when the launcher owned one) deleted. After a normal
stop() the server is gone already and the watchdog just exits.
A process the launcher forks without exec (multiprocessing's "fork" start method) inherits the write end,
so the watchdog then also waits for that process to end.

The server is named by a pidfd (PIDFD, inherited) that the launcher opened right after starting it, while
it was still its unreaped child, so a PID that the system hands to another process later is never
signalled. PR_SET_PDEATHSIG would not do here: it fires when the forking *thread* ends, which would take
down servers started from short-lived threads.
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import sys
from pathlib import Path
from typing import BinaryIO

from diffusegae.server import runtime


def _exited(pidfd: int, timeout: float) -> bool:
    """True once the process has ended (a pidfd turns readable then), waiting up to `timeout` seconds."""
    readable, _, _ = select.select([pidfd], [], [], timeout)
    return bool(readable)


def watch(pidfd: int, shm_prefix: str, grace_s: float, work_dir: Path | None, stdin: BinaryIO) -> bool:
    """Block until `stdin` ends, then stop the server if it still runs. Returns whether it had to."""
    while stdin.read(4096):
        pass
    if _exited(pidfd, 0):
        return False
    signal.pidfd_send_signal(pidfd, signal.SIGTERM)
    if not _exited(pidfd, grace_s):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        _exited(pidfd, 10)
    runtime.remove_shm(shm_prefix)
    if work_dir is not None:
        shutil.rmtree(work_dir, ignore_errors=True)
    return True


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    # Ctrl-C in a terminal reaches the whole foreground group; the launcher decides what it means.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pid, pidfd, shm_prefix, grace_s = int(argv[0]), int(argv[1]), argv[2], float(argv[3])
    work_dir = Path(argv[4]) if len(argv) == 5 else None
    try:
        if watch(pidfd, shm_prefix, grace_s, work_dir, sys.stdin.buffer):
            print(f"diffusegae watchdog: the launcher died; stopped tritonserver {pid}", file=sys.stderr)
    finally:
        os.close(pidfd)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
