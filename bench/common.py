"""Shared by the benchmark scripts: device description, timing with warm-up, results records.

Each script builds one `record(...)` per table row and hands them to `save(...)`, which appends them to
bench/results/<script>.jsonl (the format: diffusegae.benchmark.results) and regenerates BENCHMARKS.md.
The layout: bench/ holds the in-process measurement scripts (this helper and one script per question);
diffusegae/benchmark/ is the library they and `diffusegae bench` share (results format, load generator,
statistics, reports).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

from diffusegae.benchmark.results import (
    BENCHMARKS,
    RESULTS_DIR,
    Record,
    append_records,
    cpu_name,
    render_table,
    rounded,
    run_stamp,
    write_benchmarks,
)
from diffusegae.engines.pipeline import Speedups

RUN = run_stamp()  # one invocation = one run: its rows form one table per section


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"{cpu_name()}, {torch.get_num_threads()} threads"


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


def record(
    section: str,
    params: dict[str, Any],
    timing: dict[str, float] | None = None,
    *,
    extra: dict[str, Any] | None = None,
    notes: str = "",
    metric: str | None = None,
    runs: bool = True,
) -> Record:
    """One table row: `timing` is measure()'s result (seconds), recorded in ms (median, min–max, and the
    number of runs unless `runs` is False); a timing value left None is shown empty."""
    values: dict[str, Any] = {}
    if timing is not None:
        values = {
            k: None if timing.get(k) is None else rounded(timing[k] * 1e3) for k in ("median", "min", "max")
        }
        values["n"] = int(timing["n"]) if runs else None
    return Record(
        section=section,
        params=params,
        device=device_name(),
        date=RUN[:10],
        command=command_line(),
        run=RUN,
        unit="ms" if timing is not None else None,
        metric=metric,
        extra=extra or {},
        notes=notes,
        **values,
    )


def results_file() -> Path:
    """bench/results/<script>.jsonl for the running script."""
    return RESULTS_DIR / f"{Path(sys.argv[0]).stem}.jsonl"


def save(records: Sequence[Record]) -> str:
    """Append the records to the script's results file, regenerate BENCHMARKS.md; returns the table(s)."""
    append_records(results_file(), records)
    write_benchmarks()
    sections = list(dict.fromkeys(r.section for r in records))
    return "\n".join(render_table([r for r in records if r.section == s]) for s in sections)


def served_bench(url: str, out: Path, *flags: str, metrics_url: str | None = None) -> dict:
    """One `diffusegae bench --op edit` run against the server(s) at `url` → its first level's summary."""
    command = [sys.executable, "-m", "diffusegae.cli", "bench", "--server", url]
    command += ["--metrics-url", metrics_url] if metrics_url else []
    command += ["--op", "edit", "--out", str(out), "--warmup", "2", *flags]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "edit.json").read_text())["levels"][0]


class Mode(NamedTuple):
    """A lossy mode as the benchmarks write it: the pipeline's Speedups and torch-engine options (bf16)."""

    speedups: Speedups
    torch_options: dict[str, object]  # empty: the mode runs on the script's own engine


def parse_mode(mode: str) -> Mode:
    """ "exact", or parts joined by '+': reuse=N, invert=N, bf16 (the torch engine in bfloat16), winograd
    (the torch engine's Winograd convolutions)."""
    fields = {"reuse": "feature_reuse", "invert": "invert_steps"}
    values, options = {}, {}
    for part in mode.split("+"):
        key, _, value = part.partition("=")
        if part == "bf16":
            options["dtype"] = "bfloat16"
        elif part == "winograd":
            options["winograd"] = True
        elif key in fields and value.isdigit():
            values[fields[key]] = int(value)
        elif part != "exact":
            raise SystemExit(
                f"unknown mode {part!r}: write exact, reuse=N, invert=N, bf16, winograd, "
                "or several of them joined by '+'"
            )
    return Mode(Speedups(**values), options)
