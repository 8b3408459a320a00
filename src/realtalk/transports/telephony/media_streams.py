"""Media-stream WebSocket protocols of phone providers, sans I/O: text frames in, events out.

Twilio Media Streams, Telnyx media streaming and Plivo audio streams all carry a call as JSON
over a WebSocket: base64 8 kHz G.711 in 20 ms chunks, a "start" with the call's identity, DTMF
digits, and marks that the provider echoes once the audio sent before them has been played. They
differ in names only, so one small interface (:class:`MediaStreamSerializer`) turns each into
the same :class:`StreamEvent` and builds the three messages we send (media, mark, clear).

Bad input never raises past :meth:`MediaStreamSerializer.parse` except as :class:`StreamError`,
whose message says what is wrong; the transport answers it with a log line and a drop.
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MAX_MESSAGE_CHARS",
    "SERIALIZERS",
    "MediaStreamSerializer",
    "PlivoSerializer",
    "StreamError",
    "StreamEvent",
    "TelnyxSerializer",
    "TwilioSerializer",
]

#: Longest text frame accepted. A 20 ms µ-law chunk is ~300 characters; a start with custom
#: parameters a few kB. Anything far beyond is not a phone provider talking.
MAX_MESSAGE_CHARS = 64 * 1024
#: Longest audio payload accepted in one media message (1 s of 8 kHz G.711).
MAX_PAYLOAD_BYTES = 8000
_DTMF_DIGITS = frozenset("0123456789*#ABCDabcd")

EventKind = Literal["connected", "start", "media", "dtmf", "mark", "stop"]


class StreamError(ValueError):
    """A message that is not the provider's protocol; the text says why.

    ``event`` is the message's ``event`` when it had one (a bad ``start`` ends the call).
    """

    event: str | None = None


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One message from the provider, in the terms the transport needs."""

    kind: EventKind
    stream_id: str | None = None
    #: ``start``: the call's identity (from, to, call id, the custom parameters).
    call_id: str | None = None
    account_id: str | None = None
    from_number: str | None = None
    to_number: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    #: ``start``: the audio format, as a G.711 name ("audio/pcmu" or "audio/pcma") and rate.
    encoding: str | None = None
    sample_rate: int | None = None
    #: ``media``: the encoded audio bytes.
    payload: bytes = b""
    #: ``dtmf``: the digit; ``mark``: the name we gave.
    digit: str | None = None
    name: str | None = None


class MediaStreamSerializer(ABC):
    """One provider's media-stream protocol: parse what it sends, build what we send."""

    #: Provider name, as in ``--transport`` help and logs.
    provider: str = ""

    def __init__(self) -> None:
        self.stream_id: str | None = None

    def parse(self, text: str | bytes) -> StreamEvent:
        """Decode one WebSocket message; raise :class:`StreamError` for anything else."""
        if isinstance(text, bytes):
            raise StreamError(f"{self.provider} sends text frames; got a binary frame")
        if len(text) > MAX_MESSAGE_CHARS:
            raise StreamError(f"message longer than {MAX_MESSAGE_CHARS} characters")
        try:
            message = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            raise StreamError("message is not JSON") from None
        if not isinstance(message, dict) or not isinstance(message.get("event"), str):
            raise StreamError('message must be a JSON object with a string "event"')
        try:
            event = self._parse(message)
        except StreamError as exc:
            exc.event = message["event"]
            raise
        if event.kind == "start" and event.stream_id:
            self.stream_id = event.stream_id
        return event

    @abstractmethod
    def _parse(self, message: dict[str, Any]) -> StreamEvent: ...

    @abstractmethod
    def media(self, payload: bytes) -> str:
        """A message that plays ``payload`` (G.711 in the stream's encoding)."""

    @abstractmethod
    def mark(self, name: str) -> str:
        """A message the provider echoes once everything sent before it has played."""

    @abstractmethod
    def clear(self) -> str:
        """A message that drops the audio the provider has buffered and not yet played."""


def _obj(message: dict[str, Any], key: str) -> dict[str, Any]:
    value = message.get(key)
    if not isinstance(value, dict):
        raise StreamError(f'"{message["event"]}" message needs an object "{key}"')
    return value


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _payload(media: dict[str, Any]) -> bytes:
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise StreamError('"media" message needs a base64 string "media.payload"')
    if len(payload) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
        raise StreamError(f"media payload longer than {MAX_PAYLOAD_BYTES} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise StreamError("media payload is not valid base64") from None


def _digit(dtmf: dict[str, Any]) -> str:
    digit = dtmf.get("digit")
    if not isinstance(digit, str) or len(digit) != 1 or digit not in _DTMF_DIGITS:
        raise StreamError(f"DTMF digit must be one of 0-9 * # A-D, got {digit!r}")
    return digit.upper()


def _encoding(name: Any) -> str:
    text = str(name or "").lower()
    if text in ("audio/x-mulaw", "pcmu", "audio/pcmu", "mulaw", "ulaw", "audio/mulaw"):
        return "audio/pcmu"
    if text in ("audio/x-alaw", "pcma", "audio/pcma", "alaw", "audio/alaw"):
        return "audio/pcma"
    raise StreamError(f"unsupported media encoding {name!r} (expected G.711 µ-law or A-law)")


def _rate(value: Any) -> int:
    try:
        rate = int(value) if value is not None else 8000
    except (TypeError, ValueError):
        raise StreamError(f"bad sample rate {value!r}") from None
    if rate != 8000:
        raise StreamError(f"unsupported sample rate {rate} Hz (phone audio is 8000 Hz)")
    return rate


def _params(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise StreamError("customParameters must be an object")
    return {str(k)[:256]: str(v)[:4096] for k, v in list(value.items())[:64]}


class TwilioSerializer(MediaStreamSerializer):
    """Twilio Media Streams (bidirectional, ``<Connect><Stream>``), as Twilio documents it."""

    provider = "twilio"

    def _parse(self, message: dict[str, Any]) -> StreamEvent:
        kind = message["event"]
        sid = _str(message.get("streamSid"))
        if kind == "connected":
            return StreamEvent("connected")
        if kind == "start":
            start = _obj(message, "start")
            fmt = start.get("mediaFormat") or {}
            if not isinstance(fmt, dict):
                raise StreamError("start.mediaFormat must be an object")
            params = _params(start.get("customParameters"))
            return StreamEvent(
                "start",
                stream_id=_str(start.get("streamSid")) or sid,
                call_id=_str(start.get("callSid")),
                account_id=_str(start.get("accountSid")),
                from_number=params.get("From") or params.get("from"),
                to_number=params.get("To") or params.get("to"),
                parameters=params,
                encoding=_encoding(fmt.get("encoding", "audio/x-mulaw")),
                sample_rate=_rate(fmt.get("sampleRate")),
            )
        if kind == "media":
            return StreamEvent("media", stream_id=sid, payload=_payload(_obj(message, "media")))
        if kind == "dtmf":
            return StreamEvent("dtmf", stream_id=sid, digit=_digit(_obj(message, "dtmf")))
        if kind == "mark":
            return StreamEvent("mark", stream_id=sid, name=_str(_obj(message, "mark").get("name")))
        if kind == "stop":
            return StreamEvent("stop", stream_id=sid)
        raise StreamError(f"unknown Twilio event {kind!r}")

    def media(self, payload: bytes) -> str:
        encoded = base64.b64encode(payload).decode("ascii")
        return json.dumps(
            {"event": "media", "streamSid": self.stream_id, "media": {"payload": encoded}}
        )

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "streamSid": self.stream_id, "mark": {"name": name}})

    def clear(self) -> str:
        return json.dumps({"event": "clear", "streamSid": self.stream_id})


class TelnyxSerializer(MediaStreamSerializer):
    """Telnyx media streaming (``stream_bidirectional_mode: mp3`` off, G.711 both ways)."""

    provider = "telnyx"

    def _parse(self, message: dict[str, Any]) -> StreamEvent:
        kind = message["event"]
        sid = _str(message.get("stream_id"))
        if kind == "connected":
            return StreamEvent("connected")
        if kind == "start":
            start = _obj(message, "start")
            fmt = start.get("media_format") or {}
            if not isinstance(fmt, dict):
                raise StreamError("start.media_format must be an object")
            params = _params(start.get("custom_parameters"))
            return StreamEvent(
                "start",
                stream_id=sid,
                call_id=_str(start.get("call_control_id")),
                from_number=_str(start.get("from")),
                to_number=_str(start.get("to")),
                parameters=params,
                encoding=_encoding(fmt.get("encoding", "PCMU")),
                sample_rate=_rate(fmt.get("sample_rate")),
            )
        if kind == "media":
            return StreamEvent("media", stream_id=sid, payload=_payload(_obj(message, "media")))
        if kind == "dtmf":
            return StreamEvent("dtmf", stream_id=sid, digit=_digit(_obj(message, "dtmf")))
        if kind == "mark":
            return StreamEvent("mark", stream_id=sid, name=_str(_obj(message, "mark").get("name")))
        if kind in ("stop", "error"):
            return StreamEvent("stop", stream_id=sid)
        raise StreamError(f"unknown Telnyx event {kind!r}")

    def media(self, payload: bytes) -> str:
        encoded = base64.b64encode(payload).decode("ascii")
        return json.dumps({"event": "media", "media": {"payload": encoded}})

    def mark(self, name: str) -> str:
        return json.dumps({"event": "mark", "mark": {"name": name}})

    def clear(self) -> str:
        return json.dumps({"event": "clear"})


class PlivoSerializer(MediaStreamSerializer):
    """Plivo audio streams (``<Stream bidirectional="true">``): playAudio/checkpoint/clearAudio."""

    provider = "plivo"

    def __init__(self) -> None:
        super().__init__()
        self.encoding = "audio/pcmu"

    def _parse(self, message: dict[str, Any]) -> StreamEvent:
        kind = message["event"]
        sid = _str(message.get("streamId"))
        if kind == "start":
            start = _obj(message, "start")
            fmt = start.get("mediaFormat") or {}
            if not isinstance(fmt, dict):
                raise StreamError("start.mediaFormat must be an object")
            self.encoding = _encoding(fmt.get("encoding", "audio/x-mulaw"))
            return StreamEvent(
                "start",
                stream_id=_str(start.get("streamId")) or sid,
                call_id=_str(start.get("callId")),
                parameters=_params(message.get("extra_headers") or None)
                if isinstance(message.get("extra_headers"), dict)
                else {},
                encoding=self.encoding,
                sample_rate=_rate(fmt.get("sampleRate")),
            )
        if kind == "media":
            return StreamEvent("media", stream_id=sid, payload=_payload(_obj(message, "media")))
        if kind == "dtmf":
            return StreamEvent("dtmf", stream_id=sid, digit=_digit(_obj(message, "dtmf")))
        if kind == "playedStream":
            return StreamEvent("mark", stream_id=sid, name=_str(message.get("name")))
        if kind in ("stop", "clearedAudio"):
            return StreamEvent("stop" if kind == "stop" else "connected", stream_id=sid)
        raise StreamError(f"unknown Plivo event {kind!r}")

    def media(self, payload: bytes) -> str:
        content = "audio/x-mulaw" if self.encoding == "audio/pcmu" else "audio/x-alaw"
        media = {
            "contentType": content,
            "sampleRate": 8000,
            "payload": base64.b64encode(payload).decode("ascii"),
        }
        return json.dumps({"event": "playAudio", "media": media})

    def mark(self, name: str) -> str:
        return json.dumps({"event": "checkpoint", "streamId": self.stream_id, "name": name})

    def clear(self) -> str:
        return json.dumps({"event": "clearAudio", "streamId": self.stream_id})


#: Serializers by provider name.
SERIALIZERS: dict[str, type[MediaStreamSerializer]] = {
    "twilio": TwilioSerializer,
    "telnyx": TelnyxSerializer,
    "plivo": PlivoSerializer,
}
