import math

import pytest

from diffusegae.benchmark.stats import Level, Sample, percentile, spread, summarize


def test_nearest_rank_percentiles_of_known_values():
    values = list(range(1, 101))  # 1..100
    assert [percentile(values, p) for p in (50, 90, 95, 99, 100)] == [50, 90, 95, 99, 100]
    assert percentile([7.0], 50) == percentile([7.0], 99) == 7.0
    assert percentile([1, 2, 3, 4], 50) == 2 and percentile([1, 2, 3, 4], 51) == 3
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 0)


def test_summary_counts_add_up_and_percentiles_are_ordered():
    ok = [Sample(0.0, t / 1000) for t in (5, 1, 9, 3, 7, 2, 8)]  # latencies 1..9 ms, seven of them
    bad = [Sample(0.0, 0.001, "[INVALID_ARGUMENT] steps"), Sample(0.0, 0.002, "[UNAVAILABLE] gone")]
    s = summarize(Level("concurrency", 2), ok + bad + [Sample(0, 0.001, "[INVALID_ARGUMENT] steps")], 2.0, 4)
    assert (s.sent, s.ok, s.errors) == (10, 7, 3)
    lat = s.latency_ms
    assert lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
    assert lat["p50"] == pytest.approx(5.0) and lat["max"] == pytest.approx(9.0)
    assert lat["mean"] == pytest.approx(5.0)
    assert s.requests_per_s == pytest.approx(3.5) and s.images_per_s == pytest.approx(14.0)
    assert s.errors_by_message == {"[INVALID_ARGUMENT] steps": 2, "[UNAVAILABLE] gone": 1}
    data = s.to_json()
    assert data["level"]["label"] == "c=2" and data["images_per_s"] == pytest.approx(14.0)


def test_a_level_without_answers_has_no_latencies():
    s = summarize(Level("rate", 2.0, "poisson"), [Sample(0, 1, "boom")] * 3, 1.5, 1)
    assert (s.ok, s.errors, s.requests_per_s) == (0, 3, 0.0)
    assert all(v is None for v in s.latency_ms.values())
    assert s.level.label == "r~2/s"


def test_many_distinct_messages_are_capped():
    samples = [Sample(0, 1, f"error {i}") for i in range(8)]
    kept = summarize(Level("concurrency", 1), samples, 1.0, 1).errors_by_message
    assert len(kept) == 6 and kept["(other messages)"] == 3 and sum(kept.values()) == 8


def test_levels_are_checked():
    assert Level("concurrency", 4).label == "c=4" and Level("rate", 0.5).label == "r=0.5/s"
    for bad in [("concurrency", 1.5), ("concurrency", 0), ("rate", -1), ("load", 1)]:
        with pytest.raises(ValueError):
            Level(*bad)
    with pytest.raises(ValueError):
        Level("rate", 1, "bursty")


def test_spread():
    assert spread([2.0, 2.0]) == 0 and spread([1.0, 1.1]) == pytest.approx(0.1)
    assert spread([0.0, 1.0]) == math.inf and spread([0.0, 0.0]) == 0
