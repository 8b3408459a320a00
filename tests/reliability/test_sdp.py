"""Malformed WebRTC offers at ``POST /api/offer``: a clear 4xx, never a 500, and the web runner
keeps serving. Loopback only: the offers carry loopback candidates and no ICE server is set."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtalk.transports.webrtc import WebRTCServer
from tests.reliability.conftest import Ledger

AREA = "WebRTC offers"

# A real aiortc audio offer, with loopback candidates only.
OFFER = "\r\n".join(
    [
        "v=0",
        "o=- 4004588078 4004588078 IN IP4 127.0.0.1",
        "s=-",
        "t=0 0",
        "a=group:BUNDLE 0",
        "a=msid-semantic:WMS *",
        "m=audio 59143 UDP/TLS/RTP/SAVPF 96 0 8",
        "c=IN IP4 127.0.0.1",
        "a=sendrecv",
        "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid",
        "a=mid:0",
        "a=msid:387b3ff0-6dce-4602-b116-cb1fdfb50796 353b9aa0-5306-474d-a6af-e639a5924ef0",
        "a=rtcp:9 IN IP4 0.0.0.0",
        "a=rtcp-mux",
        "a=ssrc:3548687800 cname:327c0f4b-d6c0-49ea-9166-382d8d08711b",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=candidate:f957a2332b1715da3b0ef8ba684454eb 1 udp 2130706431 127.0.0.1 59143 typ host",
        "a=end-of-candidates",
        "a=ice-ufrag:Ic6v",
        "a=ice-pwd:Y824fnHeTjE2U9hysJSifn",
        "a=fingerprint:sha-256 01:3D:F6:42:38:C4:8E:E1:AF:A0:51:AD:2A:23:4D:A0:0E:82:29:E0:57:66:"
        "01:00:AE:57:F2:B9:AC:EA:E0:3C",
        "a=setup:actpass",
        "",
    ]
)


class Web:
    """A running WebRTCServer whose entrypoint does nothing, and an HTTP client for it."""

    def __init__(self, server: WebRTCServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http

    async def offer(self, body: bytes | str) -> tuple[int, dict[str, Any]]:
        async with self.http.post(
            f"{self.server.url}api/offer",
            data=body,
            headers=self.server.offer_headers(),
        ) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text)
            except ValueError:
                payload = {"raw": text}
            return resp.status, payload

    async def healthy(self) -> bool:
        async with self.http.get(f"{self.server.url}api/health") as resp:
            return resp.status == 200


async def _nothing(ctx: Any) -> None:
    return None


@pytest.fixture
async def web() -> AsyncIterator[Web]:
    server = WebRTCServer(_nothing, "127.0.0.1", 0)
    await server.start()
    async with aiohttp.ClientSession() as http:
        yield Web(server, http)
    await server.aclose()


def _check(status: int, payload: dict[str, Any], body: bytes | str) -> None:
    assert status != 500, f"server error for {body[:120]!r}: {payload}"
    if status != 200:
        assert 400 <= status < 500
        assert isinstance(payload.get("error"), str) and payload["error"], payload


@st.composite
def mutated_offers(draw: st.DrawFn) -> str:
    """The real offer with lines dropped, duplicated, truncated or filled with junk."""
    lines = OFFER.split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "dup", "cut", "junk", "swap"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == "junk":
            lines[i] = lines[i][:2] + draw(st.text(max_size=30))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        if not lines:
            break
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"\xff\xfe\x00", id="not-utf8"),
        pytest.param(b"[]", id="array"),
        pytest.param(json.dumps({"type": "offer"}), id="no-sdp"),
        pytest.param(json.dumps({"sdp": OFFER}), id="no-type"),
        pytest.param(json.dumps({"sdp": OFFER, "type": "answer"}), id="an-answer"),
        pytest.param(json.dumps({"sdp": "", "type": "offer"}), id="empty-sdp"),
        pytest.param(json.dumps({"sdp": 42, "type": "offer"}), id="sdp-number"),
        pytest.param(json.dumps({"sdp": "hello", "type": "offer"}), id="sdp-prose"),
        pytest.param(
            json.dumps({"sdp": OFFER.replace("m=audio", "m=video"), "type": "offer"}),
            id="no-audio-section",
        ),
        pytest.param(json.dumps({"sdp": OFFER + "a=x\r\n" * 60000, "type": "offer"}), id="300kB"),
    ],
)
async def test_malformed_offers_get_a_clear_4xx(
    web: Web, ledger: Ledger, body: bytes | str
) -> None:
    status, payload = await web.offer(body)
    _check(status, payload, body)
    assert status != 200
    assert await web.healthy()
    ledger.record(AREA, "malformed offer body (clear 4xx)")


async def test_a_deeply_nested_body_gets_a_4xx(web: Web, ledger: Ledger) -> None:
    body = "[" * 100_000
    status, payload = await web.offer(body)
    ledger.record(
        AREA,
        "deeply nested offer body",
        survived=int(status != 500),
        lost="a 500 answer" if status == 500 else None,
    )
    _check(status, payload, body)
    assert status == 400 and "nested too deeply" in payload["error"]


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sdp=mutated_offers())
async def test_mutated_sdp_never_breaks_the_runner(web: Web, ledger: Ledger, sdp: str) -> None:
    status, payload = await web.offer(json.dumps({"sdp": sdp, "type": "offer"}))
    _check(status, payload, sdp)
    if status == 200:
        await web.server.close_connections()  # an accepted mutant must not linger
    assert await web.healthy()
    ledger.record(AREA, "mutated SDP offer (4xx or a usable answer)")
