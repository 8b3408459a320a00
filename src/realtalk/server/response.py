"""One response: from the LLM's tokens to output items, as one task with a synchronous cancel.

The pipeline streams: the LLM's text goes into an assistant message as it arrives, to the client
as text deltas or, for audio, to the message's :class:`~realtalk.server.voicing.Voicing`, which
speaks it piece by piece while the LLM goes on writing. Function calls become ``function_call``
items and end the response (the client sends the output and asks for the next response).

Cancelling is synchronous on purpose: :meth:`Response.cancel` emits every closing event (audio,
transcript, content part, output item, conversation item, then ``response.done``) before it
returns, so a ``speech_started`` that interrupts is followed by the whole cancellation in order.
After that the task emits nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.protocol.say import parse_say_instructions
from realtalk.server.engines.base import Engines, LLMUsage, TextDelta, ToolCall
from realtalk.server.engines.threads import wait_through_cancellation

from .context import Context
from .conversation import Conversation, Entry
from .speculation import GuessTask, ReplyGuess, discard
from .voicing import EarlyPiece, Message, Voicing

__all__ = ["Response", "ResponseSettings"]

logger = logging.getLogger("realtalk.server")

Send = Callable[[dict[str, Any]], None]

# Limits reported by rate_limits.updated (the local server has none; clients just want numbers).
_REQUEST_LIMIT = 10_000
_TOKEN_LIMIT = 1_000_000


@dataclass
class ResponseSettings:
    """The session's settings with the response's own overrides applied."""

    in_conversation: bool
    instructions: str
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    output_modalities: list[str]
    max_output_tokens: int | str
    output_format: AudioFormat
    voice: str | dict[str, Any]
    metadata: dict[str, Any] | None = None

    @property
    def audio(self) -> bool:
        return self.output_modalities == ["audio"]


class Response:
    """Generates one response; emits its events through ``send``."""

    def __init__(
        self,
        response_id: str,
        settings: ResponseSettings,
        *,
        engines: Engines,
        send: Send,
        new_id: Callable[[str], str],
        conversation: Conversation,
        conversation_id: str,
        context: Callable[[], Awaitable[Context]],
        on_finished: Callable[[Response], None],
        guess: GuessTask | None = None,
    ) -> None:
        self.id = response_id
        #: an LLM call started in the silence before this turn ended (used if its context fits)
        self._guess = guess
        self.settings = settings
        self._engines = engines
        self._send_event = send
        self._new_id = new_id
        self._conversation = conversation
        self._conversation_id = conversation_id if settings.in_conversation else None
        self._context_factory = context
        self._on_finished = on_finished
        self._output: list[dict[str, Any]] = []
        self._message: Message | None = None
        self._context: Context | None = None
        self._llm_usage: LLMUsage | None = None
        self.used_guess = False  # the reply came from an LLM call started in the pause
        #: the first piece of a guess this response took, voiced while the turn was ending
        self._early_piece: Callable[[], EarlyPiece | None] = lambda: None
        self._text_chars = 0
        self._audio_bytes = 0
        self._task: asyncio.Task[None] | None = None
        self._voice_tasks: list[asyncio.Task[None]] = []
        self.status = "in_progress"
        self.finished = asyncio.Event()
        self._marks: dict[str, float] = {}  # stage -> perf_counter, for the timing log line
        #: Event-loop time of the first audio delta: when the client starts playing this reply.
        self.first_audio_at: float | None = None

    @property
    def item_ids(self) -> list[str]:
        """The ids of the items this response has output so far."""
        return [str(item["id"]) for item in self._output]

    @property
    def audio_bytes(self) -> int:
        """Bytes of audio sent so far (in the output format)."""
        return self._audio_bytes

    @property
    def audio_ms(self) -> float:
        """Milliseconds of audio sent so far."""
        return self._audio_bytes / self.settings.output_format.bytes_per_ms

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Emit ``response.created`` and ``rate_limits.updated``, then generate in a task."""
        self._send(ev.response_created(self._eid(), self._object()))
        self._send(
            ev.rate_limits_updated(
                self._eid(),
                [
                    ev.rate_limit(
                        "requests",
                        limit=_REQUEST_LIMIT,
                        remaining=_REQUEST_LIMIT - 1,
                        reset_seconds=0.006,
                    ),
                    ev.rate_limit(
                        "tokens",
                        limit=_TOKEN_LIMIT,
                        remaining=_TOKEN_LIMIT - self._reserved_tokens(),
                        reset_seconds=0.06,
                    ),
                ],
            )
        )
        self._task = asyncio.create_task(self._run(), name=f"realtalk-{self.id}")

    def cancel(self, reason: str) -> bool:
        """Stop now and emit every closing event; False if the response had already ended."""
        if self.status != "in_progress":
            return False
        if self._task is not None:
            self._task.cancel()
        self._finish("cancelled", {"type": "cancelled", "reason": reason})
        return True

    async def wait(self) -> None:
        """Until the generation task has ended, and with it every engine call it made."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._task)

    # --- generation --------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._respond()
        finally:
            unused, self._guess = self._guess, None
            if unused is not None:  # never used: let the LLM go
                await wait_through_cancellation(
                    asyncio.ensure_future(discard(unused))
                )  # the voice runs in tasks of its own: this task ends after they have
            voices = [t for t in self._voice_tasks if not t.done()]
            if voices:
                gathered = asyncio.gather(*voices, return_exceptions=True)
                await wait_through_cancellation(gathered)

    async def _respond(self) -> None:
        self._mark("start")
        said = parse_say_instructions(self.settings.instructions)
        try:
            if said is not None:
                await self._say(said)
            else:
                self._context = await self._context_factory()
                self._mark("context")
                await self._generate(self._context)
        except asyncio.CancelledError:
            if self.status == "in_progress":  # cancelled from outside without cancel(): close
                self._finish("cancelled", {"type": "cancelled", "reason": "client_cancelled"})
            raise
        except Exception as exc:
            logger.exception("response %s failed", self.id)
            self._finish(
                "failed",
                {
                    "type": "failed",
                    "error": {"type": "server_error", "code": "engine_error", "message": str(exc)},
                },
            )
            return
        if said is None and self._reached_token_limit():
            self._finish("incomplete", {"type": "incomplete", "reason": "max_output_tokens"})
        else:
            self._finish("completed", None)

    def _reached_token_limit(self) -> bool:
        limit = self.settings.max_output_tokens
        usage = self._llm_usage
        return isinstance(limit, int) and usage is not None and usage.output_tokens >= limit

    async def _generate(self, context: Context) -> None:
        limit = self.settings.max_output_tokens
        options: dict[str, Any] = {
            "tools": self.settings.tools,
            "tool_choice": self.settings.tool_choice,
            "max_output_tokens": limit if isinstance(limit, int) else None,
        }
        task, self._guess = self._guess, None
        guess = None
        if task is not None:  # its transcript is the one the context waited for: ready or nearly
            try:
                (made,) = await asyncio.gather(task, return_exceptions=True)
            except asyncio.CancelledError:  # a guess made meanwhile must let the LLM go
                await wait_through_cancellation(asyncio.ensure_future(discard(task)))
                raise
            guess = made if isinstance(made, ReplyGuess) else None
        if guess is not None and guess.fits(context.messages, **options):
            logger.debug("%s: the reply started in the pause fits", self.id)
            self.used_guess = True
            self._early_piece = lambda: guess.early
            stream = guess.take()
        else:
            if guess is not None:
                await guess.close()
            stream = self._engines.llm.stream(context.messages, **options)
        async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                if isinstance(chunk, TextDelta):
                    if chunk.text:
                        self._on_text(chunk.text)
                        voicing = self._message.voicing if self._message is not None else None
                        if voicing is not None:
                            await voicing.hold_for_first_piece()
                elif isinstance(chunk, ToolCall):
                    await self._close_message()
                    self._function_call(chunk)
                elif isinstance(chunk, LLMUsage):
                    self._llm_usage = chunk
        await self._close_message()

    async def _say(self, text: str) -> None:
        """A say (``realtalk.protocol.say``): speak ``text`` exactly, every sentence, no LLM.

        It goes out as any reply would (message item, transcript and audio deltas, usage), so
        the conversation records it as the assistant's words. The transcript is the text's
        sentences joined by single spaces: the text itself when it is written that way.
        """
        self._mark("first_token")
        self._on_text(text)
        await self._close_message()
        self._llm_usage = LLMUsage(  # nothing was generated: ~4 characters a token, as OpenAI
            input_tokens=-(-len(self.settings.instructions) // 4),
            output_tokens=-(-len(text) // 4),
        )

    # --- assistant message -------------------------------------------------------------------

    def _on_text(self, text: str) -> None:
        self._mark("first_token")
        message = self._message or self._open_message()
        self._text_chars += len(text)
        if message.voicing is not None:
            message.voicing.add(text)
            return
        message.text += text
        message.part["text"] = message.text
        self._send(
            ev.response_output_text_delta(
                self._eid(), self.id, message.id, message.output_index, 0, text
            )
        )

    def _open_message(self) -> Message:
        audio = self.settings.audio
        item = ev.message_item(
            "assistant", [], item_id=self._new_id("item"), status="in_progress", with_object=True
        )
        entry = Entry(item, audio_format=self.settings.output_format if audio else None)
        message = Message(entry, len(self._output), audio)
        self._message = message
        self._output.append(item)
        self._send(
            ev.response_output_item_added(
                self._eid(), self.id, message.output_index, entry.snapshot()
            )
        )
        self._add_to_conversation(entry)
        part_public = {"type": "audio", "transcript": ""} if audio else {"type": "text", "text": ""}
        item["content"].append(
            {"type": "output_audio", "transcript": ""}
            if audio
            else {"type": "output_text", "text": ""}
        )
        if audio:
            entry.audio[0] = bytearray()
            message.voicing = Voicing(
                message,
                self.id,
                self._engines.voice,
                self.settings.output_format,
                send=self._send,
                new_id=self._new_id,
                mark=self._mark,
                on_audio=self._on_audio,
                early=self._early_piece,
            )
            self._voice_tasks.append(message.voicing.task)
        self._send(
            ev.response_content_part_added(
                self._eid(), self.id, message.id, message.output_index, 0, part_public
            )
        )
        return message

    async def _close_message(self) -> None:
        """Voice what is left, wait for the voice, then emit the message's done events."""
        message = self._message
        if message is None:
            return
        if message.voicing is not None:
            await message.voicing.finish()
        self._end_message("completed")

    def _end_message(self, status: str) -> None:
        message = self._message
        if message is None:
            return
        self._message = None
        if message.voicing is not None:
            message.voicing.stop()
        loc = (self.id, message.id, message.output_index, 0)
        if message.audio:
            self._send(ev.response_output_audio_done(self._eid(), *loc))
            self._send(ev.response_output_audio_transcript_done(self._eid(), *loc, message.text))
            part = {"type": "audio", "transcript": message.text}
        else:
            self._send(ev.response_output_text_done(self._eid(), *loc, message.text))
            part = {"type": "text", "text": message.text}
        self._send(ev.response_content_part_done(self._eid(), *loc, part))
        self._done_item(message.entry, message.output_index, status)

    def _on_audio(self, nbytes: int) -> None:
        """The voice is about to send ``nbytes`` of audio: the client starts playing now."""
        self._mark("first_audio")
        if self.first_audio_at is None:
            self.first_audio_at = asyncio.get_running_loop().time()
        self._audio_bytes += nbytes

    # --- function calls ----------------------------------------------------------------------

    @property
    def called_tools(self) -> bool:
        """Whether this response asked for a function call (the client answers next)."""
        return any(item.get("type") == "function_call" for item in self._output)

    def _function_call(self, call: ToolCall) -> None:
        call_id = self._new_id("call")
        item = ev.function_call_item(
            call_id=call_id,
            name=call.name,
            arguments="",
            item_id=self._new_id("item"),
            status="in_progress",
            with_object=True,
        )
        entry = Entry(item)
        index = len(self._output)
        self._output.append(item)
        self._send(ev.response_output_item_added(self._eid(), self.id, index, entry.snapshot()))
        self._add_to_conversation(entry)
        self._send(
            ev.response_function_call_arguments_delta(
                self._eid(), self.id, entry.id, index, call_id, call.arguments
            )
        )
        item["arguments"] = call.arguments
        self._send(
            ev.response_function_call_arguments_done(
                self._eid(), self.id, entry.id, index, call_id, call.name, call.arguments
            )
        )
        self._done_item(entry, index, "completed")

    # --- shared ------------------------------------------------------------------------------

    def _add_to_conversation(self, entry: Entry) -> None:
        if not self.settings.in_conversation:
            return
        previous = self._conversation.add(entry)
        self._send(ev.conversation_item_added(self._eid(), entry.snapshot(), previous))

    def _done_item(self, entry: Entry, output_index: int, status: str) -> None:
        entry.item["status"] = status
        self._send(
            ev.response_output_item_done(self._eid(), self.id, output_index, entry.snapshot())
        )
        # The same entry, not just its id: a client may delete the item being written and
        # create another one with that id; that one is not this response's to finish.
        if self.settings.in_conversation and self._conversation.get(entry.id) is entry:
            previous = self._conversation.previous_id(entry.id)
            self._send(ev.conversation_item_done(self._eid(), entry.snapshot(), previous))

    def _finish(self, status: str, details: dict[str, Any] | None) -> None:
        """Close what is open and emit ``response.done``; the last event of this response."""
        if self.status != "in_progress":
            return
        if self._message is not None:
            self._end_message("incomplete" if status != "completed" else "completed")
        self.status = status
        self._log_timings()
        self._send(ev.response_done(self._eid(), self._object(details, final=True)))
        self.finished.set()
        self._on_finished(self)

    def _object(
        self, details: dict[str, Any] | None = None, *, final: bool = False
    ) -> dict[str, Any]:
        s = self.settings
        voice = s.voice if isinstance(s.voice, str) else str(s.voice.get("id", ""))
        return ev.response_object(
            self.id,
            status=self.status,
            status_details=details,
            output=copy.deepcopy(self._output) if final else [],
            conversation_id=self._conversation_id,
            output_modalities=list(s.output_modalities),
            max_output_tokens=s.max_output_tokens,
            audio_format=s.output_format.to_dict(),
            voice=voice,
            metadata=s.metadata,
            usage=self._usage() if final else None,
        )

    def _usage(self) -> dict[str, Any]:
        context = self._context
        llm = self._llm_usage
        if llm is not None:
            text_in, text_out = llm.input_tokens, llm.output_tokens
        else:  # cancelled before the LLM reported: estimate ~4 characters a token
            chars_in = sum(len(m.content) for m in context.messages) if context else 0
            text_in, text_out = -(-chars_in // 4), -(-self._text_chars // 4)
        audio_in = (context.audio_ms // 100) if context else 0
        out_ms = self._audio_bytes / self.settings.output_format.bytes_per_ms
        return ev.response_usage(
            input_text_tokens=text_in,
            input_audio_tokens=audio_in,
            output_text_tokens=text_out,
            output_audio_tokens=int(out_ms // 50),
        )

    def _mark(self, stage: str) -> None:
        if stage not in self._marks:
            self._marks[stage] = time.perf_counter()

    def _log_timings(self) -> None:
        """One line per response: where its time went (transcripts, LLM, voice)."""
        if not logger.isEnabledFor(logging.INFO) or "start" not in self._marks:
            return
        start = self._marks["start"]
        stages = ", ".join(
            f"{name} +{(at - start) * 1000:.0f} ms"
            for name, at in self._marks.items()
            if at > start
        )
        logger.info("%s %s: %s", self.id, self.status, stages or "no output")

    def _reserved_tokens(self) -> int:
        limit = self.settings.max_output_tokens
        return limit if isinstance(limit, int) else 4096

    def _send(self, event: dict[str, Any]) -> None:
        if self.status == "in_progress" or event["type"] == "response.done":
            self._send_event(event)

    def _eid(self) -> str:
        return self._new_id("event")
