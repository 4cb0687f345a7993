import csv
import json

from PIL import Image

from diffusegae.benchmark import report
from diffusegae.benchmark.stats import Level, Sample, summarize


def levels():
    out = []
    for i, level in enumerate(
        [Level("concurrency", 1), Level("concurrency", 2), Level("rate", 3.0, "poisson")]
    ):
        samples = [Sample(0.0, (10 + i * 5 + k) / 1000) for k in range(20)] + [Sample(0, 0.001, "[X] no")] * i
        s = summarize(level, samples, 2.0, 2, send_lag_ms=0.5 if level.mode == "rate" else None)
        s.server = {
            "requests": 20,
            "latency_ms": 9.0 + i,
            "queue_ms": 1.0,
            "compute_input_ms": 0.1,
            "compute_infer_ms": 7.5,
            "compute_output_ms": 0.2,
            "models": {"decode": {"batches": {"1": 12, "2": 4}}},
        }
        out.append(s)
    return out


def test_table_csv_json_png(tmp_path):
    summaries = levels()
    text = report.table(summaries, "edit")
    assert "c=1" in text and "r~3/s" in text and "1×12 2×4" in text and "2 × [X] no" in text
    path = report.write_csv(summaries, tmp_path / "edit.csv")
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:3] == ["Concurrency", "Request Rate", "Inferences/Second"]
    assert [r["Concurrency"] for r in rows] == ["1", "2", ""] and rows[2]["Request Rate"] == "3"
    for row in rows:
        p = [int(row[f"p{q} latency"]) for q in (50, 90, 95, 99)]
        assert p == sorted(p) and int(row["Sent"]) == int(row["OK"]) + int(row["Errors"])
        assert row["Server Compute Infer"] == "7500"  # microseconds, as perf_analyzer writes them
    assert float(rows[0]["Inferences/Second"]) == 2 * float(rows[0]["Requests/Second"]) == 20.0
    data = json.loads(report.write_json(summaries, {"op": "edit"}, tmp_path / "edit.json").read_text())
    assert data["meta"] == {"op": "edit"} and [lv["level"]["label"] for lv in data["levels"]] == [
        "c=1",
        "c=2",
        "r~3/s",
    ]
    png = report.write_png(summaries, tmp_path / "edit.png", "edit")
    with Image.open(png) as image:
        assert image.format == "PNG" and image.size[0] > 500 and image.size[1] > 300
        assert len(image.convert("RGB").getcolors(1 << 16)) > 4  # drawn, not blank


def test_png_of_levels_without_answers(tmp_path):
    s = summarize(Level("concurrency", 1), [Sample(0, 1, "refused")], 1.0, 1)
    with Image.open(report.write_png([s], tmp_path / "x.png")) as image:
        assert image.format == "PNG"
    assert "c=1" in report.table([s])


def test_nice_axis_tops():
    assert [report._nice_max(v) for v in (0, 0.3, 1, 7, 11, 240, 251)] == [1, 0.5, 1, 10, 20, 250, 500]
