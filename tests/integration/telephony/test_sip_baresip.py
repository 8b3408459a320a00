"""The SIP endpoint called by Debian's baresip: a spoken question gets a recorded spoken answer,
DTMF arrives, hang-up from either side, a malformed INVITE gets 400 and the endpoint serves on."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from realtalk.agent import Agent
from realtalk.media.playout import AudioOutput
from realtalk.media.wav import read_wav
from realtalk.plugins.openai import OpenAIRealtime, OpenAIRealtimeConfig
from realtalk.server import LocalServer
from realtalk.session import AgentSession
from realtalk.transports.telephony.sip.endpoint import SipCallTransport, SipServer
from tests.conftest import make_engines, make_speech_wav
from tests.integration.telephony.baresip import Baresip

pytestmark = pytest.mark.slow

TIMEOUT_S = 30.0


class PhoneAgent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="You answer the phone.")
        self.digits: list[str] = []

    async def on_dtmf(self, digit: str) -> None:
        self.digits.append(digit)


class Rig:
    def __init__(self) -> None:
        self.sessions: list[AgentSession] = []
        self.transports: list[SipCallTransport] = []
        self.transcripts: list[dict[str, Any]] = []


async def until(predicate: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


@pytest.fixture
async def sip() -> AsyncIterator[tuple[SipServer, Rig]]:
    server = LocalServer(
        port=0, engines=make_engines(), partial_transcripts=False, speculative_transcripts=False
    )
    await server.start()
    rig = Rig()

    async def on_call(transport: SipCallTransport) -> None:
        config = OpenAIRealtimeConfig(
            input_audio_format="g711_ulaw", output_audio_format="g711_ulaw"
        )
        model = OpenAIRealtime(model="gpt-realtime", base_url=server.base_url, config=config)
        model.audio_output = AudioOutput(8000)
        session = AgentSession(agent=PhoneAgent(), model=model)
        session.on("transcription", rig.transcripts.append)
        rig.sessions.append(session)
        rig.transports.append(transport)
        await session.start(transport)
        await session.wait_closed()

    endpoint = SipServer(on_call, host="127.0.0.1", port=0)
    await endpoint.start()
    try:
        yield endpoint, rig
    finally:
        await endpoint.aclose()
        await server.aclose()


def question_wav(tmp_path: Path) -> Path:
    """Spoken question, then silence long enough that baresip's file source outlasts the call."""
    spoken = make_speech_wav("What is the weather like today?", tmp_path / "q22k.wav")
    out = tmp_path / "question.wav"
    subprocess.run(
        ["sox", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(out), "pad", "0.3", "20"],
        check=True,
    )
    return out


def raw_sip(port: int, data: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(10)
        sock.sendto(data, ("127.0.0.1", port))
        return sock.recv(65536)


MALFORMED_INVITE = (
    b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKbad\r\n"
    b"From: <sip:x@127.0.0.1>;tag=1\r\n"
    b"To: <sip:agent@127.0.0.1>\r\n"
    b"Call-ID: malformed-1\r\n"
    b"CSeq: one INVITE\r\n"
    b"this line is not a header\r\n"
    b"\r\n"
)


async def test_baresip_calls_hears_an_answer_sends_dtmf_and_hangs_up(
    sip: tuple[SipServer, Rig], tmp_path: Path
) -> None:
    endpoint, rig = sip
    reply = await asyncio.to_thread(raw_sip, endpoint.port, MALFORMED_INVITE)
    assert reply.startswith(b"SIP/2.0 400 "), reply[:80]

    phone = Baresip(tmp_path / "baresip", question_wav(tmp_path))
    await phone.start()
    try:
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port}")
        await until(lambda: bool(rig.sessions))
        session = rig.sessions[0]
        call = rig.transports[0].call
        assert (call.provider, call.from_number, call.to_number) == ("sip", "caller", "agent")
        # The question is heard and answered.
        await until(lambda: any(t["role"] == "agent" and t["is_final"] for t in rig.transcripts))
        answer = next(t["text"] for t in rig.transcripts if t["role"] == "agent" and t["is_final"])
        assert answer.startswith("You said: (speech")
        await until(lambda: len(session.metrics) >= 1 and session.agent_state == "listening")
        # A key press (RFC 4733) reaches the agent.
        await phone.command("sndcode", "7")
        agent = session.agent
        assert isinstance(agent, PhoneAgent)
        await until(lambda: agent.digits == ["7"])
        # The caller hangs up: BYE ends the session.
        await phone.command("hangup")
        await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)
        assert session.close_reason == "the caller hung up"
        await until(lambda: not endpoint.calls)

        # A second call; this time the agent hangs up (our BYE).
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port}")
        await until(lambda: len(rig.sessions) == 2)
        second = rig.sessions[1]
        await second.wait_started()
        await rig.transports[1].end_call()
        await until(lambda: "session closed" in phone.output())  # baresip got our BYE
    finally:
        await phone.stop()
    # What baresip heard of the first call: the spoken (tone) answer.
    [first, *_] = phone.heard()
    heard = read_wav(first)
    pcm = np.frombuffer(heard.data, dtype="<i2").astype(np.float64)
    loud_ms = np.count_nonzero(np.abs(pcm) > 1000) / heard.sample_rate * 1000
    assert loud_ms > 300, f"baresip heard {heard.duration_ms:.0f} ms, {loud_ms:.0f} ms loud"
    print(f"baresip recorded {heard.duration_ms:.0f} ms of the answer ({loud_ms:.0f} ms loud)")
    # The endpoint kept serving after the malformed INVITE and both calls.
    options = (
        b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKopt\r\n"
        b"From: <sip:x@127.0.0.1>;tag=2\r\nTo: <sip:agent@127.0.0.1>\r\n"
        b"Call-ID: options-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    assert (await asyncio.to_thread(raw_sip, endpoint.port, options)).startswith(b"SIP/2.0 200 ")


@pytest.mark.parametrize(("password", "answered"), [("s3cret", True), ("guess", False)])
async def test_digest_auth_lets_the_right_password_in(
    tmp_path: Path, password: str, answered: bool
) -> None:
    calls: list[SipCallTransport] = []

    async def on_call(transport: SipCallTransport) -> None:
        calls.append(transport)
        await transport.end_call("the test is done")

    endpoint = SipServer(on_call, host="127.0.0.1", port=0, auth=("alice", "s3cret"))
    await endpoint.start()
    account = f"<sip:alice@127.0.0.1>;auth_pass={password};regint=0"
    phone = Baresip(tmp_path / "baresip", question_wav(tmp_path), account=account)
    await phone.start()
    try:
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port}")
        if answered:
            await until(lambda: bool(calls))
            assert calls[0].call.from_number == "alice"
        else:
            await until(
                lambda: "401 Unauthorized" in phone.output() or "terminated" in phone.output()
            )
            await asyncio.sleep(1.0)
            assert not calls
            print(phone.output()[-600:])
    finally:
        await phone.stop()
        await endpoint.aclose()


async def test_baresip_calls_over_tcp(sip: tuple[SipServer, Rig], tmp_path: Path) -> None:
    endpoint, rig = sip
    phone = Baresip(tmp_path / "baresip", question_wav(tmp_path))
    await phone.start()
    try:
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port};transport=tcp")
        await until(lambda: bool(rig.sessions))
        session = rig.sessions[0]
        assert endpoint.tcp_connections == 1  # the INVITE came over TCP
        await until(lambda: any(t["role"] == "agent" and t["is_final"] for t in rig.transcripts))
        await phone.command("hangup")
        await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)
        assert session.close_reason == "the caller hung up"
    finally:
        await phone.stop()


async def test_baresip_cancels_while_the_agent_is_starting(tmp_path: Path) -> None:
    calls: list[SipCallTransport] = []

    async def on_call(transport: SipCallTransport) -> None:
        calls.append(transport)  # an agent that never gets ready: the call keeps ringing
        await transport.wait_ended()

    endpoint = SipServer(on_call, host="127.0.0.1", port=0)
    await endpoint.start()
    phone = Baresip(tmp_path / "baresip", question_wav(tmp_path))
    await phone.start()
    try:
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port}")
        await until(lambda: bool(calls) and "180 Ringing" in phone.output())
        await phone.command("hangup")  # before the answer: a CANCEL
        await asyncio.wait_for(calls[0].wait_ended(), TIMEOUT_S)  # CallEnded came from it
        assert not calls[0].answered  # our CANCEL handling ended it (487: the unit tests)
        assert not endpoint.core.dialogs
    finally:
        await phone.stop()
        await endpoint.aclose()


async def test_baresip_puts_the_call_on_hold_and_resumes_it(
    sip: tuple[SipServer, Rig], tmp_path: Path
) -> None:
    endpoint, rig = sip
    phone = Baresip(tmp_path / "baresip", question_wav(tmp_path))
    await phone.start()
    try:
        await phone.command("dial", f"sip:agent@127.0.0.1:{endpoint.port}")
        await until(lambda: bool(rig.sessions))
        session = rig.sessions[0]
        await session.wait_started()
        rtp = rig.transports[0].rtp
        await until(lambda: rtp.stats["received"] > 10)
        await phone.command("hold")  # a re-INVITE with a=sendonly
        await until(lambda: rtp.offer.direction in ("sendonly", "inactive"))
        sent = rtp.stats["sent"]
        await asyncio.sleep(0.5)
        assert rtp.stats["sent"] == sent  # on hold: we send nothing
        await phone.command("resume")  # a re-INVITE with a=sendrecv
        await until(lambda: rtp.offer.direction == "sendrecv")
        await until(lambda: rtp.stats["sent"] > sent)
        assert not session.closed
        await phone.command("hangup")
        await asyncio.wait_for(session.wait_closed(), TIMEOUT_S)
    finally:
        await phone.stop()
