"""Several servers behind one client: each request goes to the ready replica with the fewest requests in
flight; a replica that answers UNAVAILABLE (or cannot be reached) is marked down, probed in the background
with `is_server_ready`, and taken back when it answers; the failed request is retried elsewhere by the
client's Retry policy. Only UNAVAILABLE is retried (requests are deterministic for a given seed, so a retry
returns the same image); INVALID_ARGUMENT and every other error reach the caller at once.

Addresses: "host:port", several comma-separated ("a:8001,b:8001"), a list of them, or "dns:///name:port"
for every address a name resolves to (a Kubernetes headless Service: one record per ready pod; resolved
when the client is made).
"""

from __future__ import annotations

import itertools
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

DNS = "dns:///"


def endpoints(url: str | Sequence[str]) -> list[str]:
    """The replica addresses of a client's `url` (see the module docstring)."""
    items = [u.strip() for u in (url.split(",") if isinstance(url, str) else url) if u.strip()]
    if not items:
        raise ValueError(f"no server address in {url!r}; pass host:port, a comma-separated list, or dns:///")
    out: list[str] = []
    for item in items:
        if not item.startswith(DNS):
            out.append(item)
            continue
        host, _, port = item.removeprefix(DNS).rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{item!r}: write dns:///name:port")
        addresses = sorted(
            {info[4][0] for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)}
        )
        out += [f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses]
    return list(dict.fromkeys(out))


@dataclass(eq=False)
class Replica:
    url: str
    grpc: Any  # the client's own connection to it (sync or asyncio tritonclient)
    outstanding: int = 0
    down: bool = False
    answered: int = 0  # requests it answered
    failovers: int = 0  # times it failed with UNAVAILABLE and was marked down (its requests went elsewhere)


class Replicas:
    """The replica set: pick, release, mark down, probe back (thread-safe)."""

    def __init__(self, urls: list[str], connect: Callable[[str], Any], probe_interval: float = 0.5) -> None:
        self.replicas = [Replica(url, connect(url)) for url in urls]
        self.probe_interval = probe_interval
        self._lock = threading.Lock()
        self._turn = itertools.count()
        self._prober: threading.Thread | None = None
        self._closed = threading.Event()

    def acquire(self) -> Replica:
        """The ready replica with the fewest requests in flight (ties in turn); every one when none is up."""
        with self._lock:
            up = [r for r in self.replicas if not r.down] or self.replicas
            start = next(self._turn) % len(up)
            rotated = up[start:] + up[:start]
            replica = min(rotated, key=lambda r: r.outstanding)
            replica.outstanding += 1
            return replica

    def release(self, replica: Replica, answered: bool = True, unavailable: bool = False) -> None:
        """One attempt on `replica` ended: it answered, or failed (UNAVAILABLE marks it down)."""
        with self._lock:
            replica.outstanding -= 1
            replica.answered += answered
            if unavailable and len(self.replicas) > 1:
                replica.failovers += not replica.down
                replica.down = True
                if self._prober is None or not self._prober.is_alive():
                    self._prober = threading.Thread(target=self._probe, name="diffusegae-probe", daemon=True)
                    self._prober.start()

    def _probe(self) -> None:
        """Ask every down replica `is_server_ready` until all are back (or the client closes)."""
        import tritonclient.grpc as grpcclient

        probes: dict[str, Any] = {}
        try:
            while not self._closed.wait(self.probe_interval):
                with self._lock:
                    down = [r for r in self.replicas if r.down]
                if not down:
                    return
                for replica in down:
                    probe = probes.setdefault(replica.url, grpcclient.InferenceServerClient(replica.url))
                    try:
                        ready = bool(probe.is_server_ready(client_timeout=self.probe_interval))
                    except Exception:
                        ready = False
                    if ready:
                        with self._lock:
                            replica.down = False
        finally:
            for probe in probes.values():
                probe.close()

    @property
    def up(self) -> list[str]:
        with self._lock:
            return [r.url for r in self.replicas if not r.down]

    def counts(self) -> dict[str, dict[str, int]]:
        """Per replica: requests answered and times failed over (what a batch or a benchmark reports)."""
        with self._lock:
            return {r.url: {"answered": r.answered, "failovers": r.failovers} for r in self.replicas}

    def close(self) -> list[Any]:
        """Stop probing; returns the connections for the client to close."""
        self._closed.set()
        return [r.grpc for r in self.replicas]
