"""`diffusegae bench`: latency and throughput of an op on a running server, per load level.

    diffusegae bench --server 127.0.0.1:8001 --op edit --concurrency 1,2,4,8 --steps 20 --duration 10
    diffusegae bench --op reconstruct --rate 1,2 --poisson --requests 50
    diffusegae bench --write-input-data out/perf_analyzer      # perf_analyzer --input-data files

Prints a table, writes <out>/<op>.csv, .json and .png; `--record` appends the levels to
bench/results/server_load.jsonl and regenerates BENCHMARKS.md. Exit codes: 0 done (requests that failed
are counted in the results, not fatal), 2 nothing measured (bad arguments, no server), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from diffusegae.benchmark import perf_analyzer, report, results, server_stats
from diffusegae.benchmark.load import Window, run_level
from diffusegae.benchmark.stats import Level, LevelSummary, summarize
from diffusegae.benchmark.workload import OPS, BenchError, config_from_model_config, request
from diffusegae.dpm_solver import SAMPLERS
from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.specs import DECODE, PREPARE

HELP = (
    "latency / throughput of an op on a running server per concurrency or request rate (perf_analyzer-style)"
)
DEFAULT_CONCURRENCY = "1,2,4,8,16"
# Triton counts a request in its statistics a moment after answering it: how long to wait for the counters
# to catch up with a level's answers before reading them
STATS_SETTLE_S = 2.0
SERVER_LOAD = results.RESULTS_DIR / "server_load.jsonl"


def _numbers(kind: type, what: str, example: str):
    def parse(text: str) -> list:
        with contextlib.suppress(ValueError):
            values = [kind(v) for v in text.split(",") if v.strip()]
            if values and all(v > 0 for v in values):
                return values
        raise argparse.ArgumentTypeError(
            f"{what} takes positive numbers separated by commas, e.g. {example}; got {text!r}"
        )

    return parse


def _positive(kind: type):
    def parse(text: str):
        with contextlib.suppress(ValueError):
            if (value := kind(text)) > 0:
                return value
        raise argparse.ArgumentTypeError(f"must be a positive {kind.__name__}, got {text!r}")

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--server", default="127.0.0.1:8001", help="gRPC host:port (default %(default)s)")
    parser.add_argument(
        "--metrics-url",
        default=None,
        help="the server's Prometheus endpoint for the step scheduler's figures, comma-separated for several "
        "replicas (default: host:8002 of each server)",
    )
    parser.add_argument("--op", choices=OPS, default="edit", help="the op to load (default %(default)s)")
    parser.add_argument(
        "--concurrency",
        type=_numbers(int, "--concurrency", "1,2,4,8"),
        default=None,
        help=f"closed loop: requests in flight per level (default {DEFAULT_CONCURRENCY} unless --rate)",
    )
    parser.add_argument(
        "--rate",
        type=_numbers(float, "--rate", "0.5,1,2"),
        default=None,
        help="open loop: requests/s per level",
    )
    parser.add_argument(
        "--poisson", action="store_true", help="open loop: Poisson arrivals (default constant)"
    )
    parser.add_argument("--batch", type=_positive(int), default=1, help="images per request (default 1)")
    parser.add_argument("--steps", type=int, default=20, help="sampling steps (default 20)")
    parser.add_argument(
        "--mix-steps",
        type=_numbers(int, "--mix-steps", "10,50"),
        default=None,
        help="send requests with these step counts in turn instead of --steps (e.g. 10,50)",
    )
    parser.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="ddim (the server's default) or dpmpp2m (DPM-Solver++)",
    )
    window = parser.add_mutually_exclusive_group()
    window.add_argument(
        "--duration", type=_positive(float), default=None, help="seconds per window (default 10)"
    )
    window.add_argument("--requests", type=_positive(int), default=None, help="answers per window instead")
    parser.add_argument("--warmup", type=int, default=2, help="requests per level left out (default 2)")
    parser.add_argument(
        "--stability",
        type=_positive(float),
        default=None,
        help="closed loop: repeat windows until the last 3 agree within this %% on throughput and p50",
    )
    parser.add_argument(
        "--max-windows", type=_positive(int), default=10, help="with --stability (default 10)"
    )
    parser.add_argument("--timeout", type=_positive(float), default=300.0, help="seconds per request")
    parser.add_argument("--seed", type=int, default=0, help="images and Poisson arrivals")
    parser.add_argument(
        "--out", default="out/bench", help="folder for <op>.csv/.json/.png (default %(default)s)"
    )
    parser.add_argument(
        "--record",
        nargs="?",
        const=str(SERVER_LOAD),
        default=None,
        metavar="JSONL",
        help="append the levels to a results file (default bench/results/server_load.jsonl, which also "
        "regenerates BENCHMARKS.md)",
    )
    parser.add_argument("--device", default=None, help="device text for --record (default: this CPU)")
    parser.add_argument(
        "--write-input-data",
        metavar="DIR",
        default=None,
        help="instead of a run: write perf_analyzer --input-data JSON for every op of --checkpoint",
    )
    parser.add_argument(
        "--checkpoint", default=str(SHIPPED_CHECKPOINT), help="with --write-input-data (default: shipped)"
    )
    return parser


def levels_of(args: argparse.Namespace) -> list[Level]:
    concurrency = args.concurrency
    if concurrency is None and args.rate is None:
        concurrency = [int(c) for c in DEFAULT_CONCURRENCY.split(",")]
    distribution = "poisson" if args.poisson else "constant"
    levels = [Level("concurrency", c) for c in concurrency or []]
    return levels + [Level("rate", r, distribution) for r in args.rate or []]


def window_of(args: argparse.Namespace) -> Window:
    duration = args.duration if args.duration is not None or args.requests is not None else 10.0
    if args.warmup < 0:
        raise BenchError(f"--warmup must not be negative, got {args.warmup}")
    return Window(duration, args.requests, args.warmup, args.stability, args.max_windows)


def command_of(args: argparse.Namespace) -> str:
    """The run as a complete `diffusegae bench` line (defaults spelled out)."""
    parts = ["diffusegae", "bench", "--server", args.server, "--op", args.op]
    closed = [lv for lv in levels_of(args) if lv.mode == "concurrency"]
    if closed:
        parts += ["--concurrency", ",".join(str(int(lv.value)) for lv in closed)]
    if args.rate:
        parts += ["--rate", ",".join(f"{r:g}" for r in args.rate)] + (["--poisson"] if args.poisson else [])
    parts += ["--batch", str(args.batch), "--steps", str(args.steps)]
    parts += ["--mix-steps", ",".join(map(str, args.mix_steps))] if args.mix_steps else []
    parts += ["--sampler", args.sampler] if args.sampler else []
    window = window_of(args)
    parts += (
        ["--requests", str(window.requests)] if window.requests else ["--duration", f"{window.duration:g}"]
    )
    parts += ["--warmup", str(window.warmup)]
    if window.stability is not None:
        parts += ["--stability", f"{window.stability:g}", "--max-windows", str(window.max_windows)]
    return shlex.join(parts)


async def sweep(
    args: argparse.Namespace, levels: list[Level], window: Window
) -> tuple[list[LevelSummary], dict]:
    """Every level against the server, in order; returns the summaries and what was run."""
    from tritonclient.utils import InferenceServerException

    from diffusegae.client import AsyncClient

    client = AsyncClient(args.server, timeout=args.timeout, retries=0)
    stats = server_stats.ServerStats(
        args.server, metrics_url=args.metrics_url or default_metrics_url(args.server)
    )
    try:
        if not await client.is_ready():
            raise BenchError(
                f"no server ready at {args.server}: start one (`diffusegae serve`) or pass --server host:port"
            )
        try:
            served = await asyncio.to_thread(stats.model_config, PREPARE)
            config, directions = config_from_model_config(served)
            calls = [
                request(args.op, config, args.batch, s, args.seed, directions, args.sampler)
                for s in args.mix_steps or [args.steps]
            ]
            turn = itertools.cycle(calls)
            models = await asyncio.to_thread(stats.composing_models, args.op)
        except InferenceServerException as err:
            raise BenchError(f"the server at {args.server} cannot run {args.op}: {err.message()}") from None

        async def send() -> None:
            call = next(turn)
            await client.send(call)

        async def mark() -> tuple[server_stats.Snapshot, server_stats.LoopCounters]:
            return await asyncio.to_thread(lambda: (stats.snapshot(), stats.loop_counters()))

        async def settled(
            before: server_stats.Fleet, after: server_stats.Fleet, answered: int
        ) -> server_stats.Fleet:
            """Read `after` again until the op's counters count every answered request (≤ STATS_SETTLE_S)."""
            deadline = asyncio.get_running_loop().time() + STATS_SETTLE_S

            def counted(fleet: server_stats.Fleet) -> int:
                return sum(
                    server_stats.per_replica(server_stats.fleet_delta(before, fleet), args.op).values()
                )

            while counted(after) < answered and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                after = await asyncio.to_thread(stats.snapshot)
            return after

        summaries = []
        for level in levels:
            measured = await run_level(send, level, window, mark, args.seed)
            counts = {k: getattr(measured, k) for k in ("issued", "windows", "stable", "send_lag_ms")}
            summary = summarize(level, measured.samples, measured.duration_s, args.batch, **counts)
            (before, loops_before), (after, loops_after) = measured.marks
            answered = sum(1 for sample in measured.samples if sample.error is None)
            after = await settled(before, after, answered)
            fleet = server_stats.fleet_delta(before, after)
            summary.server = server_stats.summarize(server_stats.merge(fleet), args.op, models)
            if len(client.replicas.replicas) > 1:  # several replicas: the requests each one answered
                summary.server["replicas"] = server_stats.per_replica(fleet, args.op)
            scheduler = server_stats.loop_summary(loops_before, loops_after, measured.duration_s)
            if scheduler:  # a step-batched server: what each network call ran
                summary.server["scheduler"] = scheduler
            summaries.append(summary)
            p50 = summary.latency_ms["p50"]
            print(
                f"{level.label}: {summary.ok} ok, {summary.errors} errors in {summary.duration_s:.1f} s, "
                f"p50 {'-' if p50 is None else f'{p50:.1f}'} ms, {summary.images_per_s:.2f} img/s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        await client.close()
        stats.close()
    meta = {
        "server": args.server,
        "op": args.op,
        "checkpoint": config.name,
        "image_size": config.image_size,
        "batch": args.batch,
        "steps": "/".join(map(str, args.mix_steps)) if args.mix_steps else args.steps,
        "sampler": args.sampler or "ddim",
        "window": {"duration_s": window.duration, "requests": window.requests, "warmup": window.warmup,
                   "stability_percent": window.stability, "max_windows": window.max_windows},
        "composing_models": models,
        "command": command_of(args),
        "device": args.device or default_device(),
        "date": results.run_stamp(),
    }  # fmt: skip
    return summaries, meta


def default_metrics_url(server: str) -> str:
    """Triton's Prometheus endpoint beside each gRPC address: the same host, port 8002 (Triton's default)."""
    from diffusegae.client.replicas import endpoints

    hosts = [url.rsplit(":", 1)[0] if ":" in url else url for url in endpoints(server)]
    return ",".join(f"http://{host}:8002/metrics" for host in dict.fromkeys(hosts))


def default_device() -> str:
    return f"{results.cpu_name()}, {os.cpu_count()} cores"


def records_of(summaries: list[LevelSummary], meta: dict[str, Any]) -> list[results.Record]:
    """One results record per level: median = p50 latency, spread = min–max, n = answered requests."""
    section = f"Server load: {meta['op']}, {meta['checkpoint']}, batch {meta['batch']}, S={meta['steps']}"
    window = meta["window"]
    span = f"{window['requests']} answers" if window["requests"] else f"{window['duration_s']:g} s"
    measured = f"a window of {span}"
    if window["stability_percent"] is not None:
        measured = (
            f"windows of {span} until the last 3 agree within {window['stability_percent']:g} % on "
            f"throughput and p50 (at most {window['max_windows']}; those 3 pooled)"
        )
    notes = (
        f"`diffusegae bench` over gRPC from the same machine; per level {window['warmup']} warm-up requests, "
        f"then {measured}; latency over answered requests, server figures from Triton's statistics"
    )
    run = meta["date"]
    # what every level's record shares
    common = {"section": section, "device": meta["device"], "date": run[:10], "command": meta["command"]}
    common |= {"run": run, "unit": "ms", "metric": "latency", "notes": notes}
    out = []
    for s in summaries:
        server = s.server or {}
        if s.level.mode == "concurrency":
            params: dict[str, Any] = {"concurrency": int(s.level.value)}
        else:
            params = {"rate /s": s.level.value, "arrivals": s.level.distribution}
        lat = {k: results.rounded(v) for k, v in s.latency_ms.items()}
        extra = {f"p{p} ms": lat[f"p{p}"] for p in (90, 95, 99)}
        extra |= {"req/s": results.rounded(s.requests_per_s), "img/s": results.rounded(s.images_per_s)}
        extra["errors"] = s.errors
        server_columns = {"latency_ms": "server ms", "queue_ms": "queue ms", "compute_infer_ms": "infer ms"}
        extra |= {name: results.rounded(server.get(key)) for key, name in server_columns.items()}
        extra["decode batches"] = server_stats.batch_histogram(server, DECODE)
        if "replicas" in server:
            extra["per replica"] = report.replica_counts(server)
        if s.stable is not None:
            extra["stable"] = "yes" if s.stable else "no"
        figures = {"median": lat["p50"], "min": lat["min"], "max": lat["max"], "n": s.ok}
        out.append(results.Record(params=params, extra=extra, **figures, **common))
    return out


def write_outputs(summaries: list[LevelSummary], meta: dict[str, Any], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / meta["op"]
    title = f"{meta['op']} on {meta['checkpoint']}, batch {meta['batch']}, S={meta['steps']} ({meta['date']})"
    return [
        report.write_csv(summaries, stem.with_suffix(".csv")),
        report.write_json(summaries, meta, stem.with_suffix(".json")),
        report.write_png(summaries, stem.with_suffix(".png"), title),
    ]


def _write_input_data(args: argparse.Namespace) -> int:
    from diffusegae.checkpoint import load_directions, read_config

    found = load_directions(args.checkpoint)
    directions = found.names if found is not None else ()
    paths = perf_analyzer.write_input_data(
        read_config(args.checkpoint), args.write_input_data, args.steps, directions=directions
    )
    for op, path in paths.items():
        print(f"{op:12s} {path}")
        print(f"  {perf_analyzer.command(op, path, args.server)}")
    return 0


def run(args: argparse.Namespace) -> int:
    """The command's handler: a sweep (or the perf_analyzer files); returns the exit code."""
    try:
        if args.write_input_data is not None:
            return _write_input_data(args)
        levels, window = levels_of(args), window_of(args)
        if window.stability is not None and any(level.mode == "rate" for level in levels):
            raise BenchError(
                "--stability is for closed-loop levels (--concurrency): an open loop offers a fixed load"
            )
        summaries, meta = asyncio.run(sweep(args, levels, window))
    except (BenchError, ValueError, FileNotFoundError) as err:
        print(f"diffusegae bench: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("diffusegae bench: interrupted", file=sys.stderr)
        return 130
    print(
        report.table(summaries, f"{meta['op']} on {meta['server']} ({meta['checkpoint']}), {meta['command']}")
    )
    for path in write_outputs(summaries, meta, args.out):
        print(f"wrote {path}")
    if args.record is not None:
        path = results.append_records(args.record, records_of(summaries, meta))
        print(f"recorded {len(summaries)} levels in {path}")
        if Path(path).resolve().parent == results.RESULTS_DIR.resolve() and results.NOTES.is_file():
            print(f"regenerated {results.write_benchmarks()}")
    return 0
