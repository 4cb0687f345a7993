"""Soak: N clients send edits to a supervised server for D seconds, a tenth of them malformed, and one backend
process (the `decode` loop's) is killed with SIGKILL half-way.

Prints and records (bench/results/soak.jsonl → BENCHMARKS.md): good requests sent and failed, malformed
requests not refused with INVALID_ARGUMENT, the server tree's RSS (tritonserver + its backend stubs)
growth over each half (from 5 s in to the kill; from 5 s after the recovery to the end), and the recovery
time (kill → ready again). Not a test: a robustness figure, run alone.
    python bench/soak.py [--clients 16] [--seconds 60] [--steps 20]
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import record, save

from diffusegae.client import Client, ServerError
from diffusegae.data import AttributeDataset
from diffusegae.paths import SHIPPED_CHECKPOINT
from diffusegae.server.launcher import TritonServer, free_port
from diffusegae.server.supervisor import Supervisor, stubs

MALFORMED_SHARE = 0.1


def tree_rss_mib(server: TritonServer) -> float:
    """Resident memory of tritonserver and its stub processes (MiB)."""
    total = 0
    for pid in [server.pid, *stubs(server.pid)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return total / 1024


class Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.good = self.good_failed = self.malformed = self.malformed_unclean = 0
        self.failures: dict[str, int] = {}

    def add(self, field: str, failure: str | None = None) -> None:
        with self.lock:
            setattr(self, field, getattr(self, field) + 1)
            if failure is not None:
                self.failures[failure] = self.failures.get(failure, 0) + 1


def malformed_calls(client: Client, source: np.ndarray, reference: np.ndarray, steps: int) -> list:
    """Requests the server must refuse with INVALID_ARGUMENT."""
    small = source[:, ::2, ::2]
    return [
        lambda: client.edit(source, reference, ["hair"], steps=steps),  # no such attribute
        lambda: client.edit(source, reference, ["pose"], steps=0),  # steps out of range
        lambda: client.edit(source, reference, ["pose"], steps=steps, sampler="euler"),  # no such sampler
        lambda: client.edit(small, reference, ["pose"], steps=steps),  # wrong image size
    ]


def client_loop(url: str, steps: int, seed: int, stop: threading.Event, counts: Counts) -> None:
    rng = np.random.default_rng(seed)
    dataset = AttributeDataset(resolution=32, seed=0)
    with Client(url, timeout=300) as client:  # the default retry policy
        while not stop.is_set():
            _, images = dataset.sample(rng, "test", 2)
            source, reference = images[:1], images[1:]
            if rng.random() < MALFORMED_SHARE:
                bad = rng.choice(malformed_calls(client, source, reference, steps))
                try:
                    bad()
                    counts.add("malformed_unclean", "accepted")
                except ServerError as err:
                    if err.status == "INVALID_ARGUMENT":
                        counts.add("malformed")
                    else:
                        counts.add("malformed_unclean", err.status)
                continue
            try:
                out = client.edit(source, reference, ["pose"], steps=steps)
                assert out.shape == source.shape and out.dtype == np.uint8
                counts.add("good")
            except (ServerError, AssertionError) as err:
                counts.add("good_failed", getattr(err, "status", type(err).__name__))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--checkpoint", default=str(SHIPPED_CHECKPOINT))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="diffusegae-soak-"))
    ports = {f"{k}_port": free_port() for k in ("grpc", "http", "metrics")}
    server = TritonServer(work / "repository", args.checkpoint, work_dir=work / "triton", **ports).start()
    supervisor = Supervisor(server).start()
    counts, stop = Counts(), threading.Event()
    threads = [
        threading.Thread(target=client_loop, args=(server.url, args.steps, i, stop, counts))
        for i in range(args.clients)
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(min(5.0, args.seconds / 10))  # warm: every model has run
        rss_start = tree_rss_mib(server)
        time.sleep(args.seconds / 2 - min(5.0, args.seconds / 10))
        rss_before_kill = tree_rss_mib(server)
        (decode,) = [pid for pid, s in stubs(server.pid).items() if s.model == "decode"]
        killed = time.monotonic()
        os.kill(decode, signal.SIGKILL)
        while not supervisor.recoveries:
            time.sleep(0.05)
        recovery_s = time.monotonic() - killed
        warm = min(5.0, args.seconds / 10)  # the new processes allocate as their models first run
        time.sleep(warm)
        rss_after_recovery = tree_rss_mib(server)
        time.sleep(max(0.0, args.seconds / 2 - recovery_s - warm))
        rss_end = tree_rss_mib(server)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        supervisor.stop()
        server.stop()
    growth = [(rss_before_kill / rss_start - 1) * 100, (rss_end / rss_after_recovery - 1) * 100]
    extra = {
        "good sent": counts.good + counts.good_failed,
        "good failed": counts.good_failed,
        "malformed sent": counts.malformed + counts.malformed_unclean,
        "malformed not refused cleanly": counts.malformed_unclean,
        "RSS growth % (1st half / after recovery)": f"{growth[0]:+.1f} / {growth[1]:+.1f}",
        "RSS MiB (start / end)": f"{rss_start:.0f} / {rss_end:.0f}",
        "recovery s (kill → ready)": f"{recovery_s:.1f}",
    }
    for key, value in extra.items():
        print(f"{key}: {value}")
    if counts.failures:
        print("failures:", counts.failures)
    notes = (
        f"`decode`'s backend process SIGKILLed at {args.seconds / 2:.0f} s; every client uses the default "
        f"retry policy; {MALFORMED_SHARE:.0%} of requests malformed (unknown attribute, steps 0, unknown "
        "sampler, wrong image size); recovery = the supervisor's restart, measured from the kill"
    )
    params = {"clients": args.clients, "seconds": args.seconds, "steps": args.steps}
    print(save([record("Soak: edits under load, malformed requests and a killed backend", params, extra=extra,
                       notes=notes)]))  # fmt: skip


if __name__ == "__main__":
    main()
