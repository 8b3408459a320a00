"""What every phone transport shares: the call's identity, G.711 at 8 kHz both ways, DTMF.

A phone call carries 8 kHz G.711 in 20 ms packets. Caller audio is decoded (a table lookup)
into 8 kHz PCM frames and pushed to the session as they are: a model configured for
``g711_ulaw``/``audio/pcmu`` at 8 kHz then re-encodes it losslessly with no resampling at all,
and any other model resamples once at its edge. The agent's voice is taken from the session's
AudioOutput as 20 ms frames at playback speed, resampled to 8 kHz only when the output runs at
another rate (an AudioOutput at 8 kHz, as the phone example sets up, needs none) and encoded.

Caller audio that arrives before the session is attached (the model still connecting) is kept,
the latest ``EARLY_AUDIO_MS``, and pushed first once it is: what the caller says on pick-up is
heard. Subclasses send the encoded frames (a provider's WebSocket, RTP) and report hang-ups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from realtalk.media.frame import AudioFrame
from realtalk.media.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from realtalk.media.resample import StreamResampler
from realtalk.transports.base import Transport, agent_audio

if TYPE_CHECKING:
    from realtalk.media.playout import AudioOutput
    from realtalk.session import AgentSession

__all__ = ["PHONE_RATE", "CallInfo", "PhoneTransport", "decode_g711", "encode_g711"]

logger = logging.getLogger("realtalk.transport")

PHONE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = PHONE_RATE * FRAME_MS // 1000
#: Caller audio kept while the agent's model connects (older audio is dropped and counted).
EARLY_AUDIO_MS = 2000


@dataclass(frozen=True, slots=True)
class CallInfo:
    """Who called whom, as the provider or the SIP INVITE told us (``ctx.call``)."""

    provider: str  # "twilio", "telnyx", "plivo", "sip"
    call_id: str | None = None  # Twilio CallSid, Telnyx call_control_id, SIP Call-ID
    from_number: str | None = None
    to_number: str | None = None
    stream_id: str | None = None
    account_id: str | None = None  # Twilio AccountSid (for ending the call over REST)
    #: Twilio ``<Parameter>``s of the ``<Stream>``; SIP: the INVITE's X- headers.
    parameters: dict[str, str] = field(default_factory=dict)
    encoding: str = "audio/pcmu"


def decode_g711(encoding: str, payload: bytes) -> bytes:
    return (ulaw_decode if encoding == "audio/pcmu" else alaw_decode)(payload)


def encode_g711(encoding: str, pcm: bytes) -> bytes:
    return (ulaw_encode if encoding == "audio/pcmu" else alaw_encode)(pcm)


class PhoneTransport(Transport):
    """A call's media for one AgentSession; see the module docstring."""

    #: Send silence while the agent is quiet (RTP: a PBX may hang up a call with no packets);
    #: a media stream sends only speech, the provider fills the gaps.
    continuous = False

    def __init__(self, call: CallInfo) -> None:
        self.call = call
        self.session: AgentSession | None = None
        #: Counters for tests and health checks.
        self.stats = {"frames_in": 0, "frames_out": 0, "dropped_in": 0, "dtmf": 0}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._ended = asyncio.Event()
        self._early: deque[bytes] = deque(maxlen=EARLY_AUDIO_MS // FRAME_MS)

    # -- Transport -------------------------------------------------------------------------------

    async def attach(self, session: AgentSession) -> None:
        if self.session is not None:
            raise RuntimeError("a phone transport serves one session")
        if self._closing:
            raise ConnectionError(f"call {self.call.call_id} ended before the agent was ready")
        # What the caller said while the model connected goes first, in order; audio that
        # arrives meanwhile joins the backlog, so nothing is reordered.
        while self._early:
            await self._push(session, self._early.popleft())
        self.session = session
        _describe_audio_path(session, self.call)
        self._prepare_output(session)
        self._spawn(self._send_agent_audio(session), "phone-out")

    async def aclose(self) -> None:
        if self._closing:
            return
        self._closing = True
        current = asyncio.current_task()
        pending = [t for t in self._tasks if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._hang_up()
        self._ended.set()

    # -- for the server that owns the call -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closing

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def end_call(self, reason: str = "the agent ended the call") -> None:
        """Hang up: stop the media, end the call at the provider, close the session."""
        logger.info("call %s: %s", self.call.call_id, reason)
        session = self.session
        if session is not None:
            await session.close(reason=reason)
        else:
            await self.aclose()

    # -- caller → agent --------------------------------------------------------------------------

    async def deliver_audio(self, payload: bytes) -> None:
        """Caller audio in the call's G.711 encoding. Until the session is attached the latest
        ``EARLY_AUDIO_MS`` are kept (the caller may speak while the model connects)."""
        if self._closing or not payload:
            self.stats["dropped_in"] += 1
            return
        session = self.session
        if session is None:
            if len(self._early) == self._early.maxlen:
                self.stats["dropped_in"] += 1
            self._early.append(payload)
            return
        await self._push(session, payload)

    async def _push(self, session: AgentSession, payload: bytes) -> None:
        self.stats["frames_in"] += 1
        pcm = decode_g711(self.call.encoding, payload)
        await session.push_audio(AudioFrame(pcm, PHONE_RATE, 1))

    def deliver_dtmf(self, digit: str) -> None:
        """A key the caller pressed: a ``dtmf`` session event and the agent's ``on_dtmf``."""
        self.stats["dtmf"] += 1
        logger.info("call %s: DTMF %s", self.call.call_id, digit)
        session = self.session
        if session is None or self._closing:
            return
        session.emit("dtmf", {"digit": digit})
        self._spawn(self._run_on_dtmf(session, digit), "on-dtmf")

    async def _run_on_dtmf(self, session: AgentSession, digit: str) -> None:
        try:
            await session.agent.on_dtmf(digit)
        except Exception:
            logger.exception("%s.on_dtmf(%r) failed", type(session.agent).__name__, digit)

    # -- agent → caller --------------------------------------------------------------------------

    def _prepare_output(self, session: AgentSession) -> None:
        """Hook before the first frame is taken (a transport with remote playout confirms)."""

    async def _send_agent_audio(self, session: AgentSession) -> None:
        output = session.audio_output
        resampler = (
            StreamResampler(output.sample_rate, PHONE_RATE, quality="live")
            if output.sample_rate != PHONE_RATE
            else None
        )
        pending = bytearray()
        frame_bytes = 2 * FRAME_SAMPLES
        silence = encode_g711(self.call.encoding, bytes(frame_bytes))
        async for frame in self._frames(output):
            if frame is None:  # nothing to say: a continuous stream carries silence
                await self._send_frame(silence, output.playout_mark())
                continue
            if resampler is not None:
                pending += resampler.push(frame).tobytes()
            else:
                pending += frame.data
            while len(pending) >= frame_bytes:
                pcm = bytes(pending[:frame_bytes])
                del pending[:frame_bytes]
                self.stats["frames_out"] += 1
                await self._send_frame(encode_g711(self.call.encoding, pcm), output.playout_mark())

    async def _frames(self, output: AudioOutput) -> AsyncIterator[AudioFrame | None]:
        """The agent's frames at playback speed; with ``continuous``, None for each silent one."""
        if not self.continuous:
            async for frame in agent_audio(output, realtime=True):
                yield frame
            return
        silence = output.silence_frame
        while True:
            frame = await output.next_frame()
            yield None if frame is silence else frame

    @abstractmethod
    async def _send_frame(self, payload: bytes, mark: int) -> None:
        """Send 20 ms of encoded agent audio; ``mark`` is the AudioOutput's position after it."""

    @abstractmethod
    async def _hang_up(self) -> None:
        """End the call's media (and the call) at the far end; called once, from aclose."""

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _describe_audio_path(session: AgentSession, call: CallInfo) -> None:
    """Say once per call whether the audio is resampled, and how to avoid it."""
    config = getattr(session.model, "config", None)
    wire = getattr(config, "input_format", None)
    wire_type = getattr(wire, "type", None)
    out_rate = session.audio_output.sample_rate
    if wire_type in ("audio/pcmu", "audio/pcma") and out_rate == PHONE_RATE:
        logger.info("call %s: G.711 at 8 kHz end to end, nothing resampled", call.call_id)
        return
    logger.info(
        "call %s: the model takes %s and the agent's voice plays at %d Hz: audio is resampled "
        "(configure input/output_audio_format='g711_ulaw' and AudioOutput(8000) to avoid it)",
        call.call_id,
        wire_type or "its own format",
        out_rate,
    )
