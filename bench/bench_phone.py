"""Phone calls: agent CPU per call-second and calls per core on the Twilio and SIP paths, against
the WebRTC path in the same run; and phone turn latency (end of caller speech → first agent
audio sent) on the local server.

Each path runs N concurrent calls against the same scripted Realtime server (its own process);
the agent runs in its own process, whose CPU alone is counted:

- Twilio: :mod:`bench.phone_agent` ``--transport twilio``; N media-stream callers in this
  process send 20 ms of µ-law room noise every 20 ms and echo every mark at once.
- SIP: :mod:`bench.phone_agent` ``--transport sip``; N callers here send INVITE/ACK, then RTP
  (PCMU, 20 ms) and drain what comes back.
- WebRTC (the baseline): :mod:`bench.webrtc_agent` with N aiortc peers (48 kHz stereo Opus up,
  Opus down), as in the WebRTC concurrency figure.

Every agent session asks for a ~3.5 s reply every 4 s, so the agent's voice streams all the
time. CPU per call-second = agent CPU seconds over the window / (N x window); calls per core is
its inverse (a linear, CPU-bound estimate). Ratio = WebRTC CPU / phone CPU (above 1: cheaper).

Turn latency: one Twilio call to an agent that only answers; the caller speaks (a 600 ms tone
the energy VAD hears), then room noise; latency is from the last tone frame sent to the first
agent media frame received (loopback: received ≈ sent). It includes the server VAD's silence
window (200 ms by default), reported as the baseline: no turn can end sooner.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import socket
import struct
import sys
import time
from typing import Any

import aiohttp
import numpy as np

from bench.common import ChildProcess, Row, better_ratio, percentile, proc_cpu_s, row
from bench.serve import ServerProcess
from realtalk.media.g711 import ulaw_encode

FRAME_S = 0.02
FRAME_BYTES = 160


def _say(line: str) -> None:
    print(f"  phone: {line}", file=sys.stderr, flush=True)


def _noise() -> bytes:
    rng = np.random.default_rng(0)
    return ulaw_encode((rng.standard_normal(FRAME_BYTES) * 30).astype(np.int16).tobytes())


def _tone(ms: int) -> list[bytes]:
    t = np.arange(8 * ms) / 8000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    data = ulaw_encode(pcm.tobytes())
    return [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]


class PhoneAgent(ChildProcess):
    """``bench.phone_agent`` in its own process."""

    def __init__(self, base_url: str, transport: str, *, talk: bool) -> None:
        args = ["bench.phone_agent", base_url, "--transport", transport]
        super().__init__([*args, *(["--talk"] if talk else [])], "phone agent")
        self.port = int(self.address)

    async def sessions(self) -> int:
        return int((await self.command("sessions"))["sessions"])


# -- callers -------------------------------------------------------------------------------------


class TwilioCaller:
    def __init__(self, http: aiohttp.ClientSession, port: int) -> None:
        self.http = http
        self.url = f"ws://127.0.0.1:{port}/twilio/media"
        self.sid = "MZ" + secrets.token_hex(16)
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.media_times: list[float] = []
        self.task: asyncio.Task[None] | None = None
        self.seq = 0

    async def connect(self) -> None:
        self.ws = await self.http.ws_connect(self.url)
        await self.ws.send_str(
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        )
        start = {
            "accountSid": "AC" + secrets.token_hex(16),
            "streamSid": self.sid,
            "callSid": "CA" + secrets.token_hex(16),
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        }
        await self.ws.send_str(
            json.dumps(
                {"event": "start", "sequenceNumber": "1", "start": start, "streamSid": self.sid}
            )
        )
        self.task = asyncio.ensure_future(self._receive())

    async def send(self, payload: bytes) -> None:
        assert self.ws is not None
        self.seq += 1
        media = {
            "track": "inbound",
            "chunk": str(self.seq),
            "timestamp": str(self.seq * 20),
            "payload": base64.b64encode(payload).decode(),
        }
        await self.ws.send_str(
            json.dumps(
                {
                    "event": "media",
                    "sequenceNumber": str(self.seq),
                    "media": media,
                    "streamSid": self.sid,
                }
            )
        )

    async def _receive(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            if event["event"] == "media":
                self.media_times.append(time.monotonic())
            elif event["event"] == "mark":
                await self.ws.send_str(
                    json.dumps({"event": "mark", "streamSid": self.sid, "mark": event["mark"]})
                )

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await self.ws.send_str(
                    json.dumps({"event": "stop", "streamSid": self.sid, "stop": {}})
                )
            await self.ws.close()
        if self.task is not None:
            self.task.cancel()


class _Drain(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.packets += 1


class SipCaller:
    def __init__(self, port: int, n: int) -> None:
        self.port = port
        self.call_id = f"bench-{n}-{secrets.token_hex(4)}"
        self.rtp: asyncio.DatagramTransport | None = None
        self.drain = _Drain()
        self.target: tuple[str, int] | None = None
        self.seq = 0
        self.sip: socket.socket | None = None

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self.drain, local_addr=("127.0.0.1", 0)
        )
        self.rtp = transport
        rtp_port = transport.get_extra_info("sockname")[1]
        sdp = (
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
            f"m=audio {rtp_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
        )
        sip = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sip.bind(("127.0.0.1", 0))
        sip.settimeout(20)
        self.sip = sip
        local = sip.getsockname()[1]
        head = (
            f"Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK{secrets.token_hex(4)}\r\n"
            "From: <sip:bench@127.0.0.1>;tag=b1\r\nTo: <sip:agent@127.0.0.1>{to}\r\n"
            f"Call-ID: {self.call_id}\r\n"
        )
        invite = (
            f"INVITE sip:agent@127.0.0.1:{self.port} SIP/2.0\r\n"
            + head.format(to="")
            + "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:bench@127.0.0.1:{local}>\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        )
        sip.sendto(invite.encode(), ("127.0.0.1", self.port))
        while True:
            reply = (await asyncio.to_thread(sip.recv, 65536)).decode()
            if reply.startswith("SIP/2.0 200"):
                break
        tag = re.search(r"^To:.*;tag=([^;\r\n]+)", reply, re.M)
        our = re.search(r"m=audio (\d+)", reply)
        assert tag and our
        self.target = ("127.0.0.1", int(our.group(1)))
        ack = (
            f"ACK sip:agent@127.0.0.1:{self.port} SIP/2.0\r\n"
            + head.format(to=f";tag={tag.group(1)}")
            + "CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
        )
        sip.sendto(ack.encode(), ("127.0.0.1", self.port))

    async def send(self, payload: bytes) -> None:
        if self.rtp is None or self.target is None:
            return
        self.seq += 1
        header = struct.pack("!BBHII", 0x80, 0, self.seq & 0xFFFF, self.seq * 160, 1234)
        self.rtp.sendto(header + payload, self.target)

    async def close(self) -> None:
        if self.rtp is not None:
            self.rtp.close()
        if self.sip is not None:
            self.sip.close()


async def _pace(callers: list[Any], stop: asyncio.Event, frames: list[bytes] | None = None) -> None:
    """Every 20 ms, one frame from every caller (room noise unless ``frames`` says otherwise)."""
    noise = _noise()
    start = time.monotonic()
    n = 0
    while not stop.is_set():
        n += 1
        payload = frames.pop(0) if frames else noise
        await asyncio.gather(*(c.send(payload) for c in callers), return_exceptions=True)
        delay = start + n * FRAME_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


async def _cpu_phone(
    base_url: str, kind: str, calls: int, window_s: float
) -> tuple[float, int, float]:
    """Agent CPU ms per call-second on the Twilio or SIP path, the sessions alive, and the
    cores the agent kept busy (near its fair share of a loaded machine: the figure is capped)."""
    agent = PhoneAgent(base_url, kind, talk=True)
    stop = asyncio.Event()
    callers: list[Any] = []
    try:
        async with aiohttp.ClientSession() as http:
            for n in range(calls):
                caller = (
                    TwilioCaller(http, agent.port) if kind == "twilio" else SipCaller(agent.port, n)
                )
                await caller.connect()
                callers.append(caller)
            pacer = asyncio.ensure_future(_pace(callers, stop))
            await asyncio.sleep(3.0)  # sessions connect and settle
            cpu0, t0 = proc_cpu_s(agent.proc.pid), time.monotonic()
            await asyncio.sleep(window_s)
            cpu1, t1 = proc_cpu_s(agent.proc.pid), time.monotonic()
            alive = await agent.sessions()
            stop.set()
            await pacer
            for caller in callers:
                await caller.close()
    finally:
        agent.close()
    return (cpu1 - cpu0) * 1000 / (calls * (t1 - t0)), alive, (cpu1 - cpu0) / (t1 - t0)


async def _cpu_webrtc(base_url: str, calls: int, window_s: float) -> tuple[float, int, float]:
    from bench.bench_concurrency_webrtc import AgentProcess, Peers

    agent = AgentProcess(base_url, bare=False)
    peers = Peers(agent.url)
    try:
        connected = await peers.add(calls)
        await asyncio.sleep(3.0)
        cpu0, t0 = proc_cpu_s(agent.proc.pid), time.monotonic()
        await asyncio.sleep(window_s)
        cpu1, t1 = proc_cpu_s(agent.proc.pid), time.monotonic()
    finally:
        await peers.close()
        agent.close()
    busy = (cpu1 - cpu0) / (t1 - t0)
    return (cpu1 - cpu0) * 1000 / (connected * (t1 - t0)), connected, busy


async def _turn_latency(base_url: str, turns: int) -> list[float]:
    agent = PhoneAgent(base_url, "twilio", talk=False)
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:
            caller = TwilioCaller(http, agent.port)
            await caller.connect()
            await asyncio.sleep(1.5)  # the session connects
            for _ in range(turns):
                stop = asyncio.Event()
                frames = _tone(600)
                pacer = asyncio.ensure_future(_pace([caller], stop, frames))
                while frames:
                    await asyncio.sleep(0.005)
                end_of_speech = time.monotonic()  # the last tone frame was just sent
                before = len(caller.media_times)
                deadline = end_of_speech + 10
                while len(caller.media_times) == before and time.monotonic() < deadline:
                    await asyncio.sleep(0.002)
                if len(caller.media_times) > before:
                    latencies.append(caller.media_times[before] - end_of_speech)
                # let the reply play out (no agent media for 600 ms)
                while time.monotonic() < deadline and (
                    not caller.media_times or time.monotonic() - caller.media_times[-1] < 0.6
                ):
                    await asyncio.sleep(0.05)
                stop.set()
                await pacer
            await caller.close()
    finally:
        agent.close()
    return latencies


def run(quick: bool = False) -> list[Row]:
    calls, window, turns = (2, 3.0, 2) if quick else (10, 10.0, 8)
    with ServerProcess("scripted") as server:
        _say(f"{calls} calls per path, {window:.0f} s window")
        webrtc_ms, webrtc_n, webrtc_busy = asyncio.run(_cpu_webrtc(server.base_url, calls, window))
        twilio = asyncio.run(_cpu_phone(server.base_url, "twilio", calls, window))
        sip = asyncio.run(_cpu_phone(server.base_url, "sip", calls, window))
        latencies = asyncio.run(_turn_latency(server.base_url, turns))
    rows: list[Row] = []
    load = os.getloadavg()[0]
    for name, (ms, alive, busy) in (("Twilio", twilio), ("SIP", sip)):
        rows.append(
            row(
                f"{name} path: agent CPU ms per call-second (WebRTC = baseline)",
                ms,
                webrtc_ms,
                ratio=better_ratio(ms, webrtc_ms, lower_is_better=True),
                goal="report",
                note=f"{calls} calls ({alive} alive at the end; WebRTC {webrtc_n}), "
                "a reply every 4 s each; "
                f"agent busy {busy:.2f} cores (WebRTC {webrtc_busy:.2f}) at load {load:.1f}: "
                "a process held near its share of a loaded machine is capped, not measured; "
                f"≈ {1000 / ms:.0f} calls per core (WebRTC ≈ {1000 / webrtc_ms:.0f})"
                if ms > 0 and webrtc_ms > 0
                else "",
            )
        )
    ms_values = [v * 1000 for v in latencies]
    rows.append(
        row(
            "phone turn latency, end of caller speech → first agent audio sent, p50 ms",
            percentile(ms_values, 50) if ms_values else None,
            200.0,
            goal="report (baseline: the server VAD's 200 ms silence window, the floor)",
            note=f"Twilio path, scripted local server, {len(ms_values)} turns: "
            + ", ".join(f"{v:.0f}" for v in ms_values),
        )
    )
    return rows
