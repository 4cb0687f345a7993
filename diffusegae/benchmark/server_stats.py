"""The server's side of a level: Triton's inference statistics before and after, as a delta.

Triton keeps cumulative counters per model (`get_inference_statistics`): successful and failed requests
with their total time, and per successful request the time queued and in compute input / infer / output,
plus `batch_stats`, the executions per batch size the model actually ran. An op is an ensemble: its own
counters give the server-side latency of whole requests, and its composing models (read from its
`ensemble_scheduling`) say where the time went and which batches the dynamic batcher formed. As
perf_analyzer does for ensembles, the op's queue and compute times are the sums over its composing models'
(so steps that run side by side add up), per op request.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

PHASES = ("queue", "compute_input", "compute_infer", "compute_output")


@dataclass(frozen=True)
class Counter:
    count: int = 0
    ns: int = 0

    @classmethod
    def parse(cls, data: dict[str, Any] | None) -> Counter:
        data = data or {}
        return cls(int(data.get("count", 0)), int(data.get("ns", 0)))

    def plus(self, other: Counter, sign: int = 1) -> Counter:
        """This counter plus `sign` × the other (sign -1: the difference)."""
        return Counter(self.count + sign * other.count, self.ns + sign * other.ns)


@dataclass(frozen=True)
class ModelStats:
    """One model's cumulative counters (or the difference of two snapshots)."""

    name: str
    success: Counter = Counter()
    fail: Counter = Counter()
    phases: dict[str, Counter] = field(default_factory=dict)
    inference_count: int = 0  # samples (batch rows) run
    execution_count: int = 0  # model executions (batches) run
    batches: dict[int, int] = field(default_factory=dict)  # batch size → executions

    @classmethod
    def parse(cls, data: dict[str, Any]) -> ModelStats:
        """From one entry of `get_inference_statistics(as_json=True)["model_stats"]` (int64s as strings)."""
        stats = data.get("inference_stats", {})
        return cls(
            name=data["name"],
            success=Counter.parse(stats.get("success")),
            fail=Counter.parse(stats.get("fail")),
            phases={phase: Counter.parse(stats.get(phase)) for phase in PHASES},
            inference_count=int(data.get("inference_count", 0)),
            execution_count=int(data.get("execution_count", 0)),
            batches={
                int(b["batch_size"]): Counter.parse(b.get("compute_infer")).count
                for b in data.get("batch_stats", [])
            },
        )

    def __sub__(self, before: ModelStats) -> ModelStats:
        return self._combine(before, -1)

    def __add__(self, other: ModelStats) -> ModelStats:
        """Two replicas' counters of the same model, as one fleet's."""
        return self._combine(other, 1)

    def _combine(self, other: ModelStats, sign: int) -> ModelStats:
        sizes = sorted(set(self.batches) | set(other.batches))
        batches = {size: self.batches.get(size, 0) + sign * other.batches.get(size, 0) for size in sizes}
        return ModelStats(
            name=self.name,
            success=self.success.plus(other.success, sign),
            fail=self.fail.plus(other.fail, sign),
            phases={
                p: self.phases.get(p, Counter()).plus(other.phases.get(p, Counter()), sign) for p in PHASES
            },
            inference_count=self.inference_count + sign * other.inference_count,
            execution_count=self.execution_count + sign * other.execution_count,
            batches={size: n for size, n in batches.items() if n},
        )

    def mean_ms(self, phase: str) -> float | None:
        """Mean time per request in a phase (ms), None when the model served no request."""
        counter = self.phases.get(phase, Counter())
        return counter.ns / counter.count / 1e6 if counter.count else None

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.success.count,
            "failed": self.fail.count,
            "executions": self.execution_count,
            "inferences": self.inference_count,
            **{f"{phase}_ms": self.mean_ms(phase) for phase in PHASES},
            "batches": {str(size): n for size, n in self.batches.items()},
        }


Snapshot = dict[str, ModelStats]


def parse_snapshot(statistics: dict[str, Any]) -> Snapshot:
    """`get_inference_statistics(as_json=True)` → model name → counters (the highest version of each)."""
    return {entry["name"]: ModelStats.parse(entry) for entry in statistics.get("model_stats", [])}


def delta(before: Snapshot, after: Snapshot) -> Snapshot:
    return {name: stats - before.get(name, ModelStats(name)) for name, stats in after.items()}


Fleet = dict[str, Snapshot]  # replica address → its snapshot


def fleet_delta(before: Fleet, after: Fleet) -> Fleet:
    return {url: delta(before.get(url, {}), snapshot) for url, snapshot in after.items()}


def merge(fleet: Fleet) -> Snapshot:
    """Every replica's counters summed per model: the fleet as one server."""
    out: Snapshot = {}
    for snapshot in fleet.values():
        for name, stats in snapshot.items():
            out[name] = out[name] + stats if name in out else stats
    return out


def per_replica(window: Fleet, op: str) -> dict[str, int]:
    """The op's requests each replica answered in a window."""
    return {url: snapshot.get(op, ModelStats(op)).success.count for url, snapshot in window.items()}


def composing_models(model_config: dict[str, Any]) -> list[str]:
    """The models an ensemble's steps call, in step order, each once (`get_model_config(as_json=True)`)."""
    config = model_config.get("config", model_config)
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    return list(dict.fromkeys(step["model_name"] for step in steps))


def summarize(window: Snapshot, op: str, models: Iterable[str]) -> dict[str, Any]:
    """The server's view of one window of an op: per-request latency and phases, and each model's own."""
    op_stats = window.get(op, ModelStats(op))
    requests = op_stats.success.count
    composing = [window.get(name, ModelStats(name)) for name in models]
    summary: dict[str, Any] = {
        "requests": requests,
        "failed": op_stats.fail.count,
        "latency_ms": op_stats.success.ns / requests / 1e6 if requests else None,
    }
    for phase in PHASES:
        total = sum(m.phases.get(phase, Counter()).ns for m in composing)
        summary[f"{phase}_ms"] = total / requests / 1e6 if requests else None
    summary["models"] = {m.name: m.to_json() for m in composing}
    return summary


def batch_histogram(summary: dict[str, Any] | None, model: str) -> str:
    """ "1×12 2×5": the executions per batch size one model ran in a window ("" if unknown)."""
    batches = ((summary or {}).get("models", {}).get(model) or {}).get("batches", {})
    return " ".join(f"{size}×{n}" for size, n in batches.items())


# The step scheduler's counters (server/models/loop_metrics.py) on the Prometheus endpoint.
_LOOP_COUNTER = re.compile(
    r'^diffusegae_loop_(ticks|samples_stepped|tick_seconds)_total\{model="([^"]+)"\} (\S+)$'
)
LoopCounters = dict[str, dict[str, float]]  # model → counter → value


def parse_loop_metrics(text: str) -> LoopCounters:
    """The step scheduler's cumulative counters per loop model from Prometheus text (empty without any)."""
    out: LoopCounters = {}
    for line in text.splitlines():
        match = _LOOP_COUNTER.match(line.strip())
        if match:
            out.setdefault(match.group(2), {})[match.group(1)] = float(match.group(3))
    return out


def loop_summary(before: LoopCounters, after: LoopCounters, seconds: float) -> dict[str, dict[str, float]]:
    """Per loop model over a window: ticks, samples per tick (the batch each network call ran), ticks/s."""
    out = {}
    for model, counters in after.items():
        old = before.get(model, {})
        ticks = counters.get("ticks", 0.0) - old.get("ticks", 0.0)
        if ticks <= 0:
            continue
        stepped = counters.get("samples_stepped", 0.0) - old.get("samples_stepped", 0.0)
        busy = counters.get("tick_seconds", 0.0) - old.get("tick_seconds", 0.0)
        out[model] = {
            "ticks": ticks,
            "samples_per_tick": round(stepped / ticks, 2),
            "ticks_per_s": round(ticks / seconds, 2) if seconds > 0 else None,
            "ms_per_tick": round(busy / ticks * 1e3, 2),
        }
    return out


class ServerStats:
    """Snapshots of the statistics of a server, or of each replica of several (`url` as the client takes
    it), over tritonclient gRPC (blocking: call between levels or in a thread), and of the step schedulers'
    counters from `metrics_url` (one endpoint or a comma-separated list, summed) when given."""

    def __init__(self, url: str, timeout: float = 30.0, metrics_url: str | None = None) -> None:
        import tritonclient.grpc as grpcclient

        from diffusegae.client.replicas import endpoints

        self._replicas = {u: grpcclient.InferenceServerClient(u) for u in endpoints(url)}
        self._grpc = next(iter(self._replicas.values()))
        self.timeout = timeout
        self.metrics_urls = [u.strip() for u in metrics_url.split(",") if u.strip()] if metrics_url else []

    def loop_counters(self) -> LoopCounters:
        """The step schedulers' counters; empty when there is no endpoint or no step-batched loop."""
        total: LoopCounters = {}
        for url in self.metrics_urls:
            try:
                with urllib.request.urlopen(url, timeout=self.timeout) as response:
                    counters = parse_loop_metrics(response.read().decode("utf-8", "replace"))
            except OSError:
                continue
            for model, values in counters.items():
                mine = total.setdefault(model, {})
                for name, value in values.items():
                    mine[name] = mine.get(name, 0.0) + value
        return total

    def snapshot(self) -> Fleet:
        """Every replica's statistics (a replica that does not answer is left out)."""
        from tritonclient.utils import InferenceServerException

        out: Fleet = {}
        for url, grpc in self._replicas.items():
            try:
                out[url] = parse_snapshot(
                    grpc.get_inference_statistics(as_json=True, client_timeout=self.timeout)
                )
            except InferenceServerException:
                continue
        return out

    def model_config(self, name: str) -> dict[str, Any]:
        return self._grpc.get_model_config(name, as_json=True, client_timeout=self.timeout)

    def composing_models(self, op: str) -> list[str]:
        return composing_models(self.model_config(op))

    def close(self) -> None:
        for grpc in self._replicas.values():
            grpc.close()
