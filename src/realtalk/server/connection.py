"""One Realtime session, server side: client events in, server events out through ``send``.

No sockets here: :class:`Connection` is fed decoded frames (``receive``) and emits event dicts
through a synchronous ``send`` callable, so unit tests drive it with a list as ``send``. It owns the
session settings, the conversation, the transcription of user audio, and the responses (at most
one in the default conversation, any number out of band); its
:class:`~realtalk.server.listening.Listener` owns the input audio buffer and turn taking, and
tells it when a turn wants a reply. Every client event is checked first (``intake``); any
problem becomes an ``error`` event carrying the client's ``event_id`` and the session goes on.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.errors import ProtocolError
from realtalk.protocol.ids import IdGenerator
from realtalk.protocol.session import default_session, merge_session
from realtalk.protocol.validate import decode_audio
from realtalk.server.engines.base import Engines

from . import errors
from .context import Context, build_context
from .conversation import Conversation, Entry
from .errors import RequestError
from .input_buffer import InputBuffer
from .intake import APPEND_AUDIO, Prepared, prepare_event, prepare_frame
from .limits import DEFAULT_LIMITS, Limits
from .listening import Listener
from .response import Response, ResponseSettings
from .speculation import GuessTask
from .transcription import UserTranscripts

__all__ = ["Connection", "expiry_message"]

logger = logging.getLogger("realtalk.server")

Send = Callable[[dict[str, Any]], None]


def expiry_message(max_seconds: float) -> str:
    """OpenAI's wording ("... of 60 minutes."), in seconds when not whole minutes."""
    if max_seconds >= 60 and max_seconds % 60 == 0:
        n, unit = int(max_seconds // 60), "minute"
    else:
        n, unit = max(int(max_seconds), 1), "second"
    return f"Your session hit the maximum duration of {n} {unit}{'s' if n != 1 else ''}."


class Connection:
    """The server side of one Realtime session."""

    def __init__(
        self,
        engines: Engines,
        send: Send,
        *,
        model: str = "gpt-realtime",
        session_max_seconds: float = 3600.0,
        new_id: Callable[[str], str] | None = None,
        now: Callable[[], float] = time.time,
        partial_transcripts: bool = True,
        partial_interval_ms: float = 1000.0,
        speculative_transcripts: bool = True,
        limits: Limits = DEFAULT_LIMITS,
        smart_turn: bool = True,
        speculative_replies: bool = True,
    ) -> None:
        self.engines = engines
        self.limits = limits
        #: Audio decoded with the event (off the loop for large frames), by content index.
        self._decoded: dict[int, bytes] = {}
        #: The event :meth:`receive` decoded and checked, for :meth:`handle` to take as it is.
        self._ready: tuple[Any, Prepared] | None = None
        self._send = send
        self._new_id = new_id or IdGenerator()
        self.session_max_seconds = session_max_seconds
        self.session = default_session(model)
        self.session["id"] = self._new_id("sess")
        self.session["expires_at"] = int(now() + session_max_seconds)
        self.conversation = Conversation()
        self.conversation_id = self._new_id("conv")
        self.active: Response | None = None
        self.responses: dict[str, Response] = {}
        self._voice_locked = False
        self.expired = False
        self.closed = False
        self._prefill: asyncio.Task[None] | None = None
        self._prefilled: str | None = None
        self.transcripts = UserTranscripts(
            engines.transcriber,
            send,
            self._new_id,
            on_text=self._transcribed,
            partials=partial_transcripts,
            partial_interval_ms=partial_interval_ms,
            speculate=speculative_transcripts,
        )
        self._idle: asyncio.TimerHandle | None = None  # server_vad idle_timeout_ms
        self._listener = Listener(
            engines,
            send,
            self._new_id,
            self.transcripts,
            self.session["audio"]["input"],
            limits=limits,
            conversation=lambda: self.conversation,
            replying=lambda: self.active.id if self.active is not None else None,
            reply_settings=lambda: self._settings({}),
            on_speech=self._speech_started,
            reply=self._reply,
            smart_turn=smart_turn,
            speculative_replies=speculative_replies,
        )

    @property
    def buffer(self) -> InputBuffer:
        """The input audio buffer (``input_audio_buffer.*``)."""
        return self._listener.buffer

    @property
    def speculative_replies(self) -> bool:
        """Whether the LLM starts on the speculative transcript while a pause may end the turn."""
        return self._listener.speculative_replies

    @speculative_replies.setter
    def speculative_replies(self, on: bool) -> None:
        self._listener.speculative_replies = on and self.transcripts.speculate

    # --- entry points ------------------------------------------------------------------------

    def open(self) -> None:
        """Emit ``session.created``: the first event of every session."""
        self._send(ev.session_created(self._eid(), copy.deepcopy(self.session)))

    async def receive(self, frame: str | bytes) -> None:
        """One frame from the client: decode and check it, then :meth:`handle` it.

        A large frame is decoded, validated and its audio decoded in a worker thread, in
        slices, so the event loop (every other session) is not held while it is.
        """
        max_values = self.limits.max_frame_values
        if len(frame) > self.limits.offload_frame_bytes:
            event, prepared = await asyncio.to_thread(prepare_frame, frame, max_values)
        else:
            event, prepared = prepare_frame(frame, max_values)
        if event is None:  # not even JSON: there is no event to handle
            await self._dispatch(prepared)
            return
        self._ready = (event, prepared)
        await self.handle(event)

    async def handle(self, event: Any) -> None:
        """One decoded client event; every problem is answered with an ``error`` event."""
        ready, self._ready = self._ready, None
        if ready is not None and ready[0] is event:  # checked already, by receive
            await self._dispatch(ready[1])
        else:
            await self._dispatch(prepare_event(event))

    async def _dispatch(self, prepared: Prepared) -> None:
        """Run the event's handler; what it raises is answered with an ``error`` event."""
        event, problem, client_event_id = prepared.event, prepared.problem, prepared.client_event_id
        if problem is not None or event is None:
            self._error(problem or ProtocolError("invalid_event", "Bad event."), client_event_id)
            return
        handler = self._HANDLERS[event["type"]]
        self._decoded = prepared.audio
        try:
            await handler(self, event)
        except RequestError as exc:
            self._error(exc.problem, client_event_id)
        except Exception as exc:  # a bug must not end the session: say so and go on
            logger.exception("failed to handle %s", event["type"])
            self._error(
                ProtocolError(
                    "server_error", f"The server had an error: {exc}", type="server_error"
                ),
                client_event_id,
            )
        finally:
            self._decoded = {}

    def expire(self) -> None:
        """The session reached its maximum duration: emit ``session_expired`` (then close 1001)."""
        self.expired = True
        self._error(ProtocolError("session_expired", expiry_message(self.session_max_seconds)))

    async def aclose(self) -> None:
        """Stop every response and background task (the client is gone).

        Returns once the engine work they started has ended too (a model call in a thread
        cannot be interrupted, only waited for), and starts none afterwards: no engine is
        called for this connection after this returns.
        """
        self.closed = True
        self._disarm_idle()
        self._listener.close()
        responses = list(self.responses.values())
        for response in responses:
            response.cancel("client_cancelled")
        await asyncio.gather(*(r.wait() for r in responses), return_exceptions=True)
        await self._listener.aclose()
        if self._prefill is not None:
            self._prefill.cancel()
            await asyncio.gather(self._prefill, return_exceptions=True)
        await self.transcripts.aclose()
        # Let the items go now, not when the cyclic collector finds the cycles between this
        # connection, its callbacks and its responses (the listener let the audio go).
        self.conversation = Conversation()
        self.responses.clear()

    # --- session -----------------------------------------------------------------------------

    async def _session_update(self, event: dict[str, Any]) -> None:
        update = {
            k: v for k, v in event["session"].items() if k not in ("id", "object", "expires_at")
        }
        if update.get("model", self.session["model"]) != self.session["model"]:
            raise errors.invalid("session.model", "the model of a session cannot be changed.")
        new_voice = ((update.get("audio") or {}).get("output") or {}).get("voice")
        if new_voice is not None and new_voice != self._output["voice"] and self._voice_locked:
            raise RequestError(
                ProtocolError(
                    "invalid_value",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    "session.audio.output.voice",
                )
            )
        self.session = merge_session(self.session, update)
        self._disarm_idle()
        self._listener.configure(self.session["audio"]["input"])
        self._send(ev.session_updated(self._eid(), copy.deepcopy(self.session)))
        self._start_prefill()

    def _start_prefill(self) -> None:
        """Have the LLM evaluate the session's instructions and tools now, in the background,
        so the first turn does not pay for them (seconds for a local model on 2 cores)."""
        instructions, tools = self.session["instructions"], self.session["tools"]
        key = json.dumps([instructions, tools], sort_keys=True)
        if self.closed or key == self._prefilled:
            return
        self._prefilled = key
        if self._prefill is not None:
            self._prefill.cancel()
        self._prefill = asyncio.create_task(self._run_prefill(instructions, tools))

    async def _run_prefill(self, instructions: str, tools: list[dict[str, Any]]) -> None:
        try:
            await self.engines.llm.prefill(instructions, tools)
        except asyncio.CancelledError:
            raise
        except Exception:  # only a head start: the turn itself still works without it
            logger.warning("prefilling the session's prompt failed", exc_info=True)

    @property
    def _input_format(self) -> AudioFormat:
        return AudioFormat.parse(self.session["audio"]["input"]["format"])

    @property
    def _output(self) -> dict[str, Any]:
        output: dict[str, Any] = self.session["audio"]["output"]
        return output

    # --- input audio -------------------------------------------------------------------------

    async def _append(self, event: dict[str, Any]) -> None:
        await self._listener.append(event["audio"], self._decoded.get(APPEND_AUDIO))

    async def _commit_event(self, event: dict[str, Any]) -> None:
        self._listener.commit()

    async def _clear(self, event: dict[str, Any]) -> None:
        self._listener.clear()

    def _speech_started(self, interrupt: bool) -> None:
        """The user started speaking: no idle timeout, and maybe no reply any more."""
        self._disarm_idle()
        if interrupt and self.active is not None:
            self.active.cancel("turn_detected")

    def _reply(self, guess: GuessTask | None) -> None:
        """A turn ended that gets a reply (``guess``: the reply started in its pause)."""
        self._start_response(self._settings({}), None, guess=guess)

    def _transcribed(self, item_id: str, index: int, text: str) -> None:
        """A reported transcript also shows in the item (as retrieve returns it)."""
        entry = self.conversation.get(item_id)
        if entry is not None and index < len(entry.item["content"]):
            entry.item["content"][index]["transcript"] = text

    # --- conversation ------------------------------------------------------------------------

    async def _item_create(self, event: dict[str, Any]) -> None:
        if len(self.conversation) >= self.limits.max_items:
            raise errors.conversation_full(f"at most {self.limits.max_items} items")
        item = copy.deepcopy(event["item"])
        item.setdefault("id", self._new_id("item"))
        item["object"] = "realtime.item"
        item["status"] = "completed"
        audio: dict[int, bytearray] = {}
        fmt = self._input_format
        kind = item["type"]
        if kind == "function_call":
            item.setdefault("call_id", self._new_id("call"))
        if kind == "message":
            for index, part in enumerate(item["content"]):
                if part["type"] == "text":  # beta spelling of an assistant text part
                    part["type"] = "output_text"
                if part["type"] == "input_audio":
                    part.setdefault("transcript", None)
                    if "audio" in part:
                        encoded = part.pop("audio")
                        data = self._decoded.get(index)
                        if data is None:
                            decoded = decode_audio(encoded, f"item.content[{index}].audio")
                            if isinstance(decoded, ProtocolError):
                                raise RequestError(decoded)
                            data = decoded
                        audio[index] = bytearray(data)
        size = _text_bytes(item)  # the audio parts' base64 is gone: audio is bounded apart
        if self.conversation.text_bytes + size > self.limits.max_conversation_bytes:
            raise errors.conversation_full(
                f"at most {self.limits.max_conversation_bytes} bytes of item text"
            )
        entry = Entry(item, audio=audio, audio_format=fmt if audio else None, text_bytes=size)
        previous = self.conversation.add(entry, event.get("previous_item_id"))
        self._send(ev.conversation_item_added(self._eid(), entry.snapshot(), previous))
        self._send(ev.conversation_item_done(self._eid(), entry.snapshot(), previous))
        for index, stored in audio.items():
            if item["content"][index].get("transcript") is None:
                self.transcripts.start(entry.id, index, bytes(stored), fmt, report=False)

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        item = self.conversation.retrieve(event["item_id"])
        self._send(ev.conversation_item_retrieved(self._eid(), item))

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item_id = event["item_id"]
        active = self.active
        if active is not None and item_id in active.item_ids:
            active.cancel("client_cancelled")  # cutting what is still being written ends it
        self.conversation.truncate(item_id, event["content_index"], event["audio_end_ms"])
        self._send(
            ev.conversation_item_truncated(
                self._eid(), item_id, event["content_index"], event["audio_end_ms"]
            )
        )

    async def _item_delete(self, event: dict[str, Any]) -> None:
        entry = self.conversation.delete(event["item_id"])
        self.transcripts.forget(entry.id)
        self._send(ev.conversation_item_deleted(self._eid(), entry.id))

    # --- responses ---------------------------------------------------------------------------

    async def _response_create(self, event: dict[str, Any]) -> None:
        params = event.get("response") or {}
        settings = self._settings(params)
        if settings.in_conversation and self.active is not None:
            raise errors.active_response(self.active.id)
        if len(self.responses) >= self.limits.max_responses:
            raise errors.too_many_responses(self.limits.max_responses)
        items = self._resolve_input(params["input"]) if "input" in params else None
        self._start_response(settings, items)

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        response_id = event.get("response_id")
        if response_id is not None:
            response = self.responses.get(response_id)
            if response is None:
                raise errors.cancel_not_active(response_id)
        else:
            response = self.active
            if response is None:
                raise errors.cancel_not_active()
        response.cancel("client_cancelled")

    async def _output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        raise RequestError(
            ProtocolError(
                "invalid_value",
                "output_audio_buffer.clear is only supported for WebRTC and SIP sessions; over "
                "a WebSocket the client owns playback (send response.cancel and "
                "conversation.item.truncate instead).",
                "type",
            )
        )

    def _settings(self, params: dict[str, Any]) -> ResponseSettings:
        s = self.session
        conversation = params.get("conversation", "auto")
        if conversation not in ("auto", "none"):
            raise errors.invalid(
                "response.conversation", f"{conversation!r}. Supported values are: 'auto', 'none'."
            )
        out = (params.get("audio") or {}).get("output") or {}
        return ResponseSettings(
            in_conversation=conversation == "auto",
            instructions=params.get("instructions", s["instructions"]),
            tools=params.get("tools", s["tools"]),
            tool_choice=params.get("tool_choice", s["tool_choice"]),
            output_modalities=params.get("output_modalities", s["output_modalities"]),
            max_output_tokens=params.get("max_output_tokens", s["max_output_tokens"]),
            output_format=AudioFormat.parse(out.get("format", self._output["format"])),
            voice=out.get("voice", self._output["voice"]),
            metadata=params.get("metadata"),
        )

    def _resolve_input(self, input_items: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
        """``response.input``: items inline or by reference, used instead of the conversation."""
        out: list[tuple[dict[str, Any], int]] = []
        for index, item in enumerate(input_items):
            if item.get("type") == "item_reference":
                entry = self.conversation.get(item["id"])
                if entry is None:
                    raise errors.invalid(
                        f"response.input[{index}].id", f"no item with id '{item['id']}'."
                    )
                out.append((entry.snapshot(), sum(entry.audio_ms(i) for i in entry.audio)))
            else:
                inline = copy.deepcopy(item)
                for part in inline.get("content") or []:
                    part.pop("audio", None)  # inline audio is not transcribed; its transcript is
                out.append((inline, 0))
        return out

    def _start_response(
        self,
        settings: ResponseSettings,
        items: list[tuple[dict[str, Any], int]] | None,
        *,
        guess: GuessTask | None = None,
    ) -> Response:
        if guess is None:
            self._listener.drop_guess()
        pending = self.transcripts.pending()

        async def context() -> Context:
            if items is not None:
                chosen = items
            else:
                # Wait for the transcripts first, then read the conversation: a truncate that
                # arrived meanwhile (the client cutting what it played) is then already in it.
                for task in pending:
                    await asyncio.wait([task])
                chosen = [
                    (e.snapshot(), sum(e.audio_ms(i) for i in e.audio)) for e in self.conversation
                ]
            return await build_context(settings.instructions, chosen, self.transcripts.text_of)

        response = Response(
            self._new_id("resp"),
            settings,
            engines=self.engines,
            send=self._send,
            new_id=self._new_id,
            conversation=self.conversation,
            conversation_id=self.conversation_id,
            context=context,
            on_finished=self._response_finished,
            guess=guess,
        )
        self.responses[response.id] = response
        if settings.in_conversation:
            self.active = response
            self._disarm_idle()
        response.start()
        return response

    def _response_finished(self, response: Response) -> None:
        self.responses.pop(response.id, None)
        if self.active is response:
            self.active = None
        if response.audio_bytes:
            self._voice_locked = True
        if response.settings.in_conversation:
            self._arm_idle(response)
            if response.status == "completed" and not response.called_tools:
                self._listener.warm_for_next_turn()

    # --- idle timeout ------------------------------------------------------------------------

    def _arm_idle(self, response: Response) -> None:
        """server_vad ``idle_timeout_ms``: counted from when the reply has finished playing (the
        client plays it in real time from the first delta)."""
        self._disarm_idle()
        if self.closed:
            return
        detection = self.session["audio"]["input"]["turn_detection"]
        timeout_ms = (detection or {}).get("idle_timeout_ms")
        if not timeout_ms or detection.get("type") != "server_vad":
            return
        loop = asyncio.get_running_loop()
        played_until = loop.time()
        if response.first_audio_at is not None:
            played_until = max(played_until, response.first_audio_at + response.audio_ms / 1000)
        self._idle = loop.call_at(played_until + timeout_ms / 1000, self._idle_timeout)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_timeout(self) -> None:
        """Nobody spoke: commit what the buffer holds (maybe nothing) and answer it."""
        self._idle = None
        if self._listener.in_turn or self.active is not None or self.expired or self.closed:
            return
        if self._listener.time_out():
            self._start_response(self._settings({}), None)

    # --- helpers -----------------------------------------------------------------------------

    def _error(self, problem: ProtocolError, client_event_id: str | None = None) -> None:
        self._send(
            ev.error(
                self._eid(),
                message=problem.message,
                type=problem.type,
                code=problem.code,
                param=problem.param,
                client_event_id=client_event_id,
            )
        )

    def _eid(self) -> str:
        return self._new_id("event")

    _HANDLERS: ClassVar[dict[str, Callable[[Connection, dict[str, Any]], Any]]] = {
        "session.update": _session_update,
        "input_audio_buffer.append": _append,
        "input_audio_buffer.commit": _commit_event,
        "input_audio_buffer.clear": _clear,
        "conversation.item.create": _item_create,
        "conversation.item.retrieve": _item_retrieve,
        "conversation.item.truncate": _item_truncate,
        "conversation.item.delete": _item_delete,
        "response.create": _response_create,
        "response.cancel": _response_cancel,
        "output_audio_buffer.clear": _output_audio_buffer_clear,
    }


def _text_bytes(item: dict[str, Any]) -> int:
    """What keeping an item costs, roughly: the length of its JSON (one C call)."""
    return len(_COMPACT.encode(item))


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
