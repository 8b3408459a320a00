"""MediaStreamTransport: one phone call over a provider's media-stream WebSocket.

Played position from marks: after each 20 ms of agent audio a mark is sent, named after the
AudioOutput's position at that point; the provider echoes a mark once everything before it was
played to the caller, and that echo is the position confirmed (``AudioOutput.confirm_played``).
The AudioOutput runs in confirm mode, so a barge-in truncates the reply at what the caller has
heard, not at what was handed to the WebSocket; then ``clear`` drops what the provider still
holds. Marks the provider echoes for cleared audio confirm nothing new: the cut item is gone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from realtalk.transports.telephony.media_streams import MediaStreamSerializer, StreamEvent
from realtalk.transports.telephony.phone import CallInfo, PhoneTransport

if TYPE_CHECKING:
    from realtalk.session import AgentSession

__all__ = ["MediaStreamTransport"]

logger = logging.getLogger("realtalk.transport")

#: Media messages accepted per second and call (a provider sends 50); more are dropped.
MAX_MEDIA_PER_S = 150


class MediaStreamTransport(PhoneTransport):
    """Args:
    serializer: the provider's protocol (its ``stream_id`` already set by the start).
    call: who called whom.
    send: sends one text frame on the WebSocket.
    close_stream: closes the WebSocket (the provider then ends or continues the call per
        its own instructions; Twilio moves on to the next TwiML verb, none here: it hangs up).
    complete_call: ends the call at the provider (Twilio's REST API), or None.
    """

    def __init__(
        self,
        serializer: MediaStreamSerializer,
        call: CallInfo,
        *,
        send: Callable[[str], Awaitable[Any]],
        close_stream: Callable[[], Awaitable[Any]],
        complete_call: Callable[[CallInfo], Awaitable[Any]] | None = None,
    ) -> None:
        super().__init__(call)
        self.serializer = serializer
        self._send = send
        self._close_stream = close_stream
        self._complete_call = complete_call
        self._send_lock = asyncio.Lock()
        self._remote_stopped = False
        self.marks_confirmed = 0
        self.clears_sent = 0
        self.media_dropped = 0
        self._window = (0.0, 0)

    # -- events from the provider ----------------------------------------------------------------

    async def handle(self, event: StreamEvent) -> None:
        """One parsed message of the call (the server parses and hands each over)."""
        if event.kind == "media":
            if self._flooding():
                return
            await self.deliver_audio(event.payload)
        elif event.kind == "mark":
            self._on_mark(event.name)
        elif event.kind == "dtmf" and event.digit:
            self.deliver_dtmf(event.digit)
        elif event.kind == "stop":
            self.remote_hung_up()

    def _flooding(self) -> bool:
        now = time.monotonic()
        start, count = self._window
        if now - start >= 1.0:
            self._window = (now, 1)
            return False
        if count >= MAX_MEDIA_PER_S:
            if not self.media_dropped:
                logger.warning(
                    "call %s: more than %d media messages a second; dropping the excess",
                    self.call.call_id,
                    MAX_MEDIA_PER_S,
                )
            self.media_dropped += 1
            return True
        self._window = (start, count + 1)
        return False

    def remote_hung_up(self) -> None:
        """The provider stopped the stream (the caller hung up): nothing more to send."""
        self._remote_stopped = True

    def _on_mark(self, name: str | None) -> None:
        session = self.session
        if session is None or name is None:
            return
        try:
            mark = int(name)
        except ValueError:
            logger.debug("call %s: ignoring mark %r that is not ours", self.call.call_id, name)
            return
        self.marks_confirmed += 1
        session.audio_output.confirm_played(mark)

    # -- PhoneTransport --------------------------------------------------------------------------

    def _prepare_output(self, session: AgentSession) -> None:
        session.audio_output.confirm_playout()
        session.model.on("agent_speech_ended", self._on_speech_ended)

    def _on_speech_ended(self, payload: Any = None) -> None:
        if isinstance(payload, dict) and payload.get("interrupted") and not self._closing:
            self._spawn(self._send_text(self.serializer.clear()), "phone-clear")
            self.clears_sent += 1

    async def _send_frame(self, payload: bytes, mark: int) -> None:
        async with self._send_lock:
            await self._send(self.serializer.media(payload))
            await self._send(self.serializer.mark(str(mark)))

    async def _send_text(self, text: str) -> None:
        async with self._send_lock:
            try:
                await self._send(text)
            except (ConnectionError, RuntimeError) as exc:
                logger.debug("call %s: send failed: %s", self.call.call_id, exc)

    async def _hang_up(self) -> None:
        session = self.session
        if session is not None:
            session.model.off("agent_speech_ended", self._on_speech_ended)
        await self._close_stream()
        if self._complete_call is not None and not self._remote_stopped:
            try:
                await self._complete_call(self.call)
            except Exception as exc:  # the stream is closed anyway; say why the call may linger
                logger.warning("call %s: completing the call failed: %s", self.call.call_id, exc)
