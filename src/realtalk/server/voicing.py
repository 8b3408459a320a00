"""An assistant message's voice: streamed text in, transcript and audio deltas out, in order.

The LLM's text is cut into pieces as it arrives: complete sentences, and before anything is
voiced a short first clause (the first audio is only as early as the first piece is short). A
worker task speaks the pieces one after another, each in a thread while the LLM goes on writing
the next, resamples the voice to the output format and sends ``response.output_audio.delta``
chunks; each piece's transcript delta goes out with its first audio, so a client that shows the
transcript never shows words ahead of the voice. What was voiced is recorded in the item
(:class:`~realtalk.server.conversation.SpokenSegment`) so a truncate can cut the transcript to
what was heard.

This is the response's voice only: the response opens and closes the message and decides when
it ends; :class:`Voicing` owns the pieces, the worker and the deltas.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from realtalk.media.resample import StreamResampler
from realtalk.protocol import events as ev
from realtalk.protocol.audio_formats import AudioFormat
from realtalk.server.engines.base import Voice
from realtalk.server.engines.sentences import PieceCutter
from realtalk.server.engines.threads import iterate_in_thread, run_in_thread

from .conversation import Entry, SpokenSegment
from .input_buffer import encode_from_int16

__all__ = ["AUDIO_CHUNK_MS", "EarlyPiece", "Message", "Voicing"]

Send = Callable[[dict[str, Any]], None]

#: Audio per ``response.output_audio.delta``.
AUDIO_CHUNK_MS = 200


class EarlyPiece:
    """A reply's first piece, voiced before its response exists (a reply guessed in the user's
    pause; see ``speculation``): the voice starts as soon as the piece is written, while the
    turn may still be waiting on silence, and the response that takes the guess speaks this
    audio instead of voicing the same text again."""

    def __init__(self, voice: Voice, text: str) -> None:
        self.voice = voice
        self.text = text
        self.audio: asyncio.Future[list[np.ndarray]] = asyncio.ensure_future(
            run_in_thread(lambda: list(voice.synthesize(text)), name="realtalk-voice")
        )

    def cancel(self) -> None:
        self.audio.cancel()

    async def chunks_for(self, voice: Voice, text: str) -> list[np.ndarray] | None:
        """The audio, if it is ``voice`` speaking ``text`` and it was made; else None."""
        if voice is not self.voice or text != self.text:
            return None
        try:
            return await asyncio.shield(self.audio)
        except asyncio.CancelledError:
            if self.audio.cancelled():  # its guess was let go: the response voices the text
                return None
            raise
        except Exception:  # voiced again by the response, which reports what fails
            return None


class Message:
    """The assistant message a response is writing (its voice, if it is spoken)."""

    def __init__(self, entry: Entry, output_index: int, audio: bool) -> None:
        self.entry = entry
        self.output_index = output_index
        self.audio = audio
        self.text = ""  # transcript (audio) or text so far
        self.voicing: Voicing | None = None  # set by the response for an audio message

    @property
    def id(self) -> str:
        return self.entry.id

    @property
    def part(self) -> dict[str, Any]:
        content: list[dict[str, Any]] = self.entry.item["content"]
        return content[0]


class Voicing:
    """Speaks one message's text as it streams in; its worker task starts at once."""

    def __init__(
        self,
        message: Message,
        response_id: str,
        voice: Voice,
        fmt: AudioFormat,
        *,
        send: Send,
        new_id: Callable[[str], str],
        mark: Callable[[str], None],
        on_audio: Callable[[int], None],
        early: Callable[[], EarlyPiece | None] = lambda: None,
    ) -> None:
        """``send`` emits the deltas (the response's own, which stops when it has ended);
        ``mark(stage)`` notes a stage for the response's timing line; ``on_audio(nbytes)``
        counts the audio about to be sent; ``early()`` the first piece voiced ahead, if any
        (asked when that piece is spoken)."""
        self.message = message
        self._response_id = response_id
        self._voice = voice
        self._format = fmt
        self._send = send
        self._new_id = new_id
        self._mark = mark
        self._on_audio = on_audio
        self._early = early
        self._cutter = PieceCutter()
        self.queued = 0  # pieces handed to the worker so far
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self.first_voiced = asyncio.Event()  # the first piece's audio is out
        self.task = asyncio.create_task(self._work())

    def add(self, text: str) -> None:
        """More of the message's text: hand the pieces it completes to the worker."""
        self._queue(self._cutter.add(text))

    async def finish(self) -> None:
        """The text is complete: voice what is left and wait until all of it has been sent.
        The worker's failure, if it failed, is raised here."""
        self._queue(self._cutter.finish())
        self._pieces.put_nowait(None)
        await self.task

    def stop(self) -> None:
        """The message ends now: stop speaking (a failure was reported through :meth:`finish`)."""
        if not self.task.done():
            self.task.cancel()
        elif not self.task.cancelled():
            self.task.exception()  # seen

    async def hold_for_first_piece(self) -> None:
        """While the first piece of the reply is being voiced, take nothing more from the LLM.

        On two cores an LLM writing on beside the voice slows it down (Piper's first audio took
        ~1.6 times as long with llama.cpp generating), and the next piece is only needed once
        the first has played, seconds later. A local LLM pauses when not read (see
        ``iterate_in_thread``'s ``lookahead``).
        """
        if self.queued == 0 or self.first_voiced.is_set() or self.task.done():
            return
        voiced = asyncio.ensure_future(self.first_voiced.wait())
        try:
            await asyncio.wait({voiced, self.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            voiced.cancel()

    def _queue(self, pieces: list[str]) -> None:
        for sentence in pieces:
            if self.queued == 0:
                self._mark("first_sentence")
            self.queued += 1
            self._pieces.put_nowait(sentence)

    async def _work(self) -> None:
        while True:
            sentence = await self._pieces.get()
            if sentence is None:
                return
            await self._speak(sentence)
            self.first_voiced.set()

    async def _speak(self, sentence: str) -> None:
        message, fmt, voice = self.message, self._format, self._voice
        piece = sentence if not message.text else " " + sentence
        start_char = len(message.text)
        start_ms = self._item_audio_ms()
        said = False
        early = self._early() if not message.entry.spoken else None
        voiced = await early.chunks_for(voice, sentence) if early is not None else None

        def produce(stop: threading.Event) -> Iterator[bytes]:
            resampler = (
                StreamResampler(voice.sample_rate, fmt.rate)
                if voice.sample_rate != fmt.rate
                else None
            )
            for chunk in voiced if voiced is not None else voice.synthesize(sentence):
                if stop.is_set():
                    return
                pcm = resampler.push(chunk) if resampler is not None else chunk
                if pcm.size:
                    yield encode_from_int16(np.asarray(pcm, dtype=np.int16), fmt)
            if resampler is not None:
                tail = resampler.flush()
                if tail.size:
                    yield encode_from_int16(tail, fmt)

        async with contextlib.aclosing(iterate_in_thread(produce, name="realtalk-voice")) as audio:
            async for data in audio:
                if not said:
                    said = True
                    self._transcript_delta(piece)
                self._audio_delta(data)
        if not said:
            self._transcript_delta(piece)
        message.entry.spoken.append(
            SpokenSegment(start_ms, self._item_audio_ms(), start_char, len(message.text))
        )

    def _transcript_delta(self, piece: str) -> None:
        message = self.message
        message.text += piece
        message.part["transcript"] = message.text
        self._send(
            ev.response_output_audio_transcript_delta(
                self._eid(), self._response_id, message.id, message.output_index, 0, piece
            )
        )

    def _audio_delta(self, data: bytes) -> None:
        message = self.message
        self._on_audio(len(data))
        step = self._format.bytes_for_ms(AUDIO_CHUNK_MS)
        store = message.entry.audio[0]
        for i in range(0, len(data), step):
            chunk = data[i : i + step]
            store += chunk
            self._send(
                ev.response_output_audio_delta(
                    self._eid(),
                    self._response_id,
                    message.id,
                    message.output_index,
                    0,
                    base64.b64encode(chunk).decode("ascii"),
                )
            )

    def _item_audio_ms(self) -> float:
        return len(self.message.entry.audio[0]) / self._format.bytes_per_ms

    def _eid(self) -> str:
        return self._new_id("event")
