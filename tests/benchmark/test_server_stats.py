import pytest

from diffusegae.benchmark import server_stats
from diffusegae.benchmark.server_stats import composing_models, delta, parse_snapshot, summarize


def entry(name, requests, ns, batches=(), fail=0, inferences=None, executions=None):
    """A model's entry as tritonclient's get_inference_statistics(as_json=True) has it (int64s as strings)."""
    counter = {"count": str(requests), "ns": str(ns)} if requests else {}
    data = {
        "name": name,
        "version": "1",
        "inference_stats": {
            "success": counter,
            "fail": {"count": str(fail), "ns": "1000"} if fail else {},
            "queue": {"count": str(requests), "ns": str(ns // 10)} if requests else {},
            "compute_input": counter and {"count": str(requests), "ns": str(ns // 100)},
            "compute_infer": counter and {"count": str(requests), "ns": str(ns // 2)},
            "compute_output": counter and {"count": str(requests), "ns": str(ns // 100)},
            "cache_hit": {},
            "cache_miss": {},
        },
    }
    if requests:
        data["inference_count"] = str(inferences if inferences is not None else requests)
        data["execution_count"] = str(executions if executions is not None else requests)
        data["batch_stats"] = [
            {"batch_size": str(size), "compute_infer": {"count": str(n), "ns": "1"}} for size, n in batches
        ]
    return data


def test_delta_and_summary_of_an_ensemble_window():
    before = parse_snapshot(
        {"model_stats": [entry("edit", 2, 200_000_000), entry("decode", 2, 100_000_000, [(1, 2)]),
                         entry("invert", 0, 0)]}
    )  # fmt: skip
    after = parse_snapshot(
        {
            "model_stats": [
                entry("edit", 6, 700_000_000, fail=2),
                entry("decode", 6, 300_000_000, [(1, 2), (2, 2)], inferences=6, executions=4),
                entry("invert", 4, 200_000_000, [(4, 1)], inferences=4, executions=1),
            ]
        }
    )
    window = delta(before, after)
    assert window["edit"].success.count == 4 and window["edit"].fail.count == 2
    assert window["decode"].batches == {2: 2} and window["invert"].batches == {4: 1}
    s = summarize(window, "edit", ["decode", "invert"])
    assert s["requests"] == 4 and s["failed"] == 2
    assert s["latency_ms"] == pytest.approx(125.0)  # 500 ms over 4 requests
    # decode 200 ms / 2 + invert 200 ms / 2 of compute_infer, per edit request (4 of them)
    assert s["compute_infer_ms"] == pytest.approx((100 + 100) / 4)
    assert s["models"]["decode"]["batches"] == {"2": 2} and s["models"]["decode"]["executions"] == 2
    assert s["models"]["invert"]["compute_infer_ms"] == pytest.approx(25.0)
    assert server_stats.batch_histogram(s, "decode") == "2×2"
    assert server_stats.batch_histogram(None, "decode") == ""


def test_a_window_without_requests_has_no_means():
    empty = summarize(delta({}, parse_snapshot({"model_stats": [entry("edit", 0, 0)]})), "edit", ["decode"])
    assert empty["requests"] == 0 and empty["latency_ms"] is None and empty["queue_ms"] is None


def test_composing_models_in_step_order_once_each():
    config = {
        "config": {
            "name": "edit",
            "ensemble_scheduling": {
                "step": [{"model_name": m} for m in ["prepare", "encoder", "encoder", "swap", "decode"]]
            },
        }
    }
    assert composing_models(config) == ["prepare", "encoder", "swap", "decode"]
    assert composing_models({"config": {"name": "unet"}}) == []


def test_the_step_schedulers_counters_are_read_from_prometheus_text():
    from diffusegae.benchmark.server_stats import loop_summary, parse_loop_metrics

    def text(ticks: float, stepped: float, seconds: float) -> str:
        return "\n".join(
            [
                "# TYPE diffusegae_loop_ticks_total counter",
                f'diffusegae_loop_ticks_total{{model="decode"}} {ticks}',
                f'diffusegae_loop_samples_stepped_total{{model="decode"}} {stepped}',
                f'diffusegae_loop_tick_seconds_total{{model="decode"}} {seconds}',
                'diffusegae_loop_active{model="decode"} 3',
                'nv_inference_count{model="decode",version="1"} 12',
            ]
        )

    before, after = parse_loop_metrics(text(10, 20, 0.5)), parse_loop_metrics(text(30, 100, 1.5))
    assert before == {"decode": {"ticks": 10.0, "samples_stepped": 20.0, "tick_seconds": 0.5}}
    summary = loop_summary(before, after, seconds=4.0)
    assert summary == {
        "decode": {"ticks": 20.0, "samples_per_tick": 4.0, "ticks_per_s": 5.0, "ms_per_tick": 50.0}
    }
    assert loop_summary(after, after, 4.0) == {} and parse_loop_metrics("") == {}


def test_several_replicas_sum_to_one_fleet_and_count_their_own_requests():
    def snapshot(edits, ns, batches):
        return parse_snapshot(
            {"model_stats": [entry("edit", edits, ns), entry("decode", edits, ns, batches)]}
        )

    before = {"a": snapshot(1, 100, [(1, 1)]), "b": snapshot(0, 0, [])}
    after = {"a": snapshot(4, 400, [(1, 4)]), "b": snapshot(3, 600, [(1, 1), (2, 1)])}
    window = server_stats.fleet_delta(before, after)
    assert server_stats.per_replica(window, "edit") == {"a": 3, "b": 3}
    fleet = server_stats.merge(window)
    assert fleet["edit"].success == server_stats.Counter(6, 900)
    assert fleet["decode"].batches == {1: 4, 2: 1}
    assert summarize(fleet, "edit", ["decode"])["latency_ms"] == pytest.approx(900 / 6 / 1e6)
