"""A gateway and workers as real processes, with a real redis-server, and aiortc peers standing in
for browsers: failover, drain, Redis and gateway restarts. Slow (processes, real WebRTC)."""

from __future__ import annotations

import asyncio
import collections
import signal
import time

import aiohttp
import pytest

from tests.integration.scale.agent import GREETING, WELCOME_BACK
from tests.integration.scale.conftest import Cluster
from tests.integration.scale.peer import OfferRefused, Peer, make_offer_sdp

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GREETINGS = (GREETING, WELCOME_BACK)


async def offer(gateway: str, sdp: str, **extra: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{gateway.rstrip('/')}/api/offer", json={"sdp": sdp, "type": "offer", **extra}
        ) as resp,
    ):
        return resp.status, await resp.json()


async def wait_stored(cluster: Cluster, session_id: str, text: str, timeout_s: float = 60) -> None:
    """Wait until the session's stored conversation holds ``text`` (stored after each turn)."""
    deadline = time.monotonic() + timeout_s
    while text not in await asyncio.to_thread(cluster.conversation, session_id):
        assert time.monotonic() < deadline, f"{text!r} never stored for {session_id}"
        await asyncio.sleep(0.2)


async def test_sessions_spread_by_load_and_never_over_capacity(cluster: Cluster) -> None:
    workers = {cluster.start_worker(capacity=12) for _ in range(3)}
    gateway = cluster.start_gateway()
    sdp = await make_offer_sdp()  # real offers; these calls never connect (no ICE from here)
    answers = await asyncio.gather(*(offer(gateway, sdp) for _ in range(30)))
    assert all(status == 200 for status, _ in answers), answers
    placed = collections.Counter(str(body["worker"]) for _, body in answers)
    assert set(placed) == workers
    assert max(placed.values()) - min(placed.values()) <= 1, placed  # least-loaded first
    more = await asyncio.gather(*(offer(gateway, sdp) for _ in range(7)))
    assert sorted(status for status, _ in more) == [200] * 6 + [503]
    refused = next(body for status, body in more if status == 503)
    assert "no worker has a free slot" in str(refused["error"])
    placed.update(str(body["worker"]) for status, body in more if status == 200)
    assert placed == {w: 12 for w in workers}  # full, and not one over
    async with aiohttp.ClientSession() as http, http.get(f"{gateway}api/health") as resp:
        health = await resp.json()
    assert {w["id"]: w["load"] for w in health["workers"]} == {w: 12 for w in workers}


async def test_kill_9_resumes_its_calls_elsewhere_with_the_conversation(cluster: Cluster) -> None:
    workers = [cluster.start_worker(capacity=6) for _ in range(3)]
    gateway = cluster.start_gateway()
    peers = [Peer(gateway, greetings=GREETINGS) for _ in range(6)]
    names = ["Ada", "Bob", "Cy", "Dan", "Eve", "Flo"]
    try:
        for peer in peers:  # two per worker: the least-loaded goes first
            await peer.connect()
        assert collections.Counter(p.worker for p in peers) == {w: 2 for w in workers}
        for peer, name in zip(peers, names, strict=True):
            assert await peer.ask(f"my name is {name}") == f"You said: my name is {name}."
            await wait_stored(cluster, str(peer.session_id), f"my name is {name}")

        dead = str(peers[0].worker)
        victims = [(p, n) for p, n in zip(peers, names, strict=True) if p.worker == dead]
        others = [(p, n) for p, n in zip(peers, names, strict=True) if p.worker != dead]
        killed_at = time.monotonic()
        cluster.workers[dead].send_signal(signal.SIGKILL)

        for victim, name in victims:
            await victim.wait_resumed(1, timeout_s=60)
            print(f"{name}: resumed {time.monotonic() - killed_at:.1f} s after kill -9")
            assert victim.workers == [dead, victim.worker] and victim.worker != dead
            assert victim.resumed_flags == [False, True]
            reply = await victim.ask("what did I say before?")
            assert reply == f"Before that you said: my name is {name}."
            # The new worker told the agent it resumed: no second greeting.
            lines = victim.agent_lines()
            assert lines.count(GREETING) == 1 and lines.count(WELCOME_BACK) == 1, lines

        # The other calls never noticed, and go on where they were.
        for peer, name in others:
            assert peer.resumes == 0 and len(peer.workers) == 1
            reply = await peer.ask("what did I say before?")
            assert reply == f"Before that you said: my name is {name}."

        # The dead worker's registration lapses; no new session goes to it.
        await asyncio.to_thread(cluster.wait_workers, set(workers) - {dead})
        sdp = await make_offer_sdp()
        answers = await asyncio.gather(*(offer(gateway, sdp) for _ in range(4)))
        assert all(status == 200 and body["worker"] != dead for status, body in answers), answers
    finally:
        for peer in peers:
            await peer.close()


async def test_sigterm_drains_without_losing_a_session(cluster: Cluster) -> None:
    first = cluster.start_worker(capacity=4, extra=["--drain-timeout", "6"])
    gateway = cluster.start_gateway()
    leaving, staying = Peer(gateway, greetings=GREETINGS), Peer(gateway, greetings=GREETINGS)
    newcomer = Peer(gateway, greetings=GREETINGS)
    try:
        await leaving.connect()
        await staying.connect()
        assert leaving.worker == staying.worker == first
        assert await staying.ask("my name is Dee") == "You said: my name is Dee."
        await wait_stored(cluster, str(staying.session_id), "my name is Dee")
        second = await asyncio.to_thread(cluster.start_worker, 4)  # calls keep running

        cluster.workers[first].send_signal(signal.SIGTERM)
        # Draining: new calls go to the other worker, running ones go on.
        await asyncio.sleep(1.0)
        await newcomer.connect()
        assert newcomer.worker == second
        assert await leaving.ask("still there?") == "You said: still there."
        await leaving.close()  # ends on its own before the deadline

        # The one still talking at the deadline moves, with its conversation.
        await staying.wait_resumed(1, timeout_s=60)
        assert staying.workers == [first, second] and staying.resumed_flags == [False, True]
        assert any(e.get("type") == "migrate" for e in staying.events)
        assert (
            await staying.ask("what did I say before?") == "Before that you said: my name is Dee."
        )
        status = await asyncio.to_thread(cluster.workers[first].process.wait, 60)
        assert status == 0
        assert leaving.resumes == 0 and newcomer.resumes == 0
    finally:
        for peer in (leaving, staying, newcomer):
            await peer.close()


async def test_redis_restart_and_gateway_restart_leave_calls_alone(cluster: Cluster) -> None:
    workers = {cluster.start_worker(capacity=4) for _ in range(2)}
    gateway = cluster.start_gateway()
    peer = Peer(gateway, greetings=GREETINGS)
    try:
        await peer.connect()
        assert await peer.ask("my name is Eve") == "You said: my name is Eve."

        # Redis goes away: the call goes on; a new call gets a clear 503.
        await asyncio.to_thread(cluster.redis.stop)
        assert await peer.ask("hello again") == "You said: hello again."
        sdp = await make_offer_sdp()
        status, body = await offer(gateway, sdp)
        assert status == 503 and "Redis" in str(body["error"])

        # Redis is back (empty): the workers register again and calls flow.
        await asyncio.to_thread(cluster.redis.start)
        await asyncio.to_thread(cluster.wait_workers, workers)
        status, body = await offer(gateway, sdp)
        assert status == 200 and body["worker"] in workers
        assert await peer.ask("still here") == "You said: still here."
        # The running call's slot is back in its worker's count.
        with cluster.client() as r:
            load = r.zcard(f"realtalk:worker:{peer.worker}:slots")
        assert load >= 1

        # The gateway restarts: the call in progress does not notice; a new gateway serves.
        await asyncio.to_thread(cluster.gateways[0].stop, sig=signal.SIGKILL)
        assert await peer.ask("after the gateway") == "You said: after the gateway."
        new_gateway = await asyncio.to_thread(cluster.start_gateway)
        other = Peer(new_gateway, greetings=GREETINGS)
        try:
            await other.connect()
            assert await other.ask("new call") == "You said: new call."
        finally:
            await other.close()
        assert peer.resumes == 0
    finally:
        await peer.close()


async def test_a_worker_that_stops_heartbeating_gets_no_new_session(cluster: Cluster) -> None:
    frozen = cluster.start_worker(capacity=4)
    alive = cluster.start_worker(capacity=4)
    gateway = cluster.start_gateway()
    cluster.workers[frozen].send_signal(signal.SIGSTOP)  # alive but silent
    try:
        await asyncio.to_thread(cluster.wait_workers, {alive})
        sdp = await make_offer_sdp()
        answers = await asyncio.gather(*(offer(gateway, sdp) for _ in range(3)))
        assert [body["worker"] for _, body in answers] == [alive] * 3
    finally:
        cluster.workers[frozen].send_signal(signal.SIGCONT)
    await asyncio.to_thread(cluster.wait_workers, {frozen, alive})  # it comes back by itself
    status, body = await offer(gateway, sdp)
    assert status == 200 and body["worker"] == frozen  # the least loaded again


async def test_several_gateways_never_overfill_a_worker(cluster: Cluster) -> None:
    workers = {cluster.start_worker(capacity=5) for _ in range(2)}
    gateways = [cluster.start_gateway() for _ in range(3)]
    sdp = await make_offer_sdp()
    answers = await asyncio.gather(*(offer(gateways[i % 3], sdp) for i in range(14)))
    statuses = collections.Counter(status for status, _ in answers)
    assert statuses == {200: 10, 503: 4}
    placed = collections.Counter(str(body["worker"]) for status, body in answers if status == 200)
    assert placed == {w: 5 for w in workers}


async def test_a_real_call_gets_no_answer_from_a_full_cluster(cluster: Cluster) -> None:
    cluster.start_worker(capacity=1)
    gateway = cluster.start_gateway()
    first, second = Peer(gateway, greetings=GREETINGS), Peer(gateway, greetings=GREETINGS)
    try:
        await first.connect()
        with pytest.raises(OfferRefused) as refused:
            await second.connect()
        assert refused.value.status == 503
    finally:
        await first.close()
        await second.close()
