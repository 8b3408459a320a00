"""The WebRTC server's HTTP surface without a browser: offers, the page, data channel messages.

Malformed offers must get HTTP 400 with a reason the page can show; a valid offer gets an SDP
answer and starts the entrypoint with that connection's transport.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiortc import RTCConfiguration, RTCPeerConnection

from realtalk.transports.webrtc import (
    SERVER_KEY,
    ServerFullError,
    WebRTCServer,
    WebRTCTransport,
    parse_offer,
)
from realtalk.transports.webrtc_transport import MAX_TEXT_CHARS, _parse_message
from realtalk.web_guard import TOKEN_HEADER, token_from_page


async def _browser_like_offer(*, audio: bool = True) -> tuple[RTCPeerConnection, str]:
    """An offer shaped like the page's: mic audio (sendrecv), a video slot, the events channel."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves the box
    if audio:
        pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendonly")
    pc.createDataChannel("events")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


class _Recorder:
    """An entrypoint that only remembers the contexts it was called with."""

    def __init__(self) -> None:
        self.contexts: list[Any] = []
        self.called = asyncio.Event()

    async def __call__(self, ctx: Any) -> None:
        self.contexts.append(ctx)
        self.called.set()


@pytest.fixture
async def server() -> Any:
    srv = WebRTCServer(_Recorder(), max_connections=1)
    yield srv
    await srv.close_connections()


@pytest.fixture
async def client(server: WebRTCServer) -> Any:
    async with TestClient(TestServer(server.build_app())) as c:
        yield c


def _page_headers(client: TestClient) -> dict[str, str]:
    """What the page sends: JSON, its own origin, the token embedded in it."""
    server = client.app[SERVER_KEY]
    return server.offer_headers(str(client.make_url("/")))


async def _post_offer(client: TestClient, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = _page_headers(client)
    resp = await client.post("/api/offer", data=data, headers=headers)
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("this is not json", "not valid JSON"),
        ('{"sdp": "v=0", "type": "offer"', "not valid JSON"),
        ("[1, 2, 3]", "JSON object"),
        ({"type": "offer"}, '"sdp" must be a non-empty string'),
        ({"sdp": "", "type": "offer"}, '"sdp" must be a non-empty string'),
        ({"sdp": 42, "type": "offer"}, '"sdp" must be a non-empty string'),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"}, '"type" must be "offer"'),
        ({"sdp": "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "type": "answer"}, "answer"),
        ({"sdp": "hello", "type": "offer"}, 'start with "v=0"'),
        ({"sdp": "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n", "type": "offer"}, "no audio"),
    ],
)
async def test_malformed_offer_gets_400_with_reason(
    client: TestClient, server: WebRTCServer, body: Any, reason: str
) -> None:
    status, answer = await _post_offer(client, body)
    assert status == 400
    assert reason in answer["error"]
    assert server.connections == {}


async def test_offer_that_aiortc_cannot_parse_gets_400_and_leaves_nothing_open(
    client: TestClient, server: WebRTCServer
) -> None:
    sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    status, answer = await _post_offer(client, {"sdp": sdp, "type": "offer"})
    assert status == 400
    assert answer["error"].startswith("the offer could not be used")
    assert server.connections == {}


async def test_oversized_offer_is_refused(client: TestClient) -> None:
    huge = json.dumps({"sdp": "v=0\r\n" + "a=x\r\n" * 100_000, "type": "offer"})
    resp = await client.post("/api/offer", data=huge, headers=_page_headers(client))
    assert resp.status == 413


async def test_valid_offer_is_answered_and_starts_the_entrypoint(
    client: TestClient, server: WebRTCServer
) -> None:
    pc, sdp = await _browser_like_offer()
    try:
        status, answer = await _post_offer(client, {"sdp": sdp, "type": "offer"})
        assert status == 200, answer
        assert answer["type"] == "answer"
        assert "m=audio" in answer["sdp"]
        assert "a=sendrecv" in answer["sdp"]  # the agent's voice rides the mic's transceiver
        cid = answer["connection_id"]
        assert set(server.connections) == {cid}
        recorder = server.entrypoint
        assert isinstance(recorder, _Recorder)
        await asyncio.wait_for(recorder.called.wait(), 5)
        transport = recorder.contexts[0].transport
        assert isinstance(transport, WebRTCTransport)
        assert transport.connection_id == cid

        # max_connections=1: the next browser is turned away, not queued
        pc2, sdp2 = await _browser_like_offer()
        status2, answer2 = await _post_offer(client, {"sdp": sdp2, "type": "offer"})
        await pc2.close()
        assert status2 == 503
        assert "too many connections" in answer2["error"]

        await server.close_connections()
        assert server.connections == {}
        assert transport.closed
    finally:
        await pc.close()


async def test_page_and_static_files_are_served_with_a_strict_policy(client: TestClient) -> None:
    resp = await client.get("/")
    assert resp.status == 200
    html = await resp.text()
    assert 'id="connect"' in html
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    for name, kind in (
        ("app.js", "javascript"),
        ("level-probe.js", "javascript"),
        ("style.css", "css"),
    ):
        r = await client.get(f"/static/{name}")
        assert r.status == 200
        assert kind in r.headers["Content-Type"]
    assert (await client.get("/static/../webrtc.py")).status == 404
    assert (await client.get("/static/index.htm")).status == 404
    config = await (await client.get("/api/config")).json()
    assert config == {"iceServers": []}


def test_ice_servers_are_validated_and_given_to_the_page() -> None:
    turn = {"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}
    srv = WebRTCServer(_Recorder(), ice_servers=[turn])
    assert srv.ice_servers == [turn]
    with pytest.raises(ValueError, match="urls"):
        WebRTCServer(_Recorder(), ice_servers=[{"url": "stun:x"}])


def test_parse_offer_accepts_a_browser_offer_shape() -> None:
    sdp = "v=0\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
    desc = parse_offer({"sdp": sdp, "type": "offer"})
    assert desc.type == "offer" and desc.sdp == sdp


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ('{"type": "text", "text": "  hello  "}', {"type": "text", "text": "hello"}),
        ('{"type": "interrupt"}', {"type": "interrupt"}),
        ('{"type": "camera", "on": false}', {"type": "camera", "on": False}),
        ('{"type": "bye"}', {"type": "bye"}),
    ],
)
def test_page_messages_are_parsed(message: str, expected: dict[str, Any]) -> None:
    assert _parse_message(message) == expected


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x00\x01", "binary"),
        ("not json", "not JSON"),
        ('["text"]', "JSON object"),
        ('{"type": "text"}', "non-empty string"),
        ('{"type": "text", "text": "   "}', "non-empty string"),
        (json.dumps({"type": "text", "text": "x" * (MAX_TEXT_CHARS + 1)}), "longer than"),
        ('{"type": "camera", "on": "yes"}', "boolean"),
        ('{"type": "dance"}', "unknown message type"),
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ],
)
def test_bad_page_messages_say_what_is_wrong(message: str | bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        _parse_message(message)


async def test_serve_reports_its_url_and_stops_when_cancelled() -> None:
    import aiohttp

    from realtalk.transports.webrtc import serve

    ready: asyncio.Queue[str] = asyncio.Queue()
    task = asyncio.create_task(serve(_Recorder(), port=0, on_ready=ready.put_nowait))
    url = await asyncio.wait_for(ready.get(), 10)
    assert url.startswith("http://127.0.0.1:")
    async with aiohttp.ClientSession() as http, http.get(url + "api/health") as resp:
        assert (await resp.json()) == {"ok": True, "connections": 0}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectionError):
            await http.get(url)


# --- browser-origin safety and the slot cap (issue 11) --------------------------------------


async def test_a_cross_site_simple_post_starts_nothing(
    client: TestClient, server: WebRTCServer
) -> None:
    """What any web page can send without asking: text/plain, its own Origin, no token."""
    pc, sdp = await _browser_like_offer()
    body = json.dumps({"sdp": sdp, "type": "offer"})
    attempts = [
        {"Content-Type": "text/plain", "Origin": "https://evil.example"},
        {"Content-Type": "application/json", "Origin": "https://evil.example"},
        {**_page_headers(client), "Content-Type": "text/plain"},  # right page, not JSON
        {**_page_headers(client), TOKEN_HEADER: ""},  # right page, no token
        {**_page_headers(client), TOKEN_HEADER: server.tokens.issue() + "0"},  # forged
        {k: v for k, v in _page_headers(client).items() if k != "Origin"},  # no origin
    ]
    try:
        for headers in attempts:
            resp = await client.post("/api/offer", data=body, headers=headers)
            assert resp.status == 403, (headers, await resp.text())
        recorder = server.entrypoint
        assert isinstance(recorder, _Recorder) and recorder.contexts == []
        assert server.connections == {} and server._slots_taken == 0
    finally:
        await pc.close()


async def test_a_foreign_host_is_refused_even_for_the_page(client: TestClient) -> None:
    """DNS rebinding: evil.example resolving to 127.0.0.1 sends its own name as Host."""
    for path in ("/", "/api/config", "/api/health"):
        resp = await client.get(path, headers={"Host": "evil.example:8080"})
        assert resp.status == 403, path
    resp = await client.get("/", headers={"Host": "localhost:8080"})
    assert resp.status == 200


async def test_the_page_carries_a_token_that_the_offer_endpoint_takes(
    client: TestClient, server: WebRTCServer
) -> None:
    html = await (await client.get("/")).text()
    token = token_from_page(html)
    assert server.tokens.valid(token)
    js = await (await client.get("/static/app.js")).text()
    assert "realtalk-token" in js and TOKEN_HEADER in js


async def test_concurrent_offers_never_exceed_the_cap() -> None:
    """100 concurrent offers against a cap of 32 all got in: the cap was checked before the
    awaits and the peer registered after them."""
    recorder = _Recorder()
    server = WebRTCServer(recorder, max_connections=3, max_connections_per_client=3)
    offers = [await _browser_like_offer() for _ in range(10)]
    try:
        async with TestClient(TestServer(server.build_app())) as client:
            results = await asyncio.gather(
                *(_post_offer(client, {"sdp": sdp, "type": "offer"}) for _, sdp in offers)
            )
            statuses = sorted(status for status, _ in results)
            assert statuses.count(200) == 3, statuses
            assert set(statuses) == {200, 503}
            assert len(server.connections) == 3
            await server.close_connections()
            assert server._slots_taken == 0
    finally:
        for pc, _ in offers:
            await pc.close()


async def test_one_client_cannot_take_every_slot() -> None:
    server = WebRTCServer(_Recorder(), max_connections=4)  # 2 per client address
    offers = [await _browser_like_offer() for _ in range(3)]
    try:
        async with TestClient(TestServer(server.build_app())) as client:
            statuses = [
                (await _post_offer(client, {"sdp": sdp, "type": "offer"}))[0] for _, sdp in offers
            ]
            assert statuses == [200, 200, 429]
            await server.close_connections()
    finally:
        for pc, _ in offers:
            await pc.close()


async def test_direct_offers_take_their_slot_before_any_await_too() -> None:
    """A worker behind a gateway calls accept_offer directly: the same cap, reserved at once."""
    server = WebRTCServer(_Recorder(), max_connections=2)
    offers = [await _browser_like_offer() for _ in range(6)]
    try:
        results = await asyncio.gather(
            *(server.accept_offer({"sdp": sdp, "type": "offer"}) for _, sdp in offers),
            return_exceptions=True,
        )
        answered = [r for r in results if isinstance(r, dict)]
        full = [r for r in results if isinstance(r, ServerFullError)]
        assert len(answered) == 2 and len(full) == 4, results
        await server.close_connections()
        assert server._slots_taken == 0
    finally:
        for pc, _ in offers:
            await pc.close()


async def test_a_peer_connection_that_never_closes_does_not_hold_up_the_transport(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import realtalk.transports.webrtc_transport as wt

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    stuck = asyncio.Event()

    async def never() -> None:
        stuck.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(pc, "close", never)
    monkeypatch.setattr(wt, "PEER_CLOSE_TIMEOUT_S", 0.2)
    transport = WebRTCTransport(pc, connection_id="c-stuck")
    closed: list[str] = []
    transport.add_close_callback(lambda: closed.append("closed"))
    await asyncio.wait_for(transport.aclose(), 5)
    assert stuck.is_set() and transport.closed and closed == ["closed"]
    assert "did not close within" in caplog.text
