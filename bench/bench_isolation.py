"""Isolation: what one hostile connection costs every other session on the local server.

Setup: the local server (scripted engines, default limits) in its own process. A well-behaved
client sends ``session.update`` and waits for ``session.updated``, again and again, 20 ms apart;
its round trip is the figure (p50/p99). Meanwhile a second connection, from a process of its
own process, runs one attack at a time (the attacks of issue 11):

- ``no-read``: creates an item with 4 MiB of audio, then retrieves it 60 times and never reads.
- ``pong flood``: 200,000 pings, never reading the pongs.
- ``values``: an 11 MB ``session.update`` whose ``tools`` is ``[0,0,…]`` (5.5 M values), 3 times.
- ``big appends``: 15 MiB appends (the largest OpenAI takes) with turn detection off, 10 times.
- ``responses``: 1,500 ``response.create`` out of band, without reading.

Baseline: the same round trip with no attack, in the same run. Each row also notes the server's
peak RSS during the attack, and how the attacking connection ended.
"""

from __future__ import annotations

import asyncio
import base64
import json
import multiprocessing
import os
import queue
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import connect

from bench.common import Row, percentile, proc_rss_mb, row
from bench.serve import ServerProcess

MiB = 1024 * 1024
Attack = Callable[[int], Awaitable[str]]


async def _raw(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket opened by hand, whose socket buffers little and which never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /v1/realtime?model=gpt-realtime HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer


def _frame(opcode: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\0\0\0\0" + payload  # a zero mask: allowed, and no copy to mask


def _text(event: dict[str, Any] | str) -> bytes:
    data = event if isinstance(event, str) else json.dumps(event)
    return _frame(0x1, data.encode())


async def _write_until_closed(writer: asyncio.StreamWriter, frames: list[bytes]) -> str:
    try:
        for frame in frames:
            writer.write(frame)
            await asyncio.wait_for(writer.drain(), 20)
    except (ConnectionError, TimeoutError) as exc:
        return f"cut off ({type(exc).__name__})"
    return "all sent"


async def _hold(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outcome: str, seconds: float
) -> str:
    """After the attack: read at last, and report whether the server had ended the connection
    (end of stream or a reset within ``seconds``)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(1 << 20):
                pass
        result = "the server closed it"
    except ConnectionError:
        result = "the server closed it"
    except TimeoutError:
        result = "still open"
    writer.close()
    return f"{outcome}; {result}"


async def attack_no_read(port: int, hold_s: float) -> str:
    reader, writer = await _raw(port)
    audio = base64.b64encode(bytes(4 * MiB)).decode()
    item = {"id": "item_big", "type": "message", "role": "user"}
    create = {"type": "conversation.item.create", "item": item}
    item["content"] = [{"type": "input_audio", "audio": audio}]
    retrieve = _text({"type": "conversation.item.retrieve", "item_id": "item_big"})
    outcome = await _write_until_closed(writer, [_text(create), *[retrieve] * 60])
    return await _hold(reader, writer, outcome, hold_s)


async def attack_pong_flood(port: int, hold_s: float) -> str:
    reader, writer = await _raw(port)
    pings = _frame(0x9, b"p" * 125) * 2000
    outcome = await _write_until_closed(writer, [pings] * 100)
    return await _hold(reader, writer, outcome, hold_s)


async def attack_values(port: int, hold_s: float) -> str:
    reader, writer = await _raw(port)
    zeros = ",".join(["0"] * 5_500_000)
    frame = _text(f'{{"type":"session.update","session":{{"type":"realtime","tools":[{zeros}]}}}}')
    outcome = await _write_until_closed(writer, [frame] * 3)
    return await _hold(reader, writer, outcome, hold_s)


async def attack_big_appends(port: int, hold_s: float) -> str:
    reader, writer = await _raw(port)
    off = {"type": "session.update", "session": {"type": "realtime"}}
    off["session"]["audio"] = {"input": {"turn_detection": None}}
    audio = base64.b64encode(os.urandom(15 * MiB)).decode()
    append = _text({"type": "input_audio_buffer.append", "audio": audio})
    outcome = await _write_until_closed(writer, [_text(off), *[append] * 10])
    return await _hold(reader, writer, outcome, hold_s)


async def attack_responses(port: int, hold_s: float) -> str:
    reader, writer = await _raw(port)
    create = _text({"type": "response.create", "response": {"conversation": "none"}})
    outcome = await _write_until_closed(writer, [create] * 1500)
    return await _hold(reader, writer, outcome, hold_s)


ATTACKS: dict[str, Callable[[int, float], Awaitable[str]]] = {
    "no-read": attack_no_read,
    "pong flood": attack_pong_flood,
    "values": attack_values,
    "big appends": attack_big_appends,
    "responses": attack_responses,
}


def _attack_main(name: str, port: int, hold_s: float, outcome: Any) -> None:
    """In its own process: building the attack frames must not steal the probe's CPU loop."""
    try:
        outcome.put(asyncio.run(ATTACKS[name](port, hold_s)))
    except Exception as exc:  # a failed attack is a result too
        outcome.put(f"attack failed: {type(exc).__name__}: {exc}")


async def _probe(url: str, seconds: float, pid: int) -> tuple[list[float], float]:
    """Round trips of session.update (s) for ``seconds``, and the server's peak RSS (MB)."""
    rtts: list[float] = []
    peak = proc_rss_mb(pid)
    update = json.dumps({"type": "session.update", "session": {"type": "realtime"}})
    async with connect(url, max_size=None) as ws:
        await ws.recv()  # session.created
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            start = time.perf_counter()
            await ws.send(update)
            while json.loads(await asyncio.wait_for(ws.recv(), 120))["type"] != "session.updated":
                pass
            rtts.append(time.perf_counter() - start)
            peak = max(peak, proc_rss_mb(pid))
            await asyncio.sleep(0.02)
    return rtts, peak


def _ms(values: list[float], q: float) -> float:
    return round(percentile(values, q) * 1000, 2)


async def _measure(quick: bool) -> list[Row]:
    seconds = 4.0 if quick else 12.0
    rows: list[Row] = []
    with ServerProcess("scripted") as server:
        ws_url = server.base_url.replace("http://", "ws://") + "/realtime"
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        calm, calm_peak = await _probe(ws_url, seconds, server.pid)
        calm_p99 = _ms(calm, 99)
        rows.append(
            row(
                "session.update round trip, no attack (p99 ms)",
                calm_p99,
                note=f"p50 {_ms(calm, 50)} ms, {len(calm)} round trips; "
                f"server RSS {calm_peak:.0f} MB",
            )
        )
        for name in ATTACKS:
            before = proc_rss_mb(server.pid)
            context = multiprocessing.get_context("spawn")
            outcomes = context.Queue()
            attacker = context.Process(target=_attack_main, args=(name, port, seconds, outcomes))
            attacker.start()
            rtts, peak = await _probe(ws_url, seconds, server.pid)
            try:
                outcome = await asyncio.to_thread(outcomes.get, True, 120)
            except queue.Empty:
                outcome = "did not finish"
            await asyncio.to_thread(attacker.join, 30)
            await asyncio.sleep(1.0)
            after = proc_rss_mb(server.pid)
            p99 = _ms(rtts, 99)
            rows.append(
                row(
                    f"session.update round trip under '{name}' (p99 ms)",
                    p99,
                    calm_p99,
                    ratio=round(calm_p99 / p99, 3) if p99 > 0 else None,
                    goal="close to no attack (ratio near 1)",
                    met=p99 <= max(3 * calm_p99, 50.0),
                    note=f"p50 {_ms(rtts, 50)} ms (no attack {_ms(calm, 50)}); server RSS "
                    f"{before:.0f} → peak {peak:.0f} → {after:.0f} MB 1 s after; attacker: "
                    f"{outcome}",
                )
            )
    return rows


def run(quick: bool = False) -> list[Row]:
    return asyncio.run(_measure(quick))
