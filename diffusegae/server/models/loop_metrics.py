"""The step scheduler's own figures as python-backend custom metrics (`pb_utils.MetricFamily`), on the
server's Prometheus endpoint: what Triton's queue time cannot see once requests wait inside a loop model.

    diffusegae_loop_active{model="decode"}           samples in the running batch (gauge)
    diffusegae_loop_waiting{model="decode"}          samples queued for it (gauge)
    diffusegae_loop_ticks_total{model="decode"}      network calls (counter)
    diffusegae_loop_samples_stepped_total{...}       samples moved one step, summed over ticks (counter)
    diffusegae_loop_tick_seconds_total{...}          seconds spent in ticks (counter)

and the inversion cache's (engines/xt_cache.py), on `invert` in either batching mode:

    diffusegae_xt_cache_hits_total{model="invert"}     rows answered from the cache (counter)
    diffusegae_xt_cache_misses_total{model="invert"}   rows the loop had to run (counter)
"""

from __future__ import annotations

from typing import Any

import triton_python_backend_utils as pb_utils

from diffusegae.engines.scheduler import Stats

PREFIX = "diffusegae_loop_"
GAUGES = {"active": "samples in the running batch", "waiting": "samples queued for the running batch"}
COUNTERS = {
    "ticks": "network calls of the step scheduler",
    "samples_stepped": "samples moved one step, summed over ticks",
    "tick_seconds": "seconds spent in ticks",
}


class SchedulerMetrics:
    """One model's metrics; `update` is the scheduler's observer."""

    def __init__(self, model: str) -> None:
        self.metrics: dict[str, Any] = {}
        self.families: list[Any] = []  # kept alive: a family that is garbage-collected leaves the endpoint
        self.last: dict[str, float] = dict.fromkeys(COUNTERS, 0.0)
        family = getattr(pb_utils, "MetricFamily", None)
        if family is None:  # an older backend (or the tests' stand-in): no custom metrics
            return
        kinds = {**dict.fromkeys(GAUGES, family.GAUGE), **dict.fromkeys(COUNTERS, family.COUNTER)}
        for name, text in {**GAUGES, **COUNTERS}.items():
            full = f"{PREFIX}{name}" + ("_total" if name in COUNTERS else "")
            self.families.append(family(full, text, kinds[name]))
            self.metrics[name] = self.families[-1].Metric(labels={"model": model})

    def update(self, stats: Stats) -> None:
        if not self.metrics:
            return
        for name in GAUGES:
            self.metrics[name].set(float(getattr(stats, name)))
        for name in COUNTERS:
            value = float(getattr(stats, name))
            self.metrics[name].increment(value - self.last[name])
            self.last[name] = value


class CacheMetrics:
    """The x_T cache's hit and miss counters; `update(cache)` after each use."""

    def __init__(self, model: str) -> None:
        self.metrics: dict[str, Any] = {}
        self.families: list[Any] = []
        self.last = {"hits": 0, "misses": 0}
        family = getattr(pb_utils, "MetricFamily", None)
        if family is None:
            return
        for name in self.last:
            text = f"inversions answered from the x_T cache ({name})"
            self.families.append(family(f"diffusegae_xt_cache_{name}_total", text, family.COUNTER))
            self.metrics[name] = self.families[-1].Metric(labels={"model": model})

    def update(self, cache: Any) -> None:
        for name, metric in self.metrics.items():
            value = getattr(cache, name)
            metric.increment(float(value - self.last[name]))
            self.last[name] = value
