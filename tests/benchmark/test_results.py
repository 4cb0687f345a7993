"""The results format and the BENCHMARKS.md generator (and bench/common.py, which writes through them)."""

import importlib.util
import json
import sys

import pytest

from diffusegae.benchmark import results
from diffusegae.benchmark.results import Record, append_records, read_records, render, render_table
from diffusegae.paths import PROJECT


def row(run="2026-11-21T10:00:00", engine="eager", median=35.6, **kw):
    values = dict(
        section="Engines, synth64",
        params={"op": "unet call", "batch": 1, "engine": engine},
        device="AMD EPYC, 2 threads",
        date=run[:10],
        command="python bench/engines.py",
        run=run,
        unit="ms",
        median=median,
        min=34.0,
        max=40.3,
        n=5,
        extra={"images/s": "28.09"},
        notes="1 warm-up",
    )
    return Record(**{**values, **kw})


def test_records_round_trip_through_jsonl(tmp_path):
    path = append_records(tmp_path / "engines.jsonl", [row(), row(engine="ort-all", median=26.7)])
    append_records(path, [row(run="2026-11-22T09:00:00")])
    back = read_records(path)
    assert back[0] == row() and len(back) == 3
    (tmp_path / "bad.jsonl").write_text(json.dumps({**row().to_json(), "colour": "red"}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_records(tmp_path / "bad.jsonl")


def test_a_table_per_run_with_medians_and_spread():
    text = render_table([row(), row(engine="ort-all", median=26.7)])
    lines = text.splitlines()
    assert lines[:5] == [
        "## Engines, synth64",
        "",
        "- command: `python bench/engines.py`",
        "- device: AMD EPYC, 2 threads",
        "- date: 2026-11-21",
    ]
    assert "| op | batch | engine | median ms | min–max ms | runs | images/s |" in lines
    assert "| unet call | 1 | ort-all | 26.7 | 34.0–40.3 | 5 | 28.09 |" in lines
    # columns nobody measured are left out; a metric names the median
    bare = render_table([row(min=None, max=None, n=None, metric="UNet call")])
    assert "| op | batch | engine | UNet call median ms | images/s |" in bare


def test_generator_keeps_notes_and_the_latest_run_of_each_table(tmp_path):
    notes = tmp_path / "NOTES.md"
    notes.write_text("# Benchmarks\n\nhand-written notes\n")
    res = tmp_path / "results"
    append_records(res / "engines.jsonl", [row(), row(engine="ort-all")])
    append_records(
        res / "engines.jsonl", [row(run="2026-11-22T09:00:00", median=30.0)]
    )  # the same table again
    append_records(res / "engines.jsonl", [row(device="H100", median=1.5)])  # another device: its own table
    append_records(
        res / "server_load.jsonl", [row(section="Server load", params={"concurrency": 1}, median=99.9)]
    )
    text = render(notes, res)
    assert text.startswith(results.GENERATED) and "hand-written notes" in text
    assert text.index("## Server load") < text.index("## Engines")  # RESULT_ORDER
    assert "| 30.0 |" in text and "| 35.6 |" not in text.split("H100")[0] and "ort-all" not in text
    assert text.count("## Engines, synth64") == 2 and "- device: H100" in text
    out = results.write_benchmarks(tmp_path / "BENCHMARKS.md", notes, res)
    assert out.read_text() == text


def test_benchmarks_md_is_generated_from_the_results_files():
    assert (PROJECT / "BENCHMARKS.md").read_text() == render(), "run python bench/report.py"


def test_rounded():
    assert [results.rounded(v) for v in (1890.2571, 35.64, 1.6149, 0.012345)] == [1890.3, 35.6, 1.61, 0.0123]


@pytest.fixture
def common(tmp_path, monkeypatch):
    """bench/common.py, writing into tmp_path instead of bench/results and BENCHMARKS.md."""
    monkeypatch.syspath_prepend(str(PROJECT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_common", PROJECT / "bench" / "common.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    notes = tmp_path / "NOTES.md"
    notes.write_text("# Benchmarks\n")
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(
        module,
        "write_benchmarks",
        lambda: results.write_benchmarks(tmp_path / "B.md", notes, tmp_path / "results"),
    )
    monkeypatch.setattr(sys, "argv", [str(PROJECT / "bench" / "adagn.py"), "--repeats", "3"])
    return module


def test_common_records_measurements(common, tmp_path):
    timing = common.measure(lambda: sum(range(1000)), repeats=3)
    text = common.save([common.record("Kernels", {"impl": "torch"}, timing, extra={"speed-up": "1.00×"})])
    assert "- command: `python bench/adagn.py --repeats 3`" in text and "| torch |" in text
    records = read_records(tmp_path / "results" / "adagn.jsonl")
    assert records[0].n == 3 and records[0].median is not None and records[0].unit == "ms"
    generated = (tmp_path / "B.md").read_text()
    assert "## Kernels" in generated and "| torch |" in generated
