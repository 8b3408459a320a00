"""Dispatch against a real redis-server (unix socket in a temporary folder), in this process:
the reservation script, heartbeats, stale and silent workers, the gateway's retries and its 503s,
a clear error when Redis is unreachable at start, and a conversation carried into a new model
session. Fast: no worker processes, no WebRTC."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from realtalk.plugins.openai import OpenAIRealtime
from realtalk.scale.gateway import Gateway
from realtalk.scale.local import RedisServer
from realtalk.scale.registry import Registry, RegistryUnavailable
from realtalk.server import LocalServer

ROOT = Path(__file__).resolve().parents[2]
OFFER = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
async def registry(redis_server: RedisServer) -> AsyncIterator[Registry]:
    reg = Registry(redis_server.url)
    yield reg
    await reg.aclose()


async def beat(reg: Registry, worker_id: str, capacity: int = 2, **kw: Any) -> int:
    options: dict[str, Any] = {"draining": False, "ttl_ms": 30_000, "tokens": [], **kw}
    return await reg.heartbeat(worker_id, url=f"http://{worker_id}", capacity=capacity, **options)


async def until(reg: Registry, check: Any, timeout_s: float = 20.0) -> None:
    """Wait until ``check(workers)`` holds (heartbeats are asynchronous)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not check(await reg.workers()):
        assert asyncio.get_running_loop().time() < deadline, await reg.workers()
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_reservations_go_to_the_least_loaded_and_never_beyond_capacity(
    registry: Registry,
) -> None:
    await beat(registry, "a", capacity=4)
    await beat(registry, "b", capacity=8)
    results = await asyncio.gather(*(registry.reserve(pending_ms=60_000) for _ in range(20)))
    placed = Counter(r.worker_id for r in results if r is not None)
    assert placed == {"a": 4, "b": 8}  # by load ratio: a fills at the same pace as b
    assert sum(r is None for r in results) == 8
    assert {w.worker_id: w.load for w in await registry.workers()} == {"a": 4, "b": 8}


async def test_a_released_or_lapsed_slot_is_free_again(registry: Registry) -> None:
    await beat(registry, "a", capacity=1)
    first = await registry.reserve(pending_ms=60_000)
    assert first is not None and await registry.reserve(pending_ms=60_000) is None
    await registry.release(first.worker_id, first.token)
    short = await registry.reserve(pending_ms=100)  # a gateway that died after reserving
    assert short is not None
    await asyncio.sleep(0.3)
    assert await registry.reserve(pending_ms=60_000) is not None


async def test_the_heartbeat_counts_running_sessions_and_forgets_ended_ones(
    registry: Registry,
) -> None:
    assert await beat(registry, "a", capacity=3, tokens=["s1", "s2"]) == 2
    reservation = await registry.reserve(pending_ms=60_000)
    assert reservation is not None and reservation.load == 3
    assert await registry.reserve(pending_ms=60_000) is None
    # s1 ended; the pending slot stays until the worker takes it or it lapses.
    assert await beat(registry, "a", capacity=3, tokens=["s2"]) == 2
    assert await beat(registry, "a", capacity=3, tokens=["s2", reservation.token]) == 2


async def test_draining_silent_and_stale_workers_get_nothing(
    registry: Registry, redis_server: RedisServer
) -> None:
    await beat(registry, "draining", draining=True)
    await beat(registry, "silent", ttl_ms=200)  # stops heartbeating
    await beat(registry, "stale", ttl_ms=200)
    r = registry.redis
    await r.persist("realtalk:worker:stale")  # e.g. restored from a dump: no expiry left
    await r.sadd("realtalk:workers", "ghost")  # an id whose registration is gone
    await asyncio.sleep(0.4)
    assert await registry.reserve(pending_ms=1000) is None
    assert await r.smembers("realtalk:workers") == {"draining"}  # the dead ones were cleaned
    assert not await r.exists("realtalk:worker:stale")
    await beat(registry, "alive")
    reservation = await registry.reserve(pending_ms=1000, exclude=["nobody"])
    assert reservation is not None and reservation.worker_id == "alive"
    assert await registry.reserve(pending_ms=1000, exclude=["alive"]) is None


async def test_redis_unreachable_is_a_clear_error_without_the_password() -> None:
    reg = Registry(f"redis://:hunter2@127.0.0.1:{free_port()}/0", timeout_s=1.0)
    with pytest.raises(RegistryUnavailable) as error:
        await reg.reserve(pending_ms=1000)
    assert "127.0.0.1" in str(error.value) and "hunter2" not in str(error.value)
    await reg.aclose()


def test_the_commands_refuse_to_start_without_redis(tmp_path: Path) -> None:
    agent = ROOT / "tests" / "integration" / "scale" / "agent.py"
    url = f"redis://127.0.0.1:{free_port()}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    cli = "import sys; from realtalk.cli import main; sys.exit(main())"
    for args in (["worker", str(agent), "--redis", url], ["gateway", "--redis", url]):
        done = subprocess.run(
            [sys.executable, "-c", cli, *args], env=env, capture_output=True, text=True, timeout=90
        )
        assert done.returncode == 1, done.stderr
        assert f"cannot start: Redis at {url} failed" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


# -- the gateway, with stand-in workers ---------------------------------------------------------


class FakeWorker:
    """Answers offers like a worker (without WebRTC) and records what it got."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.offers: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/api/offer", self.offer)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    async def offer(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.offers.append(body)
        if self.status != 200:
            return web.json_response({"error": "draining"}, status=self.status)
        return web.json_response(
            {"sdp": "v=0 answer", "type": "answer", "session_id": body["session_id"],
             "worker": self.url, "resumed": False}
        )  # fmt: skip

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def gateway(redis_server: RedisServer) -> AsyncIterator[Gateway]:
    gw = Gateway(redis_url=redis_server.url, port=0, suspect_s=60)
    await gw.start()
    yield gw
    await gw.aclose()


async def post(gw: Gateway, body: Any) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.post(f"{gw.url}api/offer", json=body) as r:
        return r.status, await r.json()


async def test_the_gateway_skips_dead_and_draining_workers(
    gateway: Gateway, registry: Registry
) -> None:
    good, busy = FakeWorker(), FakeWorker(status=503)
    await good.start()
    await busy.start()
    try:
        for worker_id, url in (("a-dead", f"http://127.0.0.1:{free_port()}"),
                               ("b-busy", busy.url), ("c-good", good.url)):  # fmt: skip
            await registry.heartbeat(
                worker_id, url=url, capacity=5, draining=False, ttl_ms=30_000, tokens=[]
            )
        status, answer = await post(gateway, {"sdp": OFFER, "type": "offer"})
        assert status == 200, answer
        assert answer["worker"] == good.url and len(busy.offers) == 1
        assert good.offers[0]["session_id"] == busy.offers[0]["session_id"]
        loads = {w.worker_id: w.load for w in await registry.workers()}
        assert loads == {"a-dead": 0, "b-busy": 0, "c-good": 1}  # failed tries released
        # The dead one is skipped from now on; the session id is carried to the worker.
        status, answer = await post(
            gateway, {"sdp": OFFER, "type": "offer", "session_id": "S" * 22}
        )
        assert status == 200 and good.offers[-1]["session_id"] == "S" * 22
    finally:
        await good.stop()
        await busy.stop()


async def test_the_gateway_refuses_bad_offers_before_taking_a_slot(
    gateway: Gateway, registry: Registry
) -> None:
    await beat(registry, "w", capacity=1)
    for body, reason in (
        ({"sdp": "nope", "type": "offer"}, "session description"),
        ({"sdp": OFFER, "type": "answer"}, '"type" must be "offer"'),
        ({"sdp": OFFER, "type": "offer", "session_id": "../x"}, "session_id"),
        ([1, 2], "JSON object"),
    ):
        status, answer = await post(gateway, body)
        assert status == 400 and reason in answer["error"], answer
    assert [w.load for w in await registry.workers()] == [0]


async def test_the_gateway_answers_503_when_full_or_when_redis_is_down(
    gateway: Gateway, redis_server: RedisServer
) -> None:
    status, answer = await post(gateway, {"sdp": OFFER, "type": "offer"})
    assert status == 503 and "no worker has a free slot" in answer["error"]
    redis_server.stop()
    status, answer = await post(gateway, {"sdp": OFFER, "type": "offer"})
    assert status == 503 and "Redis" in answer["error"]
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}api/health") as r:
        assert r.status == 503 and (await r.json())["redis"] is False
    async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}metrics") as r:
        text = await r.text()
    assert 'realtalk_gateway_offers_total{outcome="redis_down"} 1.0' in text
    assert 'realtalk_gateway_offers_total{outcome="no_worker"} 1.0' in text


# -- continuity: a conversation carried into a fresh model session ------------------------------


async def test_a_stored_conversation_resumes_in_a_new_model_session(
    scripted_server: LocalServer,
) -> None:
    async def ask(model: OpenAIRealtime, text: str) -> str:
        reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        def on_text(event: dict[str, Any]) -> None:
            if event["is_final"] and event["role"] != "user" and not reply.done():
                reply.set_result(event["text"])

        model.on("realtime_model_transcription", on_text)
        await model.send_text_message(text)
        try:
            return await asyncio.wait_for(reply, 15)
        finally:
            model.off("realtime_model_transcription", on_text)

    first = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
    await first.connect()
    assert await ask(first, "my name is Ada") == "You said: my name is Ada."
    items = first.conversation.replay_items()
    await first.aclose()

    second = OpenAIRealtime(model="gpt-realtime", base_url=scripted_server.base_url)
    await second.connect()
    await second.restore_conversation(items)
    assert await ask(second, "what did I say before?") == "Before that you said: my name is Ada."
    with pytest.raises(ValueError):
        await second.restore_conversation([{"no": "type"}])
    await second.aclose()


# -- a worker in this process: slots for other transports, health, metrics, drain --------------


async def test_a_worker_counts_slots_held_by_other_transports_and_drains(
    registry: Registry, redis_server: RedisServer
) -> None:
    from realtalk.scale.worker import Worker
    from realtalk.transports.webrtc import ServerFullError

    async def entrypoint(ctx: Any) -> None:
        return None

    worker = Worker(entrypoint, redis_url=redis_server.url, capacity=2, heartbeat_s=0.2)
    await worker.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with worker.hold_slot(), worker.hold_slot():  # e.g. two phone calls
                await until(registry, lambda ws: [(w.worker_id, w.load) for w in ws] == [
                    (worker.worker_id, 2)
                ])  # fmt: skip
                assert await registry.reserve(pending_ms=1000) is None  # full
                with pytest.raises(ServerFullError):
                    async with worker.hold_slot():
                        pass
                async with http.post(f"{worker.url}/api/offer", json={"sdp": OFFER}) as r:
                    assert r.status == 503 and "full" in (await r.json())["error"]
                async with http.get(f"{worker.url}/api/health") as r:
                    health = await r.json()
                assert r.status == 200 and health["sessions"] == 2 and health["redis"]
            await until(registry, lambda ws: [w.load for w in ws] == [0])
            async with http.get(f"{worker.url}/metrics") as r:
                assert "realtalk_worker_slots 2.0" in await r.text()
            assert await worker.drain(5) == 0
            assert [w.draining for w in await registry.workers()] == [True]
            async with http.post(f"{worker.url}/api/offer", json={"sdp": OFFER}) as r:
                assert r.status == 503 and "draining" in (await r.json())["error"]
    finally:
        await worker.aclose()
    assert await registry.workers() == []  # deregistered
