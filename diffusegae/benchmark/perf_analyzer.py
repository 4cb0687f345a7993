"""Input data for Triton's perf_analyzer: one `--input-data` JSON per ensemble (op) of a checkpoint.

perf_analyzer's documented format ("Real Input Data"): `{"data": [entry, ...]}`, each entry one batch-1
request naming every input with `{"content": [...row-major values...], "shape": [...]}` (the shape without
the batch dimension; it is needed here because the image inputs are variable-sized, dims [-1,-1,-1]);
STRING tensors as lists of strings. perf_analyzer sends the entries round-robin (`-b B` batches them).
The entries are the rows of the requests `diffusegae bench` sends (workload.request, which uses the
client's request builders), checked against the ensemble specs, so no tensor name is written here.

perf_analyzer is not installable on this project's machines: the files are checked against the format
and the specs, not run through perf_analyzer.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import numpy as np

from diffusegae.client.calls import Call
from diffusegae.config import ModelConfig
from diffusegae.server.graph import ensembles
from diffusegae.server.specs import ANY, ModelSpec

DEFAULT_ENTRIES = 4


def _content(row: np.ndarray) -> list[Any]:
    if row.dtype == object:  # STRING tensors: UTF-8 bytes on the wire, plain strings in the JSON
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in row.ravel()]
    return row.ravel().tolist()


def check_against_spec(call: Call, spec: ModelSpec) -> None:
    """The request's tensors are the ensemble's inputs (all required ones), with its dtypes and ranks."""
    declared = {t.name: t for t in spec.inputs}
    unknown = sorted(set(call.inputs) - set(declared))
    missing = sorted(set(declared) - set(call.inputs) - set(spec.optional))
    if unknown or missing:
        raise ValueError(
            f"{spec.name}: request tensors differ from the spec (unknown {unknown}, missing {missing})"
        )
    for name, array in call.inputs.items():
        tensor = declared[name]
        if array.dtype != np.dtype(tensor.dtype) or array.ndim != len(tensor.shape):
            raise ValueError(f"{spec.name}.{name}: {array.dtype} {array.shape} does not match {tensor}")
        for dim, want in zip(array.shape[1:], tensor.shape[1:], strict=True):
            if want != ANY and dim != int(want):
                raise ValueError(f"{spec.name}.{name}: shape {array.shape} does not match {tensor.shape}")


def input_data(call: Call, spec: ModelSpec) -> dict[str, Any]:
    """perf_analyzer input data with one entry per row of `call` (inputs in the spec's order)."""
    check_against_spec(call, spec)
    names = [t.name for t in spec.inputs if t.name in call.inputs]
    rows = len(next(iter(call.inputs.values())))
    entries = [
        {
            name: {"content": _content(call.inputs[name][i]), "shape": list(call.inputs[name].shape[1:])}
            for name in names
        }
        for i in range(rows)
    ]
    return {"data": entries}


def write_input_data(
    config: ModelConfig,
    out_dir: str | Path,
    steps: int = 20,
    entries: int = DEFAULT_ENTRIES,
    directions: tuple[str, ...] = (),
) -> dict[str, Path]:
    """`<out_dir>/<op>.json` for every op the checkpoint serves; returns op → path."""
    from diffusegae.benchmark.workload import request

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for spec in ensembles(config, directions):
        call = request(spec.name, config, batch=entries, steps=steps, directions=directions)
        path = out / f"{spec.name}.json"
        path.write_text(json.dumps(input_data(call, spec), separators=(",", ":")) + "\n")
        paths[spec.name] = path
    return paths


def command(op: str, input_path: str | Path, url: str = "127.0.0.1:8001", concurrency: str = "1:8") -> str:
    """The perf_analyzer line that loads `op` over gRPC with this input data (concurrency start:end:step)."""
    options = {
        "-m": op,
        "-i": "grpc",
        "-u": url,
        "--input-data": str(input_path),
        "--concurrency-range": concurrency,
        "--measurement-interval": "10000",
        "--percentile": "95",
        "-f": f"{op}-perf_analyzer.csv",
    }
    return shlex.join(["perf_analyzer", *(part for pair in options.items() for part in pair)])
