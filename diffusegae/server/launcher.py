"""Run the bundled tritonserver on a repository (CPU), or print the NGC container command (GPU machines).

    with TritonServer("model_repository", grpc_port=8001) as server:
        Client(server.url).reconstruct(images)

The server binds 127.0.0.1 unless told otherwise, loads the repository once (model control off), runs in
its own session (a terminal's Ctrl-C reaches it only through `serve`, which forwards it), and is stopped by
its PID; the shared-memory regions of its python models are removed afterwards. A watchdog process
(`diffusegae.server.watchdog`) does the same if the launcher dies without stopping it.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from types import FrameType
from typing import Any

from diffusegae.server import runtime
from diffusegae.server.specs import PYTHON_ORT

NGC_VERSION = "24.10"  # tritonserver 2.51, the release nvidia-pytriton 0.7 bundles
NGC_IMAGE = f"nvcr.io/nvidia/tritonserver:{NGC_VERSION}-py3"
# /dev/shm of a container: the python backend moves every tensor through it (Docker's 64 MiB default is
# too small for a batch of 64 images); `deploy/` sizes the pod's memory-backed /dev/shm the same.
CONTAINER_SHM_BYTES = 1 << 30
DEFAULT_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}


class ServerStartError(RuntimeError):
    """tritonserver exited or did not become ready; the message ends with its log."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class TritonServer:
    """The bundled tritonserver as a subprocess over `repository` (built from `checkpoint` if given)."""

    def __init__(
        self,
        repository: str | Path,
        checkpoint: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        grpc_port: int = DEFAULT_PORTS["grpc"],
        http_port: int = DEFAULT_PORTS["http"],
        metrics_port: int = DEFAULT_PORTS["metrics"],
        leaf_backend: str = PYTHON_ORT,
        threads: int = 1,
        loop_batching: str = "request",
        startup_timeout: float = 180.0,
        exit_timeout: int = 10,
        work_dir: str | Path | None = None,
        log_verbose: int = 0,
    ) -> None:
        self.repository = Path(repository).resolve()
        self.checkpoint = Path(checkpoint) if checkpoint is not None else None
        self.host = host
        self.ports = {"grpc": grpc_port, "http": http_port, "metrics": metrics_port}
        self.leaf_backend, self.threads, self.loop_batching = leaf_backend, threads, loop_batching
        self.startup_timeout, self.exit_timeout, self.log_verbose = startup_timeout, exit_timeout, log_verbose
        self._own_work_dir = work_dir is None
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.shm_prefix = f"{runtime.SHM_PREFIX}{uuid.uuid4().hex[:12]}_"
        self.process: subprocess.Popen | None = None
        self.restarts = 0
        self._watchdog: subprocess.Popen | None = None
        self._watchdog_pipe: int | None = None  # the only write end of the watchdog's stdin
        self._log: Any = None

    # ---- addresses ----
    @property
    def url(self) -> str:
        """host:port of the gRPC endpoint (what Client takes)."""
        return f"{self._probe_host}:{self.ports['grpc']}"

    @property
    def http_url(self) -> str:
        return f"http://{self._probe_host}:{self.ports['http']}"

    @property
    def _probe_host(self) -> str:
        return "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host

    @property
    def _kill_after_s(self) -> int:
        """How long a SIGTERM'd server may take before SIGKILL: its own exit timeout, plus time to unload."""
        return self.exit_timeout + 15

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # ---- life cycle ----
    def start(self, prepare: bool = True) -> TritonServer:
        """Start it and wait until it is ready; `prepare=False` serves the repository as it is (restart)."""
        if self.process is not None:
            raise RuntimeError("this server was started already")
        if prepare:
            self.prepare_repository()
        self.work_dir = self.work_dir or Path(tempfile.mkdtemp(prefix="diffusegae-triton-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backends = runtime.prepare_backends(self.work_dir)
        args = runtime.arguments(
            self.repository, backends, self.host, self.ports, self.shm_prefix, self.exit_timeout,
            self.log_verbose,
        )  # fmt: skip
        # a restarted server appends to the log of the one it replaces (closed in stop() / kill())
        self._log = open(self.work_dir / "tritonserver.log", "ab" if self.restarts else "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            args,
            env=runtime.environment(self.work_dir),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # signals reach it from us only: stop() and serve()'s forwarding
        )
        try:
            self._start_watchdog()
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_watchdog(self) -> None:
        """A process that stops the server if this one dies first (it reads EOF on a pipe only we hold)."""
        try:
            pidfd = os.pidfd_open(self.process.pid)  # before anything could reap the server
        except (OSError, AttributeError) as err:  # no pidfds on this kernel / platform: run unwatched
            print(f"diffusegae: no watchdog for tritonserver {self.process.pid}: {err}", file=sys.stderr)
            return
        read_end, self._watchdog_pipe = os.pipe()
        args = [sys.executable, "-m", "diffusegae.server.watchdog", str(self.process.pid), str(pidfd)]
        args += [self.shm_prefix, str(self._kill_after_s)]
        if self._own_work_dir:
            args.append(str(self.work_dir))
        try:
            self._watchdog = subprocess.Popen(
                args, stdin=read_end, stdout=self._log, stderr=subprocess.STDOUT, pass_fds=(pidfd,),
                start_new_session=True,  # a terminal's Ctrl-C is for the launcher, not for it
            )  # fmt: skip
        finally:
            os.close(read_end)
            os.close(pidfd)

    def _stop_watchdog(self) -> None:
        """Close its pipe (the server is stopped already, so it finds nothing to do) and reap it."""
        if self._watchdog_pipe is not None:
            os.close(self._watchdog_pipe)
            self._watchdog_pipe = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(10)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()

    def prepare_repository(self) -> None:
        """Build the repository from the checkpoint (when one was given); refuse an empty one."""
        from diffusegae.server.repository import build_repository, repository_checkpoint

        if self.checkpoint is not None:
            build_repository(
                self.checkpoint,
                self.repository,
                self.leaf_backend,
                threads=self.threads,
                loop_batching=self.loop_batching,
            )
        if not any(self.repository.glob("*/config.pbtxt")):
            raise FileNotFoundError(
                f"no models in {self.repository}: pass a checkpoint to build the repository from"
            )
        checkpoint = repository_checkpoint(self.repository)
        if checkpoint is not None:
            # The python-backend models load the checkpoint's ONNX cache: build it once here rather than
            # in every model process at the same time.
            from diffusegae.export.onnx_export import export_checkpoint

            export_checkpoint(checkpoint)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while not self.is_ready():
            code = self.process.poll()
            problem = None if code is None else f"exited with code {code} before it was ready"
            if problem is None and time.monotonic() > deadline:
                problem = f"was not ready after {self.startup_timeout:.0f} s"
            if problem is not None:
                raise ServerStartError(f"tritonserver {problem}; its log ends:\n{self.log_tail()}")
            time.sleep(0.2)

    def is_ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log_tail(self, lines: int = 15) -> str:
        """The server log's error lines (where a model failed to load), then its last lines."""
        path = self.work_dir / "tritonserver.log" if self.work_dir else None
        if path is None or not path.is_file():
            return "(no log)"
        text = path.read_text(errors="replace").splitlines()
        # E-lines name what failed; CUDA complaints are expected noise on a machine without a GPU.
        errors = [line for line in text if line[:1] == "E" and "CUDA" not in line and "Cuda" not in line]
        return "\n".join([*errors[:20], "...", *text[-lines:]])

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signum)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def drain(self) -> None:
        """Tell the step-batched loop models to give back what they hold (UNAVAILABLE): the server stops."""
        if self.work_dir is not None and self.work_dir.is_dir():
            runtime.drain_file(self.work_dir).touch()

    def stop(self) -> int | None:
        """Drain, SIGTERM by PID, SIGKILL if it outlives its exit timeout; then clean up. Returns the code."""
        code = None
        if self.process is not None:
            self.drain()
            self.send_signal(signal.SIGTERM)
            try:
                code = self.process.wait(self._kill_after_s)
            except subprocess.TimeoutExpired:
                self.send_signal(signal.SIGKILL)
                code = self.process.wait()
        self._clean_up()
        if self._own_work_dir and self.work_dir is not None and code is not None:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        return code

    def kill(self) -> int | None:
        """SIGKILL the server and its backend stubs now (a broken server is not worth draining), remove
        their shared memory; the object can be started again. Returns the exit code."""
        code = None
        if self.process is not None:
            self.send_signal(signal.SIGKILL)
            code = self.process.wait()
            self.process = None
        self._clean_up()
        return code

    def _clean_up(self) -> None:
        """What a stopped or killed server leaves: its watchdog, backend stubs, shared memory and log."""
        from diffusegae.server.supervisor import kill_stubs, stubs

        self._stop_watchdog()
        # A stub outlives a server killed by a signal (a stopped or busy one never notices its parent is
        # gone): find this server's stubs by its shm prefix and SIGKILL them.
        kill_stubs(stubs(shm_prefix=self.shm_prefix))
        runtime.remove_shm(self.shm_prefix)
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> TritonServer:
        """Kill it and start it again on the same ports and repository, with a fresh shm prefix."""
        self.kill()
        self.shm_prefix = f"{runtime.SHM_PREFIX}{uuid.uuid4().hex[:12]}_"
        self.restarts += 1
        return self.start(prepare=False)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    repository: str | Path,
    checkpoint: str | Path | None = None,
    replicas: int = 1,
    supervise: bool = True,
    **options: Any,
) -> int:
    """Run until stopped; SIGINT / SIGTERM drain and stop every server. Returns the first exit code.

    Each server is supervised (server/supervisor.py): a dead or stopped backend process, or the server's
    own exit, restarts it on the same ports; `supervise=False` instead returns when a server exits.
    replicas > 1 starts that many servers over the one repository, each on its own free loopback ports
    with its own shm prefix and watchdog, and prints the gRPC address list a client takes as it is
    (`Client("a:8001,b:8002")`)."""
    from diffusegae.server.supervisor import Supervisor

    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    if replicas > 1:
        if checkpoint is not None:  # build once, then serve it N times
            TritonServer(repository, checkpoint, **options).prepare_repository()
        host = options.get("host", "127.0.0.1")
        ports = [{f"{k}_port": free_port(host) for k in ("grpc", "http", "metrics")} for _ in range(replicas)]
        servers = [TritonServer(repository, None, **{**options, **p}) for p in ports]
    else:
        servers = [TritonServer(repository, checkpoint, **options)]
    supervisors: list[Supervisor] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        for supervisor in supervisors:  # the exits that follow are not crashes
            supervisor.stop()
        supervisors.clear()
        for server in servers:
            server.drain()
            server.send_signal(signum)

    started: list[TritonServer] = []
    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for server in servers:
            started.append(server.start())
            if supervise:
                supervisors.append(Supervisor(server).start())
        for server in started:
            print(f"tritonserver {server.pid} serving {server.repository}: gRPC {server.url}, HTTP "
                  f"{server.http_url}", flush=True)  # fmt: skip
        if len(started) > 1:
            print(f"replicas: {','.join(server.url for server in started)}", flush=True)
        print("Ctrl-C stops " + ("it" if len(started) == 1 else "them"), flush=True)
        while True:
            if not supervisors:  # unsupervised, or stopping: the first exit ends the run
                for server in started:
                    code = server.process.poll() if server.process is not None else None
                    if code is not None:
                        return code
            time.sleep(0.2)
    finally:
        for supervisor in supervisors:
            supervisor.stop()
        for server in started:
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def container_command(
    repository: str | Path,
    *,
    version: str = NGC_VERSION,
    project: str | Path | None = None,
    gpus: str = "all",
    ports: dict[str, int] | None = None,
) -> str:
    """The `docker run … tritonserver` line serving the same repository in the NGC image (GPU machines).

    Repository and checkpoint are mounted at their own paths, so a relative checkpoint reference still
    resolves; the python models need this package, installed from the mounted project at start.
    Not runnable here (no Docker, no GPU): untested.
    """
    from diffusegae.server.repository import repository_checkpoint

    repo = Path(repository).resolve()
    project = Path(project).resolve() if project is not None else Path(__file__).resolve().parents[2]
    ports = {**DEFAULT_PORTS, **(ports or {})}
    mounts = [repo, *filter(None, [repository_checkpoint(repo)])]
    args = ["docker", "run", "--rm", f"--gpus={gpus}", f"--shm-size={CONTAINER_SHM_BYTES}"]
    args += [f"-p{ports[k]}:{DEFAULT_PORTS[k]}" for k in ("http", "grpc", "metrics")]
    args += [f"-v{path}:{path}" for path in mounts] + [f"-v{project}:/opt/diffusegae"]
    args += ["-eOMP_WAIT_POLICY=PASSIVE", NGC_IMAGE.replace(NGC_VERSION, version)]
    inner = (
        "pip install -q /opt/diffusegae 'numpy<2' && tritonserver "
        f"--model-repository={shlex.quote(str(repo))} --model-control-mode=none --exit-on-error=true"
    )
    return shlex.join([*args, "bash", "-c", inner])
