"""`diffusegae bench` against the real server (the session's tiny32 server), and its argument errors."""

import csv
import json

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from PIL import Image

from diffusegae.benchmark import perf_analyzer
from diffusegae.checkpoint import read_config
from diffusegae.cli import main
from diffusegae.server.launcher import free_port
from diffusegae.server.specs import DECODE, EDIT

pytestmark = pytest.mark.timeout(240)


def bench(server, out, *args):
    return main(["bench", "--server", server.url, "--op", EDIT, "--steps", "2", "--out", str(out), *args])


def load(out):
    return json.loads((out / f"{EDIT}.json").read_text())


def check_level(level):
    assert level["ok"] + level["errors"] == level["sent"]
    assert level["requests_per_s"] == pytest.approx(level["ok"] / level["duration_s"])
    assert level["images_per_s"] == pytest.approx(level["requests_per_s"] * level["batch"])
    lat = level["latency_ms"]
    if level["ok"]:
        assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def test_closed_and_open_loop_against_the_server(server, tmp_path, capsys):
    record = tmp_path / "server_load.jsonl"
    closed = ["--concurrency", "1,2", "--duration", "2", "--warmup", "1", "--record", str(record)]
    assert bench(server, tmp_path / "closed", *closed) == 0
    printed = capsys.readouterr().out
    assert "c=1" in printed and "c=2" in printed and "decode batches" in printed
    data = load(tmp_path / "closed")
    assert data["meta"]["checkpoint"] == "tiny32" and DECODE in data["meta"]["composing_models"]
    for level, c in zip(data["levels"], (1, 2), strict=True):
        check_level(level)
        assert level["level"] == {
            "mode": "concurrency",
            "value": c,
            "distribution": "constant",
            "label": f"c={c}",
        }
        assert level["errors"] == 0 and level["ok"] >= 2
        assert level["duration_s"] == pytest.approx(2.0, abs=0.5)
        assert level["issued"] >= level["sent"] + 1  # the warm-up request is not counted
        server_side = level["server"]
        # the server counted the same requests, give or take those in flight at the window's edges
        assert abs(server_side["requests"] - level["ok"]) <= 2 * c and server_side["failed"] == 0
        assert 0 < server_side["latency_ms"] <= level["latency_ms"]["max"]
        decode = server_side["models"][DECODE]
        assert sum(int(size) * n for size, n in decode["batches"].items()) == decode["inferences"] > 0
        assert sum(decode["batches"].values()) == decode["executions"]
    with (tmp_path / "closed" / f"{EDIT}.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["Concurrency"] for r in rows] == ["1", "2"] and all(
        int(r["Server Compute Infer"]) > 0 for r in rows
    )
    with Image.open(tmp_path / "closed" / f"{EDIT}.png") as image:
        assert image.format == "PNG"
    records = [json.loads(line) for line in record.read_text().splitlines()]
    assert [r["params"] for r in records] == [{"concurrency": 1}, {"concurrency": 2}]
    assert [r["median"] for r in records] == [round(lv["latency_ms"]["p50"], 1) for lv in data["levels"]]
    assert (
        records[0]["command"].startswith("diffusegae bench --server")
        and "--duration 2" in records[0]["command"]
    )

    assert (
        bench(server, tmp_path / "open", "--rate", "4", "--poisson", "--requests", "6", "--warmup", "1") == 0
    )
    (level,) = load(tmp_path / "open")["levels"]
    check_level(level)
    assert (level["sent"], level["ok"], level["issued"]) == (6, 6, 7)
    # the window's requests: all were answered between the marks (the last may reach the statistics late)
    assert 5 <= level["server"]["requests"] <= 6
    assert level["send_lag_ms"] is not None and level["level"]["distribution"] == "poisson"


def test_refused_requests_are_counted_not_fatal(server, tmp_path, capsys):
    assert (
        bench(server, tmp_path, "--steps", "0", "--concurrency", "2", "--requests", "12", "--warmup", "0")
        == 0
    )
    (level,) = load(tmp_path)["levels"]
    check_level(level)
    assert (level["sent"], level["ok"], level["errors"]) == (12, 0, 12)
    ((message, count),) = level["errors_by_message"].items()
    assert count == 12 and "INVALID_ARGUMENT" in message and "steps" in message
    assert level["server"]["failed"] > 0 and level["server"]["requests"] == 0
    assert "12 × [INVALID_ARGUMENT]" in capsys.readouterr().out


def test_perf_analyzer_input_data_is_accepted_by_the_server(server, checkpoint, tmp_path):
    """Each entry sent as perf_analyzer would: one batch-1 request, tensors named and shaped by the JSON."""
    paths = perf_analyzer.write_input_data(read_config(checkpoint), tmp_path, steps=2, entries=1)
    grpc = grpcclient.InferenceServerClient(server.url)
    try:
        for op, path in paths.items():
            metadata = grpc.get_model_metadata(op, as_json=True)
            dtypes = {t["name"]: t["datatype"] for t in metadata["inputs"]}
            (entry,) = json.loads(path.read_text())["data"]
            inputs = []
            for name, tensor in entry.items():
                dtype = object if dtypes[name] == "BYTES" else grpcclient.triton_to_np_dtype(dtypes[name])
                content = [v.encode() for v in tensor["content"]] if dtype is object else tensor["content"]
                array = np.array(content, dtype=dtype).reshape([1, *tensor["shape"]])
                inputs.append(grpcclient.InferInput(name, list(array.shape), dtypes[name]))
                inputs[-1].set_data_from_numpy(array)
            result = grpc.infer(op, inputs)
            if op == "inversion":  # the latents of the image, not an image
                assert result.as_numpy("z_sem").shape == (1, 512) and result.as_numpy("x_t").shape == (
                    1,
                    3,
                    32,
                    32,
                )
                continue
            output = result.as_numpy("output")
            assert output.shape == (1, 32, 32, 3) and output.dtype == np.uint8, op
    finally:
        grpc.close()


def test_no_server_is_a_clear_error(tmp_path, capsys):
    url = f"127.0.0.1:{free_port()}"
    assert main(["bench", "--server", url, "--duration", "1", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"no server ready at {url}" in err and "Traceback" not in err
    assert not (tmp_path / f"{EDIT}.json").exists()
    assert main(["bench", "--server", url, "--rate", "1", "--stability", "10"]) == 2
    assert "--stability is for closed-loop levels" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--concurrency", "1,two"], "--concurrency takes positive numbers"),
        (["--concurrency", "0"], "--concurrency takes positive numbers"),
        (["--rate", "-1"], "--rate takes positive numbers"),
        (["--op", "paint"], "invalid choice: 'paint'"),
        (["--duration", "1", "--requests", "3"], "not allowed with argument"),
        (["--batch", "0"], "must be a positive int"),
    ],
)
def test_bad_arguments_are_usage_errors(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_write_input_data_prints_the_perf_analyzer_lines(tmp_path, capsys):
    assert main(["bench", "--write-input-data", str(tmp_path / "pa")]) == 0
    out = capsys.readouterr().out
    assert (
        f"perf_analyzer -m {EDIT} -i grpc -u 127.0.0.1:8001 --input-data {tmp_path / 'pa' / 'edit.json'}"
        in out
    )
    assert sorted(p.name for p in (tmp_path / "pa").iterdir()) == [
        "edit.json", "edit_inverted.json", "interpolate.json", "inversion.json", "recombine.json",
        "reconstruct.json",
    ]  # fmt: skip
