"""Who may use the scale-out endpoints: the gateway takes offers only from its own page (Host,
Origin, JSON, page token, as ``realtalk run``), a worker only from gateways (cluster secret, or
no browser Origin), and concurrent offers never overfill a worker. Real redis-server, real HTTP,
real aiortc offers; no media flows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from realtalk.scale.gateway import Gateway
from realtalk.scale.local import RedisServer
from realtalk.scale.registry import Registry
from realtalk.scale.worker import CLUSTER_SECRET_HEADER, Worker
from realtalk.web_guard import TOKEN_HEADER, token_from_page
from tests.integration.scale.peer import make_offer_sdp
from tests.integration.test_scale_redis import OFFER, FakeWorker, redis_server, registry

__all__ = ["redis_server", "registry"]  # fixtures used here

SECRET = "s3cret-for-this-test-only"


@pytest.fixture
async def fake_worker(registry: Registry) -> AsyncIterator[FakeWorker]:
    worker = FakeWorker()
    await worker.start()
    await registry.heartbeat(
        "fake", url=worker.url, capacity=4, draining=False, ttl_ms=30_000, tokens=[]
    )
    yield worker
    await worker.stop()


@pytest.fixture
async def gateway(redis_server: RedisServer) -> AsyncIterator[Gateway]:
    gw = Gateway(
        redis_url=redis_server.url, port=0, allowed_hosts=["talk.example"], cluster_secret=SECRET
    )
    await gw.start()
    yield gw
    await gw.aclose()


async def test_the_gateway_refuses_cross_site_and_foreign_host_requests(
    gateway: Gateway, fake_worker: FakeWorker, registry: Registry
) -> None:
    body = json.dumps({"sdp": OFFER, "type": "offer"})
    port = gateway.url.rstrip("/").rsplit(":", 1)[1]
    async with aiohttp.ClientSession() as http:
        # A simple cross-site POST (no preflight) from another site's page.
        headers = {"Content-Type": "text/plain", "Origin": "https://evil.example"}
        async with http.post(f"{gateway.url}api/offer", data=body, headers=headers) as r:
            assert r.status == 403 and "evil.example" in (await r.json())["error"]
        # DNS rebinding: the page is served under the attacker's name.
        rebound = {"Host": f"evil.example:{port}"}
        async with http.get(gateway.url, headers=rebound) as r:
            assert r.status == 403
        async with http.post(
            f"{gateway.url}api/offer",
            data=body,
            headers={**rebound, "Origin": f"http://evil.example:{port}"},
        ) as r:
            assert r.status == 403 and "Host" in (await r.json())["error"]
        # Same origin, but no page token (or a made-up one): refused too.
        own = {"Content-Type": "application/json", "Origin": gateway.url.rstrip("/")}
        for extra in ({}, {TOKEN_HEADER: "1.2.3"}):
            async with http.post(
                f"{gateway.url}api/offer", data=body, headers={**own, **extra}
            ) as r:
                assert r.status == 403 and TOKEN_HEADER in (await r.json())["error"]
        assert fake_worker.offers == []
        assert [w.load for w in await registry.workers()] == [0]  # nothing reserved

        # The page as a browser loads it: the token it embeds makes its offer go through.
        async with http.get(gateway.url) as r:
            token = token_from_page(await r.text())
        async with http.post(
            f"{gateway.url}api/offer", data=body, headers={**own, TOKEN_HEADER: token}
        ) as r:
            assert r.status == 200, await r.text()
        # A configured name (a proxy's host) is accepted like a loopback one.
        proxied = {"Host": "talk.example", "Origin": "https://talk.example"}
        async with http.post(
            f"{gateway.url}api/offer",
            data=body,
            headers={**own, **proxied, TOKEN_HEADER: gateway.tokens.issue()},
        ) as r:
            assert r.status == 200, await r.text()
    assert len(fake_worker.offers) == 2
    assert fake_worker.headers == [SECRET, SECRET]  # forwarded with the cluster secret


async def _never_ending(ctx: Any) -> None:
    await asyncio.Event().wait()  # keeps its connection (and slot) until the worker closes


async def test_concurrent_offers_never_overfill_a_worker(
    redis_server: RedisServer, registry: Registry
) -> None:
    worker = Worker(_never_ending, redis_url=redis_server.url, capacity=3, heartbeat_s=0.2)
    await worker.start()
    sdp = await make_offer_sdp()
    try:
        async with worker.hold_slot(), aiohttp.ClientSession() as http:  # e.g. a phone call

            async def offer(i: int) -> int:
                # A session id makes the worker await Redis before answering: the window
                # where a check-then-await worker let every offer in.
                body = {"sdp": sdp, "type": "offer", "session_id": f"session-{i:02d}-abcdefgh"}
                async with http.post(f"{worker.url}/api/offer", json=body) as r:
                    return r.status

            # Each step bounded on its own, so a hang names its step (a CI run once hung here
            # until pytest's 120 s timeout, with nothing in the thread dump to say where).
            async with asyncio.timeout(60):
                statuses = await asyncio.gather(*(offer(i) for i in range(8)))
            assert sorted(statuses) == [200, 200] + [503] * 6, statuses
            assert len(worker.sessions) + len(worker._held) == 3
            assert len(worker.server.connections) == 2
            async with asyncio.timeout(20):
                await worker._beat()
                assert [w.load for w in await registry.workers()] == [3]
    finally:
        async with asyncio.timeout(30):
            await worker.aclose()


async def test_a_worker_takes_offers_from_gateways_only(redis_server: RedisServer) -> None:
    plain = Worker(_never_ending, redis_url=redis_server.url, capacity=2)
    guarded = Worker(_never_ending, redis_url=redis_server.url, capacity=2, cluster_secret=SECRET)
    await plain.start()
    await guarded.start()
    body = {"sdp": OFFER, "type": "answer"}  # refused as 400 once past the checks
    try:
        async with aiohttp.ClientSession() as http:
            for worker, headers, status in (
                (plain, {"Origin": "https://evil.example"}, 403),  # a browser page
                (plain, {"Origin": "http://127.0.0.1"}, 403),  # even a local one
                (plain, {}, 400),  # server to server
                (guarded, {}, 403),
                (guarded, {CLUSTER_SECRET_HEADER: "wrong"}, 403),
                (guarded, {CLUSTER_SECRET_HEADER: SECRET}, 400),
            ):
                async with http.post(f"{worker.url}/api/offer", json=body, headers=headers) as r:
                    assert r.status == status, (headers, await r.text())
            assert plain.server._slots_taken == 0 and guarded.server._slots_taken == 0
    finally:
        await plain.aclose()
        await guarded.aclose()
