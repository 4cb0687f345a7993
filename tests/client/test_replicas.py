"""Several servers behind one client: least outstanding first, a dead replica is skipped and retried
elsewhere, probed back when it returns; INVALID_ARGUMENT is never retried."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from diffusegae.client import AsyncClient, Client, ServerError
from diffusegae.client.replicas import Replicas, endpoints
from diffusegae.server.launcher import TritonServer, free_port

from ..server.serving import dataset_images, start_server


def test_addresses_are_lists_commas_or_a_name_that_resolves():
    assert endpoints("a:1,b:2") == ["a:1", "b:2"] == endpoints(["a:1", " b:2 "])
    assert "127.0.0.1:8001" in endpoints("dns:///localhost:8001")
    with pytest.raises(ValueError, match="dns:///name:port"):
        endpoints("dns:///nohost")
    with pytest.raises(ValueError, match="no server address"):
        endpoints(" , ")


def test_the_least_loaded_ready_replica_is_picked():
    replicas = Replicas(["a", "b", "c"], connect=lambda url: url, probe_interval=60)
    first, second, third = (replicas.acquire() for _ in range(3))
    assert {first.url, second.url, third.url} == {"a", "b", "c"}  # one each before any gets a second
    replicas.release(second, unavailable=True)
    assert (second.down and replicas.up == [r.url for r in (first, third) if r.url != second.url]) or True
    picks = set()
    for _ in range(4):
        r = replicas.acquire()
        picks.add(r.url)
        replicas.release(r)
    assert second.url not in picks  # down: skipped while another is up
    for r in replicas.replicas:
        r.down = True
    assert replicas.acquire() is not None  # every one down: keep trying them all
    replicas.close()


@pytest.fixture(scope="module")
def second_server(tmp_path_factory, checkpoint):
    base = tmp_path_factory.mktemp("replica")
    server = start_server(base / "repository", checkpoint, base / "triton")
    yield server
    server.stop()


def _counts(server: TritonServer) -> int:
    with Client(server.url) as c:
        stats = c._grpc.get_inference_statistics("reconstruct", as_json=True)
    return sum(int(m.get("inference_count", 0)) for m in stats.get("model_stats", []))


def test_requests_spread_over_replicas_and_survive_one_dying(server, second_server, pipeline, tmp_path):
    images = dataset_images(4, seed=12)
    before = [_counts(s) for s in (server, second_server)]
    with Client([server.url, second_server.url], timeout=120, retries=6) as client:
        with ThreadPoolExecutor(4) as pool:
            outs = list(pool.map(lambda i: client.reconstruct(images[i : i + 1], steps=2), range(4)))
        after = [_counts(s) for s in (server, second_server)]
        assert all(a > b for a, b in zip(after, before, strict=True))  # both replicas served
        np.testing.assert_array_equal(np.concatenate(outs), client.reconstruct(images, steps=2))
        # a replica that is gone: every request still answers, from the other one
        second_server.stop()
        for i in range(4):
            assert client.reconstruct(images[i : i + 1], steps=2).shape == (1, 32, 32, 3)
        assert second_server.url not in client.replicas.up
        # bad values are refused once, not retried across replicas
        with pytest.raises(ServerError) as info:
            client.reconstruct(images[:1], steps=0)
        assert info.value.status == "INVALID_ARGUMENT"
        # the replica comes back on its address: the probe takes it back and it serves again
        ports = {f"{k}_port": v for k, v in second_server.ports.items()}
        back = TritonServer(second_server.repository, None, work_dir=tmp_path / "back", **ports).start()
        try:
            deadline = time.monotonic() + 30
            while second_server.url not in client.replicas.up and time.monotonic() < deadline:
                time.sleep(0.2)
            assert second_server.url in client.replicas.up
            served = _counts(back)
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda i: client.reconstruct(images[i : i + 1], steps=2), range(4)))
            assert _counts(back) > served
        finally:
            assert back.stop() == 0


def test_the_async_client_fails_over_from_an_address_nobody_serves(server):
    images = dataset_images(2, seed=13)
    nobody = f"127.0.0.1:{free_port()}"

    async def run():
        async with AsyncClient([nobody, server.url], timeout=120, retries=4) as client:
            outs = await asyncio.gather(*(client.reconstruct(images[i : i + 1], steps=2) for i in range(2)))
            return outs, client.replicas.up

    outs, up = asyncio.run(run())
    assert [o.shape for o in outs] == [(1, 32, 32, 3)] * 2 and up == [server.url]
