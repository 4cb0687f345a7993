"""How the tritonserver bundled with nvidia-pytriton runs on a CPU machine (see ENVIRONMENT.md).

The binary and backends ship inside the pytriton package. The python backend needs its stub for this
interpreter's version copied into a writable backend folder, the venv's bin first on PATH (the stub's Python
imports from it), and this interpreter's libpython first on LD_LIBRARY_PATH (else the stub may pick up a
system libpython of another patch release, or fail to start where there is none).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
from pathlib import Path

SHM_PREFIX = "triton_python_backend_shm_region_"  # the python backend's default region prefix


def pytriton_home() -> Path:
    """SP/pytriton/tritonserver, without importing pytriton (its import is slow and pulls in much)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the bundled tritonserver comes with nvidia-pytriton: `pip install nvidia-pytriton 'numpy<2'`"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "tritonserver"


def binary() -> Path:
    path = pytriton_home() / "bin" / "tritonserver"
    if not path.is_file():
        raise FileNotFoundError(f"no tritonserver binary at {path}; reinstall nvidia-pytriton")
    return path


def prepare_backends(work_dir: Path) -> Path:
    """A writable copy of the bundled backends with the python stub for this interpreter in python/."""
    home = pytriton_home()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise FileNotFoundError(f"nvidia-pytriton ships no python backend stub for Python {version} ({stub})")
    backends = work_dir / "backends"
    shutil.copytree(home / "backends", backends, dirs_exist_ok=True, copy_function=_copy_if_changed)
    _copy_if_changed(stub, backends / "python" / stub.name)
    return backends


def _copy_if_changed(source: str | Path, target: str | Path) -> None:
    """copy2, except onto an identical copy (same size and mtime): a restarted server reuses its backends,
    and a binary that a dying process still maps cannot be overwritten ("Text file busy")."""
    src, dst = os.stat(source), Path(target)
    if dst.is_file() and (dst.stat().st_size, dst.stat().st_mtime_ns) == (src.st_size, src.st_mtime_ns):
        return
    shutil.copy2(source, target)


DRAIN_ENV = "DIFFUSEGAE_DRAIN_FILE"


def drain_file(work_dir: Path) -> Path:
    return work_dir / "draining"


def draining() -> bool:
    """True once the launcher that started this server process tree has begun to stop it."""
    path = os.environ.get(DRAIN_ENV)
    return bool(path) and os.path.exists(path)


def environment(work_dir: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The server's environment: PATH, LD_LIBRARY_PATH, a writable cache, passive OpenMP waits."""
    env = dict(os.environ if base is None else base)
    home = pytriton_home()
    libs = [str(sysconfig.get_config_var("LIBDIR")), str(home.parent.parent / "nvidia_pytriton.libs")]
    env["LD_LIBRARY_PATH"] = os.pathsep.join([*libs, *filter(None, [env.get("LD_LIBRARY_PATH")])])
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["XDG_CACHE_HOME"] = str(work_dir / "cache")  # onnxruntime writes a cache on import
    # The launcher creates this file when it stops the server: step-batched loops then answer what they
    # hold with UNAVAILABLE at once (retryable elsewhere) instead of running it out past the exit timeout.
    env[DRAIN_ENV] = str(drain_file(work_dir))
    # OpenMP threads spinning while they wait starve each other and any other busy process on few cores
    # (measured: 50× slower torch with a training job beside it). Every model process inherits this.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def arguments(
    repository: Path,
    backends: Path,
    host: str,
    ports: dict[str, int],
    shm_prefix: str,
    exit_timeout: int,
    log_verbose: int = 0,
) -> list[str]:
    """Command line: static repository, the given address only, no GPU pools or metrics, fail fast."""
    return [
        str(binary()),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        "--model-control-mode=none",
        "--disable-auto-complete-config",
        "--strict-readiness=true",
        f"--http-address={host}",
        f"--http-port={ports['http']}",
        f"--grpc-address={host}",
        f"--grpc-port={ports['grpc']}",
        f"--metrics-address={host}",
        f"--metrics-port={ports['metrics']}",
        "--allow-gpu-metrics=false",
        "--exit-on-error=true",
        "--pinned-memory-pool-byte-size=0",
        "--cuda-memory-pool-byte-size=0:0",
        f"--exit-timeout-secs={exit_timeout}",
        f"--backend-config=python,shm-region-prefix-name={shm_prefix}",
        f"--log-verbose={log_verbose}",
    ]


def remove_shm(prefix: str) -> list[Path]:
    """Delete the python backend's shared-memory regions named with `prefix` (a crashed stub leaves them)."""
    removed = []
    for path in Path("/dev/shm").glob(f"{prefix}*"):
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed
