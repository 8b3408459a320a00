"""Many sessions at once, many turns each: nothing leaks and every session closes cleanly.

Loopback only, bounded in count and time. The default run is short; ``-m soak`` runs the long
version (1,000 turns per session, with connection cuts and session expiries on the way).

Memory: a session keeps a text copy of its conversation (to replay it after a reconnect) and one
metrics record per turn, so it grows by the words of each turn, by design. What must not stay is
audio: every reply here carries ~0.75 s of audio (36 kB), so a client that kept any of it, or a
server that kept more than its last few items' audio, would blow through the per-turn bounds below.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from realtalk.agent import Agent
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from tests.conftest import make_engines
from tests.reliability.conftest import Ledger, live_tasks, open_fds, settle
from tests.reliability.proxy import FaultProxy
from tests.reliability.rig import FAST_RECONNECT, Recorder, Speaker

AREA = "load and soak"
#: Retained client memory per turn: the turn's text, its items' metadata and a metrics record.
CLIENT_BYTES_PER_TURN = 8 * 1024
#: Retained server memory per turn: the items without their audio (the server keeps the bytes of
#: its most recent audio items only; it held every reply's 36 kB until that was fixed).
SERVER_BYTES_PER_TURN = 16 * 1024


@dataclass
class Talker:
    session: AgentSession
    events: Recorder
    turns: int = 0

    async def turn(self, text: str, timeout: float = 20.0) -> None:
        before = len(self.events.finals("agent"))
        await self.session.send_text(text)
        model = self.session.model
        assert isinstance(model, OpenAIRealtime)
        await self.events.wait(
            lambda: len(self.events.finals("agent")) > before and model.idle(),
            timeout,
        )
        assert self.events.finals("agent")[before] == f"You said: {text}."
        self.events.log.clear()  # the recorder is the test's, not the session's, memory
        self.turns += 1


async def _talker(base_url: str) -> Talker:
    model = OpenAIRealtime(
        model="gpt-realtime",
        base_url=base_url,
        config=OpenAIRealtimeConfig(reconnect=FAST_RECONNECT),
    )
    session = AgentSession(agent=Agent(instructions="Be brief."), model=model)
    events = Recorder(session)
    await session.start(Speaker())
    return Talker(session, events)


async def _converse(talker: Talker, turns: int, between: Callable[[int], None] | None) -> None:
    for i in range(turns):
        await talker.turn(f"turn {i}")
        if between is not None:
            between(i)


async def _run(
    sessions: int,
    turns: int,
    *,
    session_max_seconds: float = 3600.0,
    cut_every: int | None = None,
) -> tuple[list[Talker], FaultProxy]:
    """Start the sessions, talk, close everything; returns the talkers and the proxy."""
    server = LocalServer(
        port=0,
        engines=make_engines(),
        partial_transcripts=False,
        session_max_seconds=session_max_seconds,
        max_connections_per_client=sessions + 8,
    )
    await server.start()
    proxy = await FaultProxy("127.0.0.1", server.port, max_lifetime_s=3600).start()
    talkers = [await _talker(f"{proxy.base_url}/v1") for _ in range(sessions)]

    def maybe_cut(i: int) -> None:
        if cut_every and i % cut_every == cut_every - 1:
            proxy.cut()  # every open link at once: all sessions reconnect together

    try:
        await asyncio.gather(
            *(_converse(t, turns, maybe_cut if k == 0 else None) for k, t in enumerate(talkers))
        )
    finally:
        for t in talkers:
            await t.session.close()
        await proxy.aclose()
        await server.aclose()
    return talkers, proxy


async def _check_clean(talkers: list[Talker], tasks: int, fds: int) -> None:
    for t in talkers:
        assert t.session.closed and t.session.agent_state == "closed"
        assert t.events.fatal_errors() == []
    assert await settle(lambda: live_tasks() <= tasks, timeout=10), (
        f"{live_tasks() - tasks} asyncio tasks outlived their sessions"
    )
    assert await settle(lambda: open_fds() <= fds, timeout=10), (
        f"{open_fds() - fds} file descriptors outlived their sessions"
    )


async def test_concurrent_sessions_leave_nothing_behind(ledger: Ledger) -> None:
    tasks, fds = live_tasks(), open_fds()
    talkers, proxy = await _run(sessions=6, turns=30, cut_every=10)
    await _check_clean(talkers, tasks, fds)
    assert sum(t.turns for t in talkers) == 6 * 30
    assert proxy.stats.cuts >= 2 * 6  # the cuts really hit every session
    ledger.record(
        AREA,
        "6 concurrent sessions x 30 turns, all cut twice",
        tries=6,
        note=f"{proxy.stats.cuts} links cut; tasks and fds back to baseline",
    )


def _bytes(snapshot: tracemalloc.Snapshot) -> tuple[int, int]:
    """Memory allocated from realtalk's client side and from the local server."""
    client = server = 0
    for stat in snapshot.statistics("filename"):
        name = stat.traceback[0].filename
        if "/realtalk/server/" in name:
            server += stat.size
        elif "/realtalk/" in name:
            client += stat.size
    return client, server


async def _growth_per_turn(turns: int) -> tuple[float, float]:
    """Bytes retained per turn by the client and by the server, after a warm-up."""
    server = LocalServer(port=0, engines=make_engines(), partial_transcripts=False)
    await server.start()
    talker = await _talker(server.base_url)
    try:
        await _converse(talker, 30, None)  # warm up: caches, first-turn allocations
        gc.collect()
        tracemalloc.start(1)
        try:
            before = _bytes(tracemalloc.take_snapshot())
            await _converse(talker, turns, None)
            gc.collect()
            after = _bytes(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
    finally:
        await talker.session.close()
        await server.aclose()
    return (after[0] - before[0]) / turns, (after[1] - before[1]) / turns


async def test_client_memory_per_turn_is_bounded(ledger: Ledger) -> None:
    client, server = await _growth_per_turn(150)
    ledger.record(
        AREA,
        "memory over 150 turns of one session",
        note=f"client {client:.0f} B/turn (text copy + metrics); server {server:.0f} B/turn",
    )
    assert client < CLIENT_BYTES_PER_TURN
    assert server < SERVER_BYTES_PER_TURN


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_many_sessions_a_thousand_turns(ledger: Ledger) -> None:
    """16 sessions x 1,000 turns, every link cut every 100 turns, sessions expiring every
    20 s: the same properties as the short run, at length."""
    fault = "soak: 16 sessions x 1,000 turns, cuts every 100 turns, expiry every 20 s"
    tasks, fds = live_tasks(), open_fds()
    try:
        async with asyncio.timeout(1500):
            talkers, proxy = await _run(
                sessions=16, turns=1000, session_max_seconds=20.0, cut_every=100
            )
    except (TimeoutError, AssertionError) as exc:
        what = "a turn unanswered for 20 s" if isinstance(exc, TimeoutError) else str(exc)[:120]
        ledger.record(AREA, fault, tries=16, survived=0, lost=what)
        raise
    await _check_clean(talkers, tasks, fds)
    assert all(t.turns == 1000 for t in talkers)
    ledger.record(
        AREA,
        fault,
        tries=16,
        note=f"{proxy.stats.cuts} links cut, {proxy.stats.accepted} connections in all",
    )


@pytest.mark.soak
@pytest.mark.timeout(900)
async def test_soak_client_memory_over_a_thousand_turns(ledger: Ledger) -> None:
    client, server = await _growth_per_turn(1000)
    ledger.record(
        AREA,
        "soak: memory over 1,000 turns of one session",
        note=f"client {client:.0f} B/turn; server {server:.0f} B/turn",
    )
    assert client < CLIENT_BYTES_PER_TURN
    assert server < SERVER_BYTES_PER_TURN
