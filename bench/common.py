"""Shared by the benchmark scripts: device description, timing with warm-up, BENCHMARKS.md rows."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {torch.get_num_threads()} threads"


def measure(fn: Callable[[], object], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median and spread (min, max) in seconds of `repeats` timed calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return {"median": statistics.median(times), "min": min(times), "max": max(times), "n": repeats}


def command_line() -> str:
    """The invocation, with the script named from the repository root (whatever the working directory)."""
    script = os.path.relpath(os.path.abspath(sys.argv[0]), BENCHMARKS.parent)
    return " ".join(shlex.quote(a) for a in ["python", script, *sys.argv[1:]])


def append_section(title: str, header: list[str], rows: list[list[str]], notes: str = "") -> str:
    """Append a results table (with command, device and date) to BENCHMARKS.md and return it."""
    lines = [
        f"## {title}",
        "",
        f"- command: `{command_line()}`",
        f"- device: {device_name()}",
        f"- date: {dt.date.today().isoformat()}",
    ]
    if notes:
        lines.append(f"- {notes}")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    text = "\n".join(lines) + "\n\n"
    if not BENCHMARKS.exists():
        BENCHMARKS.write_text(
            "# Benchmarks\n\nEvery table: the command that produced it, its device and date.\n\n"
        )
    with BENCHMARKS.open("a") as f:
        f.write(text)
    return text
