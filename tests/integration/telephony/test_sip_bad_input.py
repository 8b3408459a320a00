"""Bad input at the SIP endpoint over real sockets: RTP from strangers, floods, garbage SIP."""

from __future__ import annotations

import asyncio
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable

import pytest

from realtalk.transports.telephony.sip.endpoint import SipCallTransport, SipServer

OFFER = (
    "v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n"
    "a=rtpmap:101 telephone-event/8000\r\n"
)


def invite(call_id: str, rtp_port: int) -> bytes:
    body = OFFER.format(port=rtp_port)
    return (
        "INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bK{call_id}\r\n"
        f"From: <sip:bad@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\nCall-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\nContact: <sip:bad@127.0.0.1:5999>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


def rtp(seq: int, ssrc: int = 1) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq, seq * 160, ssrc) + b"\xff" * 160


async def until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[SipServer, list[SipCallTransport]]]:
    calls: list[SipCallTransport] = []

    async def on_call(transport: SipCallTransport) -> None:
        calls.append(transport)  # no session: audio is counted and dropped
        transport.answer()
        await transport.wait_ended()

    server = SipServer(on_call, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server, calls
    finally:
        await server.aclose()


def udp(host: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(10)
    return sock


async def test_rtp_from_strangers_and_floods_are_dropped_and_counted(
    endpoint: tuple[SipServer, list[SipCallTransport]],
) -> None:
    server, calls = endpoint
    caller, media = udp(), udp()
    caller.sendto(invite("bad-1", media.getsockname()[1]), ("127.0.0.1", server.port))
    answer = b""
    while b" 200 " not in answer.split(b"\r\n", 1)[0]:
        answer = await asyncio.to_thread(caller.recv, 65536)
    our_port = int(re.search(rb"m=audio (\d+)", answer).group(1))  # type: ignore[union-attr]
    await until(lambda: bool(calls))
    rtp_session = calls[0].rtp
    target = ("127.0.0.1", our_port)
    media.sendto(rtp(1), target)  # the caller's own stream: latched
    stranger_port, stranger_ip = udp(), udp("127.0.0.2")
    for n in range(5):
        stranger_port.sendto(rtp(2 + n), target)
        stranger_ip.sendto(rtp(2 + n), target)
        media.sendto(rtp(10 + n, ssrc=99), target)  # another stream from the right socket
        media.sendto(b"\x00garbage", target)
    await until(lambda: rtp_session.stats["unknown_source"] >= 15 and rtp_session.stats["bad"] >= 5)
    for n in range(600):  # a flood: 600 packets at once
        media.sendto(rtp(100 + n), target)
    await until(lambda: rtp_session.stats["flood"] > 0)
    assert len(rtp_session.jitter) <= rtp_session.jitter.max_packets
    # The endpoint still answers, and a new call is still taken.
    second = udp()
    second.sendto(invite("bad-2", media.getsockname()[1]), ("127.0.0.1", server.port))
    reply = await asyncio.to_thread(second.recv, 65536)
    assert reply.startswith(b"SIP/2.0 100 ")
    await until(lambda: len(calls) == 2)
    for sock in (caller, media, stranger_port, stranger_ip, second):
        sock.close()
