"""Phone calls over Twilio Media Streams against a Twilio stand-in and the scripted local server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
from aiohttp import web

from realtalk.agent import Agent
from realtalk.media.g711 import ulaw_decode, ulaw_encode
from realtalk.media.playout import AudioOutput
from realtalk.media.resample import resample_oneshot
from realtalk.media.wav import read_wav
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.runner import JobContext
from realtalk.server import LocalServer, app
from realtalk.server.engines.scripted import ScriptedTranscriber
from realtalk.session import AgentSession
from realtalk.transports.telephony.phone import PhoneTransport
from realtalk.transports.telephony.serve import run_call
from realtalk.transports.telephony.server import MediaStreamServer, TwilioCredentials
from realtalk.transports.telephony.signature import twilio_signature
from realtalk.transports.telephony.stream_transport import MediaStreamTransport
from tests.conftest import RecordingConnection, make_engines, make_speech_wav
from tests.integration.telephony.twilio_standin import TwilioCall

TOKEN = "test-auth-token-0123456789abcdef"
TIMEOUT_S = 30.0


class PhoneAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You answer the phone.")
        self.digits: list[str] = []

    async def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)


class Phone:
    """The local server, the phone server in front of it, and the sessions of the calls."""

    def __init__(self, server: LocalServer, phone: MediaStreamServer) -> None:
        self.server = server
        self.phone = phone
        self.sessions: list[AgentSession] = []
        self.contexts: list[JobContext] = []

    @property
    def connection(self) -> RecordingConnection:
        return RecordingConnection.made[-1]


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


@pytest.fixture
async def phone(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Phone]:
    wire = getattr(request, "param", "g711")  # "pcm16": a model at 24 kHz, converted at the edge
    RecordingConnection.made = []
    monkeypatch.setattr(app, "Connection", RecordingConnection)
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_BASE"):
        monkeypatch.delenv(name, raising=False)  # REST calls only where a test points them
    server = LocalServer(
        port=0, engines=make_engines(), partial_transcripts=False, speculative_transcripts=False
    )
    await server.start()
    holder: list[Phone] = []

    async def entrypoint(ctx: JobContext) -> None:
        if wire == "slow-start":  # an agent whose model takes a second to connect
            await asyncio.sleep(1.0)
        if wire != "pcm16":
            config = OpenAIRealtimeConfig(
                input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"
            )
        else:
            config = OpenAIRealtimeConfig()
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url, config=config)
        if wire != "pcm16":
            model.audio_output = AudioOutput(8000)  # phone rate: no resampling on the way out
        session = AgentSession(agent=PhoneAgent(), model=model)
        holder[0].sessions.append(session)
        holder[0].contexts.append(ctx)
        await session.start(ctx.transport)

    def make_context(transport: PhoneTransport) -> JobContext:
        return JobContext(transport=transport, base_url=server.base_url, call=transport.call)

    async def on_call(transport: Any) -> None:
        await run_call(entrypoint, make_context, transport)

    credentials = TwilioCredentials(auth_token=TOKEN, from_env=False)
    providers = ("twilio", "telnyx")
    media = MediaStreamServer(on_call, port=0, credentials=credentials, providers=providers)
    await media.start()
    holder.append(Phone(server, media))
    try:
        yield holder[0]
    finally:
        await media.aclose()
        await server.aclose()


def speech_ulaw(text: str, tmp_path: Path, trailing_silence_ms: int = 1000) -> bytes:
    wav = read_wav(make_speech_wav(text, tmp_path / f"{abs(hash(text))}.wav"))
    pcm = np.frombuffer(wav.data, dtype="<i2")
    at8k = np.asarray(resample_oneshot(pcm, wav.sample_rate, 8000), dtype=np.int16)
    silence = np.zeros(8 * trailing_silence_ms, dtype=np.int16)
    return ulaw_encode(np.concatenate([at8k, silence]).tobytes())


def loudness(ulaw: bytes | bytearray) -> float:
    pcm = np.frombuffer(ulaw_decode(bytes(ulaw)), dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(pcm**2))) if pcm.size else 0.0


@pytest.mark.parametrize("phone", ["g711", "pcm16"], indirect=True)
async def test_a_spoken_question_gets_a_spoken_answer_and_dtmf_reaches_the_agent(
    phone: Phone, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="realtalk.transport")  # what -v shows
    call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
    response = await call.webhook()
    assert response.status == 200
    assert call.stream_url == f"ws://127.0.0.1:{phone.phone.port}/twilio/media"
    assert call.parameters["From"] == "+15550001111"
    await call.connect()
    await until(lambda: bool(phone.sessions) and phone.sessions[0].agent_state == "listening")
    session = phone.sessions[0]
    ctx = phone.contexts[0]
    assert ctx.call is not None
    assert (ctx.call.call_id, ctx.call.from_number, ctx.call.to_number) == (
        call.call_sid,
        "+15550001111",
        "+15550002222",
    )
    assert ctx.call.account_id == call.account_sid
    transcripts: list[dict[str, Any]] = []
    dtmf_events: list[dict[str, Any]] = []
    session.on("transcription", transcripts.append)
    session.on("dtmf", dtmf_events.append)

    await call.say(speech_ulaw("What is the weather like today?", tmp_path))
    await until(lambda: len(session.metrics) >= 1 and session.agent_state == "listening")
    await until(lambda: len(call.played.audio) * 1000 // 8000 >= 500)
    await asyncio.sleep(0.3)  # the tail of the answer plays out at the far end
    agent_lines = [t["text"] for t in transcripts if t["role"] == "agent" and t["is_final"]]
    assert agent_lines and agent_lines[-1].startswith("You said: (speech")
    assert loudness(call.played.audio) > 500  # a real tone answer, not silence
    # Every 20 ms of audio went out as µ-law followed by a mark, and every mark came back.
    kinds = [m["event"] for m in call.received]
    assert set(kinds) <= {"media", "mark", "clear"}
    assert kinds.count("media") == kinds.count("mark") > 20
    assert all(len(m["media"]["payload"]) == 216 for m in call.received if m["event"] == "media")

    for digit in "42#":
        await call.press(digit)
    agent = session.agent
    assert isinstance(agent, PhoneAgent)
    await until(lambda: agent.digits == ["4", "2", "#"])
    assert [e["digit"] for e in dtmf_events] == ["4", "2", "#"]
    logged = [r.getMessage() for r in caplog.records if "DTMF" in r.getMessage()]
    assert logged == [f"call {call.call_sid}: DTMF {d}" for d in "42#"]
    await call.hang_up()
    await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)


async def test_barge_in_clears_twilio_and_truncates_at_the_mark_confirmed_position(
    phone: Phone, tmp_path: Path
) -> None:
    call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
    await call.webhook()
    await call.connect()
    await until(lambda: bool(phone.sessions) and phone.sessions[0].agent_state == "listening")
    session = phone.sessions[0]
    transport = session.transport
    assert isinstance(transport, MediaStreamTransport)
    at_flush: list[tuple[int, int, int]] = []

    def snapshot(_payload: Any = None) -> None:
        # Taken in the same call as the barge-in's flush: what the far end had echoed by then
        # (some echoes may still be on the wire) and what the transport had received.
        echoed = call.played.marks_echoed
        at_flush.append((len(echoed), echoed[-1][1] if echoed else 0, transport.marks_confirmed))

    session.model.on("user_speech_started", snapshot)
    # A long answer ("You said: ..." as 250 ms tone words: about 6 s), so the barge-in lands
    # inside it however busy the machine is.
    transcriber = phone.server.engines.transcriber if phone.server.engines else None
    assert isinstance(transcriber, ScriptedTranscriber)
    transcriber.set_next("tell me everything about the weather in Paris and in Rome and Oslo")
    await call.say(speech_ulaw("Please tell me everything about the weather in Paris.", tmp_path))
    await until(lambda: len(call.played.audio) >= 8 * 300)  # 300 ms of the answer heard
    await call.say(speech_ulaw("Stop, stop!", tmp_path, trailing_silence_ms=600))
    await until(lambda: bool(call.played.clears))
    await until(lambda: bool(phone.connection.of("conversation.item.truncate")))
    [truncate] = phone.connection.of("conversation.item.truncate")
    end_ms = truncate["audio_end_ms"]
    echoed_count, echoed_bytes, received_count = next(s for s in at_flush if s[0])
    in_flight = echoed_count - received_count
    echoed_ms = echoed_bytes / 8  # only this answer was played: the far end's position is its
    heard_ms = call.played.clears[0] / 8
    print(
        f"truncate {end_ms} ms; the far end had confirmed {echoed_ms:.0f} ms at the barge-in "
        f"({in_flight} mark echoes still on the wire), played {heard_ms:.0f} ms when the clear "
        f"arrived; {call.played.sent_media_bytes / 8:.0f} ms sent in all"
    )
    # Exactly the last mark the transport had received: every mark still on the wire is 20 ms.
    assert echoed_ms - end_ms == 20 * in_flight
    if in_flight <= 1:  # the usual case: within one mark of what the far end confirmed
        assert 0 <= echoed_ms - end_ms <= 20
    assert end_ms <= heard_ms  # never more than the caller heard
    assert end_ms in [pos / 8 for _, pos in call.played.marks_echoed]  # a confirmed position
    assert not phone.connection.of("error")  # the server kept the cut item, refused nothing
    await call.hang_up()
    await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)


async def test_a_bad_or_missing_signature_is_refused(phone: Phone) -> None:
    forged = TwilioCall(phone.phone.base_url, auth_token="not-the-token")
    assert (await forged.webhook()).status == 403
    unsigned = TwilioCall(phone.phone.base_url, sign=False)
    assert (await unsigned.webhook()).status == 403
    # The WebSocket upgrade is checked too.
    good = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
    assert (await good.webhook()).status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await good.connect(signature="AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
    assert refused.value.status == 403
    for c in (forged, unsigned, good):
        await c.close()
    assert not phone.sessions


async def test_stop_ends_the_session_cleanly_and_a_second_call_works(phone: Phone) -> None:
    for n in range(2):
        call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
        await call.webhook()
        await call.connect()
        await until(lambda n=n: len(phone.sessions) > n)
        session = phone.sessions[n]
        await session.wait_started()
        await call.hang_up()
        await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)
        assert session.close_reason == "the caller hung up"
        await until(lambda: not phone.phone.calls)


async def test_garbage_and_floods_on_one_call_lose_nothing_for_another(
    phone: Phone, tmp_path: Path
) -> None:
    noisy = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
    await noisy.webhook()
    await noisy.connect()
    await until(lambda: bool(phone.sessions) and phone.sessions[0].agent_state == "listening")
    noisy_session = phone.sessions[0]
    good = TwilioCall(phone.phone.base_url, auth_token=TOKEN, from_number="+15559990000")
    await good.webhook()
    await good.connect()
    await until(lambda: len(phone.sessions) == 2 and phone.sessions[1].agent_state == "listening")
    good_session = phone.sessions[1]

    garbage = [
        "not json",
        "[]",
        json.dumps({"event": 5}),
        json.dumps({"event": "media"}),
        json.dumps({"event": "media", "media": {"payload": "%%%not base64"}}),
        json.dumps({"event": "media", "media": {"payload": "A" * 100_000}}),
        json.dumps({"event": "dtmf", "dtmf": {"digit": "xyz"}}),
        json.dumps({"event": "start", "start": {"mediaFormat": {"encoding": "audio/opus"}}}),
        json.dumps({"event": "mark", "mark": {"name": "not-a-number"}}),
        json.dumps({"event": "mystery"}),
        "[" * 100_000,
    ]
    for text in garbage:
        await noisy.send(text)
    assert noisy._ws is not None
    await noisy._ws.send_bytes(b"\x00\x01binary")
    await until(lambda: phone.phone.bad_messages >= len(garbage))
    # A flood: 2,000 media messages at once (40 s of audio in no time), while the other
    # caller asks a question.
    flood = json.dumps(
        {
            "event": "media",
            "streamSid": noisy.stream_sid,
            "media": {"track": "inbound", "chunk": "1", "timestamp": "0", "payload": "/" * 216},
        }
    )
    flooding = asyncio.gather(*(noisy.send(flood) for _ in range(2000)))
    await good.say(speech_ulaw("Are you still there?", tmp_path))
    await flooding
    await until(lambda: len(good_session.metrics) >= 1)
    transport = noisy_session.transport
    assert isinstance(transport, MediaStreamTransport)
    await until(lambda: transport.media_dropped > 0)
    assert not noisy_session.closed and not good_session.closed
    await noisy.hang_up()
    await good.hang_up()
    await asyncio.wait_for(good_session.wait_closed(), TIMEOUT_S)


async def test_a_start_with_a_format_we_cannot_carry_closes_the_stream_saying_why(
    phone: Phone,
) -> None:
    async with aiohttp.ClientSession() as http:
        call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
        await call.webhook()
        signature = twilio_signature(TOKEN, call.stream_url)
        ws = await http.ws_connect(call.stream_url, headers={"X-Twilio-Signature": signature})
        start = {
            "event": "start",
            "sequenceNumber": "1",
            "start": {
                "streamSid": "MZ1",
                "callSid": "CA1",
                "mediaFormat": {"encoding": "audio/x-l16", "sampleRate": 16000, "channels": 1},
            },
            "streamSid": "MZ1",
        }
        await ws.send_str(json.dumps(start))
        message = await ws.receive(timeout=TIMEOUT_S)
        assert message.type == aiohttp.WSMsgType.CLOSE
        assert ws.close_code == 1003
        assert "unsupported media encoding" in (message.extra or "")
        await call.close()
    assert not phone.sessions


async def test_end_call_closes_the_stream_and_completes_the_call_over_rest(
    phone: Phone,
) -> None:
    completed: list[tuple[str, dict[str, str], str | None]] = []

    async def calls(request: web.Request) -> web.Response:
        form = await request.post()
        completed.append(
            (
                request.path,
                {k: str(v) for k, v in form.items()},
                request.headers.get("Authorization"),
            )
        )
        return web.json_response({"status": "completed"})

    rest = web.Application()
    rest.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", calls)
    runner = web.AppRunner(rest)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    phone.phone.credentials = TwilioCredentials(
        auth_token=TOKEN, account_sid="ACignored", api_base=f"http://127.0.0.1:{port}"
    )
    try:
        call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
        await call.webhook()
        await call.connect()
        await until(lambda: bool(phone.sessions))
        session = phone.sessions[0]
        await session.wait_started()
        transport = session.transport
        assert isinstance(transport, PhoneTransport)
        await transport.end_call()
        await asyncio.wait_for(call.closed.wait(), TIMEOUT_S)  # the stream was closed
        assert session.closed
        [(path, form, auth)] = completed
        assert path == f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.call_sid}.json"
        assert form == {"Status": "completed"}
        assert auth is not None and auth.startswith("Basic ")
        await call.close()
    finally:
        await runner.cleanup()


async def test_a_telnyx_stream_is_served_by_the_same_transport(
    phone: Phone, tmp_path: Path
) -> None:
    """Telnyx's media streaming, its own message names, through the same server and transport."""
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"ws://127.0.0.1:{phone.phone.port}/telnyx/media")
        await ws.send_str(json.dumps({"event": "connected", "version": "1.0.0"}))
        start = {
            "event": "start",
            "sequence_number": "1",
            "start": {
                "user_id": "u-1",
                "call_control_id": "v3:telnyx-call",
                "from": "+15550003333",
                "to": "+15550004444",
                "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
            },
            "stream_id": "tx-1",
        }
        await ws.send_str(json.dumps(start))
        await until(lambda: bool(phone.sessions) and phone.sessions[0].agent_state == "listening")
        session = phone.sessions[0]
        assert phone.contexts[0].call is not None
        assert phone.contexts[0].call.provider == "telnyx"
        assert phone.contexts[0].call.from_number == "+15550003333"
        received: list[dict[str, Any]] = []

        async def receive() -> None:
            async for message in ws:
                event = json.loads(message.data)
                received.append(event)
                if event["event"] == "mark":  # echo at once: playout is not modelled here
                    await ws.send_str(json.dumps({"event": "mark", "stream_id": "tx-1", **event}))

        reader = asyncio.ensure_future(receive())
        audio = speech_ulaw("Hello there", tmp_path)
        for n, offset in enumerate(range(0, len(audio), 160)):
            chunk = base64.b64encode(audio[offset : offset + 160]).decode()
            media = {
                "track": "inbound",
                "chunk": str(n),
                "timestamp": str(n * 20),
                "payload": chunk,
            }
            await ws.send_str(json.dumps({"event": "media", "stream_id": "tx-1", "media": media}))
            await asyncio.sleep(0.02)
        await until(lambda: len(session.metrics) >= 1)
        await until(lambda: any(e["event"] == "media" for e in received))
        assert all("streamSid" not in e for e in received)  # Telnyx's shape, not Twilio's
        await ws.send_str(json.dumps({"event": "stop", "stream_id": "tx-1", "stop": {}}))
        await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)
        reader.cancel()
        await ws.close()


@pytest.mark.parametrize("phone", ["slow-start"], indirect=True)
async def test_what_the_caller_says_while_the_agent_starts_is_heard(
    phone: Phone, tmp_path: Path
) -> None:
    call = TwilioCall(phone.phone.base_url, auth_token=TOKEN)
    await call.webhook()
    await call.connect()
    question = speech_ulaw("What is the weather like today?", tmp_path)
    spoken_s = (len(question) - 8000) / 8000  # without the trailing second of silence
    speaking = asyncio.ensure_future(call.say(question))  # the model is still connecting
    await until(lambda: bool(phone.sessions))
    session = phone.sessions[0]
    transcripts: list[dict[str, Any]] = []
    session.on("transcription", transcripts.append)
    await speaking
    await until(lambda: any(t["role"] == "user" and t["is_final"] for t in transcripts))
    user = next(t["text"] for t in transcripts if t["role"] == "user" and t["is_final"])
    heard_s = float(user.split()[1])  # the scripted transcriber says "(speech 1.6 s)"
    print(f"spoken {spoken_s:.2f} s, heard {heard_s:.2f} s")
    assert heard_s >= spoken_s - 0.3  # the start, said before the model connected, is there
    transport = session.transport
    assert isinstance(transport, MediaStreamTransport)
    assert transport.stats["dropped_in"] == 0
    await call.hang_up()
