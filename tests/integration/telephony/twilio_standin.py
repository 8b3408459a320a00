"""A stand-in for Twilio's side of a call, written from Twilio's documentation.

- The voice webhook: ``POST`` with Twilio's form fields (AccountSid, CallSid, From, To,
  CallStatus, Direction, ApiVersion), signed with ``X-Twilio-Signature``; the TwiML answer's
  ``<Connect><Stream url>`` and its ``<Parameter>``s are what the stream then carries.
- The media WebSocket, opened with a signed upgrade: ``connected``, ``start`` (accountSid,
  streamSid, callSid, tracks, customParameters, mediaFormat), ``media`` (track, chunk, timestamp,
  base64 µ-law 8 kHz, 20 ms), ``dtmf``, ``stop`` — field for field as in "Media Streams -
  WebSocket Messages", sequence numbers as strings.
- Playout: outbound ``media`` is queued and played in real time (160 bytes per 20 ms tick);
  a ``mark`` is echoed when the audio sent before it has been played; ``clear`` empties the
  queue and echoes the pending marks at once (as Twilio does).
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
import xml.etree.ElementTree as ET
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from realtalk.transports.telephony.signature import twilio_signature

FRAME_BYTES = 160  # 20 ms of 8 kHz µ-law
TICK_S = 0.020


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


@dataclass
class Played:
    """What the far end heard: µ-law bytes in play order, and the marks echoed."""

    audio: bytearray = field(default_factory=bytearray)
    marks_echoed: list[tuple[str, int]] = field(default_factory=list)  # (name, bytes played)
    clears: list[int] = field(default_factory=list)  # bytes played when each clear arrived
    confirmed_before_clear: list[int] = field(default_factory=list)
    sent_media_bytes: int = 0


class TwilioCall:
    """One inbound call from ``from_number`` to ``to_number`` against ``base_url``."""

    def __init__(
        self,
        base_url: str,
        *,
        auth_token: str = "",
        from_number: str = "+15550001111",
        to_number: str = "+15550002222",
        sign: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_token = auth_token
        self.from_number = from_number
        self.to_number = to_number
        self.sign = sign
        self.account_sid = sid("AC")
        self.call_sid = sid("CA")
        self.stream_sid = sid("MZ")
        self.played = Played()
        self.stream_url = ""
        self.parameters: dict[str, str] = {}
        self.received: list[dict[str, Any]] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._seq = 0
        self._chunk = 0
        self._t0 = 0.0
        self._queue: deque[tuple[str, bytes | str]] = deque()  # ("audio", bytes)|("mark", name)
        self._tasks: list[asyncio.Task[Any]] = []
        self.closed = asyncio.Event()

    # -- webhook -----------------------------------------------------------------------------

    def _form(self) -> dict[str, str]:
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": "2010-04-01",
            "CallSid": self.call_sid,
            "CallStatus": "ringing",
            "Called": self.to_number,
            "Caller": self.from_number,
            "Direction": "inbound",
            "From": self.from_number,
            "To": self.to_number,
        }

    async def webhook(self) -> aiohttp.ClientResponse:
        self._http = self._http or aiohttp.ClientSession()
        url = self.base_url + "/twilio/voice"
        form = self._form()
        headers = {}
        if self.sign:
            headers["X-Twilio-Signature"] = twilio_signature(self.auth_token, url, form)
        response = await self._http.post(url, data=form, headers=headers)
        if response.status == 200:
            twiml = ET.fromstring(await response.text())
            stream = twiml.find("./Connect/Stream")
            assert stream is not None, "TwiML has no <Connect><Stream>"
            self.stream_url = stream.attrib["url"]
            self.parameters = {p.attrib["name"]: p.attrib["value"] for p in stream}
        return response

    # -- media stream ------------------------------------------------------------------------

    async def connect(self, *, signature: str | None = None) -> None:
        self._http = self._http or aiohttp.ClientSession()
        headers = {}
        if self.sign:
            headers["X-Twilio-Signature"] = signature or twilio_signature(
                self.auth_token, self.stream_url
            )
        self._ws = await self._http.ws_connect(self.stream_url, headers=headers)
        await self.send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self.send(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            }
        )
        self._t0 = time.monotonic()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive()), loop.create_task(self._playout())]

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    async def send(self, message: dict[str, Any] | str) -> None:
        assert self._ws is not None
        await self._ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def say(self, ulaw: bytes) -> None:
        """Send caller audio as Twilio does: 20 ms media messages in real time."""
        start = time.monotonic()
        for n, offset in enumerate(range(0, len(ulaw), FRAME_BYTES)):
            self._chunk += 1
            await self.send(
                {
                    "event": "media",
                    "sequenceNumber": self._next_seq(),
                    "media": {
                        "track": "inbound",
                        "chunk": str(self._chunk),
                        "timestamp": str(int((time.monotonic() - self._t0) * 1000)),
                        "payload": base64.b64encode(ulaw[offset : offset + FRAME_BYTES]).decode(),
                    },
                    "streamSid": self.stream_sid,
                }
            )
            delay = start + (n + 1) * TICK_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def press(self, digit: str) -> None:
        await self.send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": self._next_seq(),
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    async def hang_up(self) -> None:
        await self.send(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                "streamSid": self.stream_sid,
            }
        )
        await self.close()

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()

    # -- what Twilio does with what we send ----------------------------------------------------

    async def _receive(self) -> None:
        assert self._ws is not None
        async for message in self._ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            event = json.loads(message.data)
            self.received.append(event)
            kind = event.get("event")
            assert event.get("streamSid") == self.stream_sid, event
            if kind == "media":
                audio = base64.b64decode(event["media"]["payload"])
                self.played.sent_media_bytes += len(audio)
                self._queue.append(("audio", audio))
            elif kind == "mark":
                self._queue.append(("mark", event["mark"]["name"]))
            elif kind == "clear":
                played = len(self.played.audio)
                self.played.clears.append(played)
                confirmed = [n for _, n in self.played.marks_echoed]
                self.played.confirmed_before_clear.append(confirmed[-1] if confirmed else 0)
                pending = [v for k, v in self._queue if k == "mark"]
                self._queue.clear()
                for name in pending:
                    await self._echo(str(name))
            else:
                raise AssertionError(f"Twilio does not accept {kind!r}")
        self.closed.set()

    async def _playout(self) -> None:
        start = time.monotonic()
        tick = 0
        while True:
            tick += 1
            delay = start + tick * TICK_S - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            # The audio of the last tick has finished: echo the marks it reached, then play the
            # next 20 ms (a mark met inside it is echoed at the next tick).
            while self._queue and self._queue[0][0] == "mark":
                await self._echo(str(self._queue.popleft()[1]))
            need = FRAME_BYTES
            while self._queue and need > 0 and self._queue[0][0] == "audio":
                value = self._queue[0][1]
                assert isinstance(value, bytes)
                take = value[:need]
                self.played.audio += take
                need -= len(take)
                if len(take) == len(value):
                    self._queue.popleft()
                else:
                    self._queue[0] = ("audio", value[len(take) :])

    async def _echo(self, name: str) -> None:
        self.played.marks_echoed.append((name, len(self.played.audio)))
        await self.send(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )
