import json
import math

import numpy as np
import pytest

from diffusegae import preset
from diffusegae.benchmark import perf_analyzer
from diffusegae.benchmark.workload import BenchError, request
from diffusegae.checkpoint import read_config
from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.graph import ensembles
from diffusegae.server.specs import ANY, EDIT, RECOMBINE


@pytest.mark.parametrize(
    "config", [read_config(SHIPPED_CHECKPOINT), preset("diffae64")], ids=lambda c: c.name
)
def test_input_data_matches_the_ensemble_specs(tmp_path, config):
    paths = perf_analyzer.write_input_data(config, tmp_path, steps=20, entries=3)
    specs = {spec.name: spec for spec in ensembles(config)}
    assert set(paths) == set(specs)
    for op, path in paths.items():
        data = json.loads(path.read_text())
        assert set(data) == {"data"} and len(data["data"]) == 3
        declared = {t.name: t for t in specs[op].inputs}
        for entry in data["data"]:
            assert set(declared) - set(entry) <= set(specs[op].optional)
            for name, tensor in entry.items():
                spec = declared[name]
                assert len(tensor["shape"]) == len(spec.shape) - 1  # no batch dimension
                for got, want in zip(tensor["shape"], spec.shape[1:], strict=True):
                    assert want == ANY or got == want
                assert len(tensor["content"]) == math.prod(tensor["shape"])
                if spec.dtype == "object":
                    assert all(isinstance(v, str) for v in tensor["content"])
                elif spec.dtype == "uint8":
                    assert all(isinstance(v, int) and 0 <= v <= 255 for v in tensor["content"])
        if op == EDIT:
            assert entry["steps"]["content"] == [20] and entry["source"]["shape"] == [32, 32, 3]


def test_a_plain_diffae_checkpoint_serves_no_edit():
    assert {s.name for s in ensembles(preset("diffae64"))}.isdisjoint({EDIT, RECOMBINE})
    with pytest.raises(BenchError, match="GAE"):
        request(EDIT, preset("diffae64"))
    with pytest.raises(BenchError, match="unknown op"):
        request("frobnicate", preset("tiny32"))


def test_requests_that_do_not_match_the_spec_are_refused():
    config = preset("tiny32")
    spec = next(s for s in ensembles(config) if s.name == EDIT)
    call = request(EDIT, config, batch=2)
    wrong = type(call)(call.model, {**call.inputs, "steps": call.inputs["steps"].astype(np.int64)})
    with pytest.raises(ValueError, match="steps"):
        perf_analyzer.input_data(wrong, spec)
    missing = type(call)(call.model, {k: v for k, v in call.inputs.items() if k != "reference"})
    with pytest.raises(ValueError, match="reference"):
        perf_analyzer.input_data(missing, spec)


def test_command_line():
    line = perf_analyzer.command("edit", "pa/edit.json", "127.0.0.1:8001")
    assert line.startswith("perf_analyzer -m edit -i grpc -u 127.0.0.1:8001 --input-data pa/edit.json")
    assert "--concurrency-range 1:8" in line
