"""Concurrent sessions over WebRTC: how many the agent process carries with Opus both ways.

Three processes, as in a deployment of ``realtalk run`` with the local server:

- the Realtime server (scripted engines): :mod:`bench.serve`
- the agent process, whose CPU is counted: :mod:`bench.webrtc_agent` (WebRTCServer, and per
  peer an AgentSession + OpenAIRealtime over WebSocket to the server)
- this process: N aiortc peers standing in for browsers, each sending a 48 kHz stereo microphone
  track (Opus) and receiving and decoding the agent's voice (Opus)

Each session asks for a ~3.5 s reply every 4 s. The ramp adds peers in steps until the p99
lateness of the agent's outgoing frames (as they leave ``next_frame`` for the Opus encoder)
passes 10 ms. Sessions per core = sessions / cores the agent process used.

Baseline, same run: the WebSocket figure's cost model does not apply here, so the baseline is
the same agent process with the same peers but no AgentSession or model — the bare aiortc cost of
carrying N calls (``--bare``: the agent's track sends paced silence, the microphone is drained),
with as many calls as our largest passing step. Ratio = ours / bare sessions per core there.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import sys
import time
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from bench.common import ChildProcess, Row, proc_cpu_s, proc_rss_mb, row
from bench.ramp import Probe, Step, at, failed, passing, ramp
from bench.serve import ServerProcess
from realtalk.web_guard import TOKEN_HEADER, token_from_page

LIMIT_MS = 10.0
GOAL_PER_CORE = 30.0
MIC_RATE = 48000
FRAME_S = 0.02

log = logging.getLogger("bench")


def _say(line: str) -> None:
    print(f"  webrtc: {line}", file=sys.stderr, flush=True)


class MicTrack(MediaStreamTrack):
    """A browser microphone: 20 ms of 48 kHz stereo s16 per frame, paced in real time."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        n = int(MIC_RATE * FRAME_S)
        rng = np.random.default_rng(0)
        self._samples = (rng.standard_normal((1, 2 * n)) * 30).astype(np.int16)  # room noise
        self._n = n
        self._pts = 0
        self._t0: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        delay = self._t0 + self._pts / MIC_RATE - now
        if delay > 0:
            await asyncio.sleep(delay)
        frame = av.AudioFrame.from_ndarray(self._samples, format="s16", layout="stereo")
        frame.sample_rate = MIC_RATE
        frame.time_base = fractions.Fraction(1, MIC_RATE)
        frame.pts = self._pts
        self._pts += self._n
        return frame


class AgentProcess(ChildProcess):
    """The agent process (``bench.webrtc_agent``): ``start`` and ``stop`` its lateness record."""

    def __init__(self, base_url: str, *, bare: bool) -> None:
        args = ["bench.webrtc_agent", base_url, *(["--bare"] if bare else [])]
        super().__init__(args, "WebRTC agent")
        self.url = self.address


class Peers:
    """N browser stand-ins connected to the agent process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pcs: list[RTCPeerConnection] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    async def add(self, n: int) -> int:
        if self._http is None:
            self._http = aiohttp.ClientSession()
        while len(self.pcs) < n:
            batch = min(5, n - len(self.pcs))
            results = await asyncio.gather(
                *(self._open() for _ in range(batch)), return_exceptions=True
            )
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.warning("%d peers failed to connect: %r", len(failed), failed[0])
                break
        return len(self.pcs)

    async def _open(self) -> None:
        assert self._http is not None
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTrack(MicTrack())
        pc.createDataChannel("events")

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            task = asyncio.ensure_future(_drain(track))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        await pc.setLocalDescription(await pc.createOffer())
        offer = {"sdp": pc.localDescription.sdp, "type": "offer"}
        async with self._http.get(self.url) as page:  # the token the page carries
            token = token_from_page(await page.text())
        headers = {"Origin": self.url.rstrip("/"), TOKEN_HEADER: token}
        async with self._http.post(self.url + "api/offer", json=offer, headers=headers) as response:
            answer = await response.json()
            if response.status != 200:
                await pc.close()
                raise RuntimeError(f"offer refused: {answer}")
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type="answer"))
        self.pcs.append(pc)
        end = time.monotonic() + 20
        while pc.connectionState != "connected":
            if time.monotonic() > end or pc.connectionState in ("failed", "closed"):
                raise RuntimeError(f"peer connection {pc.connectionState}")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(pc.close() for pc in self.pcs), return_exceptions=True), 30
            )
        if self._http is not None:
            await self._http.close()


async def _drain(track: MediaStreamTrack) -> None:
    """Receive (and so decode) the agent's voice, as the page's audio element would."""
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()


async def _ramp(
    server_pid: int, agent: AgentProcess, steps: list[int], window_s: float, budget_s: float
) -> list[Step]:
    peers = Peers(agent.url)

    async def start() -> None:
        await agent.command("start")

    async def stop() -> list[float]:
        answer = await agent.command("stop")
        values: list[float] = answer["lateness"]
        return values

    probe = Probe(
        cpu_s=lambda: proc_cpu_s(agent.proc.pid),
        rss_mb=lambda: proc_rss_mb(agent.proc.pid),
        other_cpu_s=lambda: proc_cpu_s(server_pid) + proc_cpu_s(),
        start_recording=start,
        stop_recording=stop,
    )
    try:
        return await ramp(
            peers.add,
            probe,
            steps,
            limit_ms=LIMIT_MS,
            window_s=window_s,
            settle_s=3.0,
            budget_s=budget_s,
            log=_say,
        )
    finally:
        await peers.close()


def _measure(
    steps: list[int], window_s: float, budget_s: float, *, bare: bool
) -> tuple[list[Step], float]:
    with ServerProcess("scripted") as server:
        agent = AgentProcess(server.base_url, bare=bare)
        try:
            rss0 = proc_rss_mb(agent.proc.pid)
            return asyncio.run(_ramp(server.pid, agent, steps, window_s, budget_s)), rss0
        finally:
            agent.close()


def run(quick: bool = False) -> list[Row]:
    if quick:
        steps, window, budget = [2, 4], 3.0, 40.0
    else:
        steps, window, budget = [2, 5, 10, 15, 20, 30, 40, 50, 60], 8.0, 150.0
    start = time.monotonic()
    ours, rss0 = _measure(steps, window, budget, bare=False)
    best = passing(ours, LIMIT_MS)
    # The baseline carries as many calls as our largest passing step, so CPU compares 1:1.
    bare_n = best.sessions if best else steps[0]
    bare, _ = _measure([bare_n], window, window + 60, bare=True)
    elapsed = time.monotonic() - start
    same_n = at(ours, bare_n)
    bare_step = at(bare, bare_n)
    ratio = (
        same_n.per_core / bare_step.per_core
        if same_n is not None and bare_step is not None and bare_step.cores > 0
        else None
    )
    first_fail = failed(ours, LIMIT_MS)
    last = best or (ours[-1] if ours else None)
    cpu_bound = (
        f"CPU-bound capacity at {last.sessions} sessions: {1000 / last.cpu_ms_per_session_s:.0f} "
        f"sessions per core ({last.cpu_ms_per_session_s:.1f} ms of CPU per session-second); "
        if last is not None and last.cores > 0
        else ""
    )
    return [
        row(
            f"WebRTC sessions per agent-process core at p99 frame lateness ≤ {LIMIT_MS:.0f} ms",
            best.per_core if best else None,
            bare_step.per_core if bare_step else None,
            ratio=ratio,
            goal=f"≥ {GOAL_PER_CORE:.0f} sessions per core",
            met=best is not None and best.per_core >= GOAL_PER_CORE,
            note=(
                f"{cpu_bound}largest passing step {best.sessions if best else 0} sessions"
                f"{'' if first_fail is None else f', failed at {first_fail.sessions}'}; "
                f"baseline (bare aiortc calls, no session): "
                f"{bare_step.text() if bare_step else 'n/a'}; steps: "
                f"{'; '.join(s.text() for s in ours)} (others = Realtime server + the peers' "
                f"process); {elapsed:.0f} s"
            ),
        ),
        row(
            "WebRTC: agent-process memory per session, MiB",
            (best.rss_mb - rss0) / best.sessions if best else None,
            goal="report",
            note="RSS growth of the agent process / sessions, at the largest passing step",
        ),
    ]
