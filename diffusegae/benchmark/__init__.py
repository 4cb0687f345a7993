"""Latency benchmarking of the served ops (`diffusegae bench`) and the one results format of `bench/`.

    load.py          closed-loop workers and open-loop (constant / Poisson) arrivals over any send()
    stats.py         percentiles, throughput, the per-level summary
    server_stats.py  Triton's inference statistics as per-level deltas (queue, compute, batches formed)
    workload.py      the request of each op, built by the client's own request builders
    report.py        terminal table, CSV (perf_analyzer's columns first), JSON, PNG (Pillow)
    perf_analyzer.py `--input-data` JSON per ensemble for Triton's perf_analyzer
    results.py       results records (bench/results/*.jsonl) → BENCHMARKS.md
    cli.py           the `bench` subcommand

Torch-free, like the client.
"""
